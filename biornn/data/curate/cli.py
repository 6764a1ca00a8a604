"""The ``allen`` command: ``allen select``, ``allen plan`` and ``allen build``.
"""

from __future__ import annotations

import warnings

from biornn.core.conditions import CONDITIONS
from biornn.core.config import allen_cache_dir
from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes
from biornn.data.allen import (
    DEFAULT_LAYER_RULE,
    LAYER_RULES,
    SELECTION_COLUMNS,
    count_table,
    load_metadata,
    population_counts,
    select_experiments,
)
from biornn.data.allen_nwb import AllenCacheSource, add_plan_parser, cap_per_population
from biornn.data.curate.checks import build_metadata, check_build_args, prepare_source
from biornn.data.curate.datasets import build_datasets, open_source
from biornn.data.curate.files import require_writable, save_dataset
from biornn.data.curate.windows import (
    FRAMINGS,
    HELDOUT_MODES,
    NO_CHANGE_ALIGNMENTS,
    OMISSION_FILTERS,
    SMOOTHING,
    CurateConfig,
)
from biornn.data.synthetic import write_ground_truth


def register_cli(sub) -> None:
    """Add ``allen select``, ``allen plan`` and ``allen build`` to the command line."""
    p = sub.add_parser("allen", help="Allen Visual Behavior data: select experiments, build training datasets",
                       description="Allen Visual Behavior Ophys pipeline (see biornn.data.allen and "
                                   "biornn.data.curate).")
    allen_sub = p.add_subparsers(dest="allen_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = allen_sub.add_parser("select", help="select experiments and write one row per (experiment, population)")
    s.add_argument("--metadata", default="bundled",
                   help="'bundled' (tables shipped in the allensdk wheel), a folder of release CSVs, or a cache folder")
    s.add_argument("--layer-rule", choices=LAYER_RULES, default=DEFAULT_LAYER_RULE)
    s.add_argument("--out", required=True, help="output CSV file")
    s.set_defaults(func=_cmd_select)


    add_plan_parser(allen_sub)

    b = allen_sub.add_parser("build", help="build the bootstrap training datasets of one or more conditions",
                             description="Cut event windows, bootstrap, smooth and write DIR/<condition>.npz plus "
                                         "DIR/<condition>.json per condition.")
    b.add_argument("--source", required=True,
                   help="'twin' (offline digital twin), an AllenSDK cache folder (offline) or 's3' (download)")
    b.add_argument("--cache-dir", default=allen_cache_dir(), help="cache folder for --source s3")
    b.add_argument("--max-experiments", type=int, default=None,
                   help="at most K experiments per population (a smoke run of the real pipeline)")
    b.add_argument("--workers", type=int, default=1, help="worker processes reading experiments (real cache)")
    b.add_argument("--allow-missing", action="store_true",
                   help="build without experiments whose files cannot be read (listed in the manifest) instead of "
                        "failing")
    b.add_argument("--condition", required=True,
                   help=f"'all' or a comma-separated list of: {', '.join(CONDITIONS)} (or FC, FN, FO, NC, NN, NO)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--metadata", default=None,
                   help="metadata for the selection (default: bundled for the twin, the cache folder otherwise)")
    b.add_argument("--layer-rule", choices=LAYER_RULES, default=DEFAULT_LAYER_RULE)
    b.add_argument("--omission-filter", choices=OMISSION_FILTERS, default="window")
    b.add_argument("--framing", choices=FRAMINGS, default="timestamps")
    b.add_argument("--no-change-alignment", choices=NO_CHANGE_ALIGNMENTS, default="second_flash")
    b.add_argument("--smoothing", choices=SMOOTHING, default="smooth_then_shift")
    b.add_argument("--heldout", choices=HELDOUT_MODES, default="trials")
    b.add_argument("--windows", action="store_true", help="also write DIR/<condition>_windows.npz (every row)")
    b.add_argument("--mode", choices=("quick", "paper"), default=None,
                   help="twin session length (default $BIORNN_MODE or quick)")
    b.add_argument("--twin", choices=("planted", "null"), default="planted",
                   help="with --source twin: planted differences between conditions, or none (the null twin)")
    b.add_argument("--twin-seed", type=int, default=None, metavar="K",
                   help="with --source twin: sample seed K of the twin (timelines, noise, observations; the network "
                        "W_true stays that of --seed), for independently seeded replicates of one twin")
    b.set_defaults(func=_cmd_build)


def _cmd_select(args) -> int:
    out = require_writable(args.out, "--out", folder=False)
    meta = load_metadata(args.metadata)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        selection = select_experiments(meta, layer_rule=args.layer_rule)
    table = selection[list(SELECTION_COLUMNS)]
    atomic_write_bytes(out, table.to_csv(index=False).encode())
    counts = population_counts(selection)
    print(f"{len(table)} rows ({table['ophys_experiment_id'].nunique()} experiments) under layer rule "
          f"{args.layer_rule!r} from {meta.source} -> {out}")
    print(count_table(selection).to_string())
    for w in caught:
        print(f"warning: {w.message}")
    empty = int((counts["n_experiments"] == 0).sum())
    if empty:
        print(f"warning: {empty} empty populations; the 18-population model cannot be built under this rule")
    return 0


def _cmd_build(args) -> int:
    conditions, out, folder = check_build_args(args)
    config = CurateConfig(seed=args.seed, layer_rule=args.layer_rule, omission_filter=args.omission_filter,
                          framing=args.framing, no_change_alignment=args.no_change_alignment,
                          smoothing=args.smoothing, heldout=args.heldout)
    meta = build_metadata(args, folder)
    if args.twin_seed is not None and args.twin_seed < 0:
        raise BiornnError(f"--twin-seed {args.twin_seed}; use a non-negative integer")
    source = (open_source("twin", seed=args.seed, mode=args.mode, metadata=meta, twin=args.twin,
                          twin_seed=args.twin_seed)
              if args.source == "twin" else
              AllenCacheSource(folder, download=args.source == "s3", workers=args.workers))
    selection = cap_per_population(select_experiments(meta, layer_rule=args.layer_rule), args.max_experiments)
    work_dir = prepare_source(source, selection, conditions, config, out, args.allow_missing)
    datasets = build_datasets(source, selection, conditions=conditions, config=config, keep_windows=args.windows,
                              work_dir=work_dir, allow_missing=args.allow_missing)
    report = next(iter(datasets.values())).manifest["report"]
    if work_dir is not None:
        print(f"experiments: {report['n_resumed']} read from {work_dir} (extracted earlier), {report['n_extracted']} "
              f"extracted now, {len(report['failed'])} failed, {len(report['skipped'])} skipped")
    if args.source == "twin":

        print(f"ground truth ({args.twin} twin) -> {write_ground_truth(source.config, out)}")
    for cond, ds in datasets.items():
        paths = save_dataset(ds, out, windows=args.windows)
        print(f"{cond}: inputs {ds.inputs.shape}, held-out {ds.heldout_inputs.shape}, rows "
              f"{int(ds.row_counts.sum())} -> {paths[0]}")
    return 0
