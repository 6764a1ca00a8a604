"""The ``celltype`` command: ``celltype train``, ``celltype summarize`` and ``celltype baselines``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from biornn.celltype.config import (
    CHECKPOINT_RULES,
    INITIAL_STATES,
    KERNELS,
    PRUNING,
    VARIANTS,
    WINDOWS,
    celltype_config,
)
from biornn.celltype.data import (
    connectivity_tables,
)
from biornn.celltype.summaries import (
    load_summary_json,
    refresh_baselines,
    save_summary,
    summarize,
    summary_dir,
)
from biornn.celltype.training import (
    load_celltype,
    train_celltype,
)
from biornn.core.conditions import CONDITIONS, condition_name
from biornn.core.config import RESULTS_DIR, parse_seeds
from biornn.core.errors import BiornnError
from biornn.data.curate import Dataset, load_dataset_with_windows
from biornn.data.curate.files import require_writable
from biornn.data.replicates import RESAMPLING
from biornn.nn.models import INPUT_MAPPINGS


def register_cli(sub) -> None:
    """Add ``celltype train`` and ``celltype summarize`` to the command line."""
    p = sub.add_parser("celltype", help="Figure 4: train the cell-type constrained two-area RNN",
                       description="Cell-type constrained RNN (biornn.celltype): train, summarise for the figures.")
    csub = p.add_subparsers(dest="celltype_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    t = csub.add_parser("train", help="dense Dale's training, pruning and masked fine-tuning (all seeds batched)",
                        description="Train all seeds of one condition; write DIR/metrics.json, DIR/weights.npz and "
                                    "stage checkpoints in DIR/checkpoints/ (an interrupted run resumes).")
    t.add_argument("--data", required=True, help="dataset folder (<condition>.npz + .json) or one .npz file")
    t.add_argument("--condition", required=True, help=f"one of {', '.join(CONDITIONS)} (or FC, FN, ...)")
    t.add_argument("--seeds", required=True, help="e.g. 0,1,2,3,4 or 0-4")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--mode", choices=("quick", "paper"), default=None,
                   help="default sizes and epochs (default $BIORNN_MODE or quick; paper: N = 1440, 70 + 50 epochs)")
    t.add_argument("--window", choices=WINDOWS, default="full")
    t.add_argument("--sizes", default=None, help="units per population Pyr,SST,VIP (paper 192,32,16)")
    t.add_argument("--dense-epochs", type=int, default=None)
    t.add_argument("--finetune-epochs", type=int, default=None)
    t.add_argument("--published", action="store_true",
                   help="the reference's switches: dense input weights, as-published pruning and checkpoint rule")
    t.add_argument("--variant", choices=VARIANTS, default=None,
                   help="published, corrected (default) or recommended (corrected + pooled standardisation, learned "
                        "initial state, stimulus inputs, one resample of the experiments per run)")
    for flag, help_text in (("standardize", "z-score with statistics pooled over the six conditions"),
                            ("stimulus-inputs", "image / change / omission codes as three extra inputs")):
        t.add_argument(f"--{flag}", dest=flag.replace("-", "_"), action=argparse.BooleanOptionalAction,
                       default=None, help=help_text)
    t.add_argument("--initial-state", choices=INITIAL_STATES, default=None)
    t.add_argument("--burn-in", type=int, default=None, help="predicted frames left out of the loss")
    t.add_argument("--resample", choices=RESAMPLING, default=None, help="per-run resample of the recordings")
    t.add_argument("--input-mapping", choices=INPUT_MAPPINGS, default=None)
    t.add_argument("--pruning", choices=PRUNING, default=None)
    t.add_argument("--checkpoint-rule", choices=CHECKPOINT_RULES, default=None)
    t.add_argument("--vanilla", action="store_true", help="no Dale projection (the reference's vanilla control)")
    t.add_argument("--within-table", default=None, help="within-area probability CSV (default data/connectivity/)")
    t.add_argument("--inter-table", default=None, help="inter-area pathway CSV (default data/connectivity/)")
    t.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if DIR/checkpoints/resume.pt exists")
    t.add_argument("--checkpoint-every", type=int, default=None,
                   help="write the resume checkpoint every K epochs (default: at stage ends and every 5 min of wall "
                        "time)")
    t.add_argument("--kernels", choices=KERNELS, default="auto",
                   help="fine-tuning stage kernels: sparse (CSR), dense, or auto (sparse on the CPU, dense on CUDA)")
    t.set_defaults(func=_cmd_train)

    s = csub.add_parser("summarize", help="store what the Figure 4 notebook plots (data/results/fig4/...)",
                        description="Summarise a trained run (block means, densities, fits, traces, identifiability) "
                                    "into the paper-mode figure cache.")
    s.add_argument("--run", required=True, help="folder written by celltype train")
    s.add_argument("--data", required=True, help="the dataset folder the run was trained on")
    s.add_argument("--out", default=None, help="default data/results/fig4/<abbr>-<window>-<variant>-<key>")
    s.add_argument("--no-matrices", action="store_true",
                   help="leave out seed 0's (N, N) display matrices (~4 MB at N = 1440; notebook 06 shows them "
                        "for FC only): block summaries, fits and traces are kept (~0.1 MB)")
    s.set_defaults(func=_cmd_summarize)

    b = csub.add_parser("baselines", help="recompute the reference predictors of cached summaries (data only)",
                        description="Score the reference predictors (persistence, average traces, per-step linear "
                                    "history ridge) on the held-out data of every cached summary whose dataset is "
                                    "given, and store them in its summary.json (no weights needed).")
    b.add_argument("--data", required=True, help="the dataset folder the cached runs were trained on")
    b.add_argument("--root", default=None, help="figure cache (default data/results/fig4)")
    b.set_defaults(func=_cmd_baselines)


def _load_for_cli(path: str, condition: str) -> Dataset:
    path_ = Path(path)
    if not path_.exists():
        raise BiornnError(f"--data {path} does not exist; pass a dataset folder written by python -m biornn "
                          "allen build")
    return load_dataset_with_windows(path_, condition if path_.is_dir() else None)


def _cmd_train(args) -> int:
    condition = condition_name(args.condition)
    out = require_writable(args.out, "--out")  # before any data is read or any epoch trained
    overrides: dict = {"window": args.window, "seeds": tuple(parse_seeds(args.seeds))}
    if args.sizes:
        try:
            overrides["sizes"] = tuple(int(v) for v in args.sizes.split(","))
        except ValueError:
            raise BiornnError(f"bad --sizes {args.sizes!r}; give three integers Pyr,SST,VIP such as 192,32,16"
                              ) from None
    for name in ("dense_epochs", "finetune_epochs", "input_mapping", "pruning", "checkpoint_rule",
                 "within_table", "inter_table", "standardize", "stimulus_inputs", "initial_state", "burn_in",
                 "resample"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.vanilla:
        overrides["dale"] = False
    config = celltype_config(condition, args.mode, published=args.published, variant=args.variant, **overrides)
    connectivity_tables(config)  # validate the tables before loading data
    dataset = _load_for_cli(args.data, condition)
    result = train_celltype(config, dataset, device=args.device, out=out, resume=not args.no_resume,
                            checkpoint_every=args.checkpoint_every, kernels=args.kernels)
    final = np.mean([r["finetune_loss"][-1] for r in result.runs])
    r2 = np.mean([np.median(r["heldout"]["sparse"]["r2"]) for r in result.runs])
    heldout = all(r.get("heldout_split", "heldout") == "heldout" for r in result.runs)
    label = "held-out median R2" if heldout else "training-data median R2 (the dataset has no held-out split)"
    print(f"{config.condition}/{config.window}/{config.variant}: {len(config.seeds)} seeds, N = "
          f"{result.arrays['W_sparse'].shape[-1]}, {config.dense_epochs} + {config.finetune_epochs} epochs on "
          f"{result.device} in {result.wall_seconds:.1f} s; final fine-tune loss {final:.4g}, {label} "
          f"{r2:.3f} (mean over seeds) -> {out}")
    return 0


def _cmd_summarize(args) -> int:
    result = load_celltype(args.run)
    dataset = _load_for_cli(args.data, result.config.condition)
    summary = summarize(result, dataset, matrices_seed=None if args.no_matrices else 0)
    out = Path(args.out) if args.out else summary_dir(result.config, twin=result.data.get("twin"))
    save_summary(summary, out)
    print(f"summary of {args.run} -> {out}")
    return 0


def _cmd_baselines(args) -> int:
    root = Path(args.root) if args.root else RESULTS_DIR / "fig4"
    folders = sorted(p.parent for p in root.glob("*/summary.json"))
    if not folders:
        raise BiornnError(f"no Figure 4 summaries under {root}; pass --root or summarise runs first")
    datasets: dict = {}
    for folder in folders:
        condition = load_summary_json(folder)["config"]["condition"]
        if condition not in datasets:
            datasets[condition] = _load_for_cli(args.data, condition)
        base = refresh_baselines(folder, datasets[condition])
        print(f"{folder.name}: held-out median r " + ", ".join(f"{k} {np.median(v['r']):.3f}" for k, v in base.items()))
    return 0
