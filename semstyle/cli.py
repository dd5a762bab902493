"""Command line: ``semstyle run [CONFIG.yaml] [key=value ...]`` and the commands other modules add.

Exit codes: 0 success, 2 bad input or config (one line on stderr), 1 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SemstyleError

# Modules that add sub-commands through ``add_cli(subparsers)``; each command sets ``func(args)``.
COMMAND_MODULES: tuple[str, ...] = ("semstyle.reconstruct_cli", "semstyle.doodle_cli", "semstyle.correspondence.cli",
                                    "semstyle.studio.cli")

DEFAULT_CONFIG = "configs/default.yaml"


def run_and_report(config, overrides, extra_files=()) -> None:
    """Run a method (``runner.run``), then print the result's path, ``extra_files`` of its folder, and the folder."""
    from .runner import run

    path = run(config, overrides)
    print(f"result: {path / 'output.png'}")
    for name in extra_files:
        print(f"{name.rsplit('.', 1)[0]}: {path / name}")
    print(f"run folder: {path}")


def add_overrides_option(parser: argparse.ArgumentParser, example: str) -> None:
    """``--set KEY=VALUE ...``: any config key, for commands that also take options (stored in ``args.overrides``)."""
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", dest="overrides",
                        help=f"config overrides, e.g. --set {example}")


def _run(args) -> None:
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # `semstyle run key=value` with no config file
        config, overrides = None, [config] + overrides
    run_and_report(DEFAULT_CONFIG if config is None else config, overrides)


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
