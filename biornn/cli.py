"""Command line: ``python -m biornn <command> ...`` (``python -m biornn --help`` lists the commands).

Each command lives next to the code it drives: a module in :data:`COMMAND_MODULES` defines
``register_cli(subparsers)``, which adds its sub-parser and sets ``func`` to a handler ``func(args) -> int``.
User errors (:class:`biornn.errors.BiornnError`) print one line to stderr and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from biornn.errors import BiornnError

#: Modules that contribute commands, in the order ``--help`` lists them. Modules not written yet are skipped.
COMMAND_MODULES = ("biornn.fig2", "biornn.fig3", "biornn.curate.cli", "biornn.celltype", "biornn.recovery",
                   "biornn.recovery_scaling", "biornn.sweeps", "biornn.verify")


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line naming the problem and the help command."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = OneLineParser(prog="python -m biornn",
                           description="Biologically constrained RNNs: train, prune and analyse (Balwani et al. 2025).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        if hasattr(module, "register_cli"):
            module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except BiornnError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted; finished results are kept, unfinished ones were not "
              "written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
