"""Command line: ``python -m biornn <command> ...`` (``python -m biornn --help`` lists the commands).

Each command lives next to the code it drives: a module in :data:`COMMAND_MODULES` defines
``register_cli(subparsers)``, which adds its sub-parser and sets ``func`` to a handler ``func(args) -> int``.
User errors (:class:`biornn.core.errors.BiornnError`) print one line to stderr and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from biornn.core.config import get_mode, tune_allocator, want_retrain
from biornn.core.errors import BiornnError

#: Every command, the module that registers it (``register_cli``) and its one-line help. ``main`` imports only the
#: module of the command it runs, so a mistake is answered before torch or pandas load (``--out`` checks within
#: a second or two); ``tests/test_cli.py`` checks this table against what the modules register.
COMMANDS = {
    "train": ("biornn.experiments.fig2", "train E/I RNNs on a Figure 2 task (all seeds batched)"),
    "reproduce-fig2": ("biornn.experiments.fig2", "train (or read from the cache) every Figure 2 run of a mode"),
    "fetch-mnist": ("biornn.experiments.fig2", "download the four MNIST IDX files into data/mnist (needs a network)"),
    "prune": ("biornn.experiments.fig3", "prune trained recurrent matrices (top-prob or random)"),
    "reproduce-fig3": ("biornn.experiments.fig3", "compute (or read from the cache) every Figure 3 result of a mode"),
    "wave-candidates": ("biornn.experiments.fig3", "Figure 3 wave: test candidate causes of top-prob losing to random"),
    "allen": ("biornn.data.curate.cli", "Allen Visual Behavior data: select experiments, build training datasets"),
    "celltype": ("biornn.celltype", "Figure 4: train the cell-type constrained two-area RNN"),
    "compare": ("biornn.experiments.fig5.recovery_cli",
                "block differences of recurrent connectivity between two conditions"),
    "scaling": ("biornn.experiments.fig5.recovery_scaling",
                "recovery of the planted twin changes against training budget, data size"),
    "sweep": ("biornn.experiments.sweeps", "send independent Figure 2 runs to SLURM or run them locally (submitit)"),
    "verify-cache": ("biornn.experiments.verify",
                "retrain a sample of cached runs and say whether they reproduce here"),
}
#: Modules that contribute commands, in the order ``--help`` lists them.
COMMAND_MODULES = tuple(dict.fromkeys(module for module, _ in COMMANDS.values()))


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line naming the problem and the help command."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(modules: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with the commands of ``modules`` (default: every module of :data:`COMMAND_MODULES`).

    Commands whose module is not imported appear as placeholders carrying their help line, so ``--help`` lists
    every command either way.
    """
    parser = OneLineParser(prog="python -m biornn",
                           description="Biologically constrained RNNs: train, prune and analyse (Balwani et al. 2025).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMAND_MODULES if modules is None else modules:
        module = importlib.import_module(name)
        if hasattr(module, "register_cli"):
            module.register_cli(sub)
    for command, (_, text) in COMMANDS.items():
        if command not in sub.choices:
            sub.add_parser(command, help=text, add_help=False)
    return parser


def resolve_environment(args: argparse.Namespace) -> argparse.Namespace:
    """The command line's one read of the environment, done once before a command runs: ``args.mode`` (``--mode``,
    else ``$BIORNN_MODE``, else ``quick``) where the command has ``--mode``, and ``args.retrain`` (``--retrain``, else
    ``$BIORNN_RETRAIN``) for every command. Handlers pass both down as arguments."""
    if hasattr(args, "mode"):
        args.mode = get_mode(args.mode)
    args.retrain = want_retrain(getattr(args, "retrain", None) or None)
    return args


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    tune_allocator()
    command = _command_of(argv)
    wanted = (COMMANDS[command][0],) if command in COMMANDS and COMMANDS[command][0] in COMMAND_MODULES else ()
    parser = build_parser(wanted)
    args = resolve_environment(parser.parse_args(argv))
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
