"""Command line: ``semstyle <command> [CONFIG.yaml] [key=value ...] [options]``.

Every command that runs a method takes the same ``key=value`` overrides (any config key), ``--device``,
``--precision`` and ``--out``, writes one run folder (atomic, never overwriting) and ends with the same lines:
``result: …``, its extra files, ``run folder: …``. Exit codes: 0 success, 2 bad input or config (one line on
stderr), 1 internal error, 130 interrupted.

Start-up stays light: torch and the methods are imported only when a command runs, so ``--help`` and config errors
answer at once.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import SemstyleError
from ..studio import cli as studio
from ..version import __version__
from . import commands, evaluate, feedforward, nbb, sweep


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors are bad input: one line, exit 2
        raise SemstyleError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="semstyle", description="Semantic and deformable neural style transfer.")
    parser.add_argument("--version", action="version", version=f"semstyle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_run(sub)
    commands.add_doodle(sub)
    commands.add_reconstruct(sub)
    commands.add_features(sub)
    nbb.add_cli(sub)
    evaluate.add_eval(sub)
    evaluate.add_report(sub)
    sweep.add_sweep(sub)
    sweep.add_search(sub)
    feedforward.add_train(sub)
    feedforward.add_stylize(sub)
    studio.add_cli(sub)  # imports no web server: the studio extra is only needed when the command runs
    return parser


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, taking ``key=value`` overrides wherever they stand: argparse alone drops positionals that follow
    options once the command's other positionals are filled (``reconstruct content IMG --size 32 steps=2``)."""
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    unknown = [item for item in extra if item not in overrides]
    if unknown or (overrides and not hasattr(args, "overrides")):
        raise SemstyleError(f"semstyle: unrecognized arguments: {' '.join(unknown or overrides)}")
    if overrides:
        args.overrides = list(args.overrides) + overrides
    return args


def main(argv=None) -> int:
    # Ctrl-C ends every command the same way, also while torch is still being imported
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = parse(build_parser(), argv)
        code = args.func(args)
    except SemstyleError as e:
        print(f"semstyle: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"semstyle: interrupted{'; ' + str(e) if e.args else ''}", file=sys.stderr)
        return 130
    # a command may return an exit code: 1 when it ran and some of its work failed (sweep, search); other return
    # values (nbb's run folder) are not codes
    return code if isinstance(code, int) else 0
