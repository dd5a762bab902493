"""Command line: ``semstyle run [CONFIG.yaml] [key=value ...]`` and the commands other modules add.

Exit codes: 0 success, 2 bad input or config (one line on stderr), 1 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SemstyleError

# Modules that add sub-commands through ``add_cli(subparsers)``; each command sets ``func(args)``.
COMMAND_MODULES: tuple[str, ...] = ("semstyle.reconstruct_cli", "semstyle.doodle_cli", "semstyle.correspondence.cli")

DEFAULT_CONFIG = "configs/default.yaml"


def _run(args) -> None:
    from .runner import run

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # `semstyle run key=value` with no config file
        config, overrides = None, [config] + overrides
    if config is None:
        config = DEFAULT_CONFIG
    path = run(config, overrides)
    print(f"result: {path / 'output.png'}")
    print(f"run folder: {path}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors are bad input: one line, exit 2
        raise SemstyleError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="semstyle", description="Semantic and deformable neural style transfer.")
    parser.add_argument("--version", action="version", version=f"semstyle {__import__('semstyle').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("run", help="run a method from a YAML config with key=value overrides")
    p.add_argument("config", nargs="?", help=f"config file (default {DEFAULT_CONFIG})")
    p.add_argument("overrides", nargs="*", help="key=value overrides (OmegaConf dotlist)")
    p.set_defaults(func=_run)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except SemstyleError as e:
        print(f"semstyle: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semstyle: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
