"""The ``compare`` command: block differences between two conditions, twin recovery, the paper-mode queue and the
joint estimators (:mod:`biornn.experiments.fig5.recovery`)."""

from __future__ import annotations

import json
from pathlib import Path

from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes
from biornn.experiments.fig5 import joint_linear_report, joint_rnn
from biornn.experiments.fig5.joint_linear import DEFAULT_CODE_SHIFT
from biornn.experiments.fig5.joint_linear_report import RESAMPLE_STARTS
from biornn.experiments.fig5.recovery import (
    ESTIMATORS,
    TWIN_KINDS,
    describe,
    report_from_cache,
    run_queue,
    write_report,
)
from biornn.stats.blocks import GRANULARITIES, ORDERS, load_models
from biornn.stats.comparisons import compare_conditions
from biornn.stats.significance import CORRECTIONS, TESTS


def register_cli(sub) -> None:
    """Add ``compare`` to the command line."""
    p = sub.add_parser("compare", help="block differences of recurrent connectivity between two conditions",
                       description="Compare the runs of condition B with those of condition A (differences B - A) "
                                   "at the population, layer and area level: block mean |W| (zeros included), "
                                   "realised density and mean |W| over surviving connections, with a run-label "
                                   "permutation test (or Welch t), corrected within each table, and Hedges' g. "
                                   "Writes differences_<granularity>.csv and comparison.json to --out.")
    p.add_argument("--models", nargs=2, metavar=("DIR_A", "DIR_B"),
                   help="two Fig 4 run directories (weights.npz with W_sparse and population)")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--weights", default="W_sparse", help="which array of weights.npz (default W_sparse)")
    p.add_argument("--test", choices=TESTS, default="permutation")
    p.add_argument("--correction", choices=CORRECTIONS, default="fdr_bh",
                   help="fdr_bh (Benjamini-Hochberg, default) or holm, over the tested blocks of each table")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--n-resamples", type=int, default=9999, help="random relabellings when enumeration is too big")
    p.add_argument("--seed", type=int, default=0, help="seed of the random relabellings")
    p.add_argument("--tol", type=float, default=0.0, help="an entry survives when |w| > tol (default 0)")
    p.add_argument("--order", choices=ORDERS, default="display", help="display (L2/3, L4, L5) or index (L4 first)")
    p.set_defaults(func=_cmd_compare)
    csub = p.add_subparsers(dest="compare_command", metavar="ACTION", parser_class=type(p))
    r = csub.add_parser("recovery", help="planted vs null twin: which planted pathway changes the fits recover",
                        description="Read the cached runs of the planted and the null twin (trains nothing) and "
                                    "write OUT/recovery.json: per condition pair and pathway the planted, fitted and "
                                    "null deltas, Welch test, n, BH correction, recovered / flagged, and totals.")
    r.add_argument("--root", default=None, help="figure cache (default data/results/fig4)")
    r.add_argument("--variant", default="recommended", help="published, corrected, recommended ...")
    r.add_argument("--window", choices=("full", "half"), default=None,
                   help="time window (default: half for --estimator separate, full for joint-linear)")
    r.add_argument("--out", required=True, help="output folder (recovery.json)")
    r.add_argument("--estimator", choices=ESTIMATORS, default="separate",
                   help="separate: the cached per-condition RNN runs (default); joint-linear: one linear fit of all "
                        "six conditions per experiment resample "
                        "(biornn.experiments.fig5.joint_linear, fits now, minutes); joint-rnn")
    r.add_argument("--sampling", choices=("population", "session"), default="population",
                   help="joint-linear: draw experiments per population, or the sessions that image them together")
    r.add_argument("--resamples", type=int, default=200, help="joint-linear: experiment resamples per twin")
    r.add_argument("--null-seeds", default="0,1,2,3,4",
                   help="joint-linear: sample seeds of the null twins (built under --data-root when missing)")
    r.add_argument("--kinetics-scale", type=float, default=1.0,
                   help="joint-linear: factor on the assumed indicator time constants (misspecification check)")
    r.add_argument("--resample-starts", choices=RESAMPLE_STARTS, default="warm",
                   help="joint-linear: each resample's fit starts from the point fit (warm) or from all its starts")
    r.add_argument("--code-shift", type=int, choices=(0, 1, 2), default=DEFAULT_CODE_SHIFT,
                   help="joint estimators: the codes of ΔF/F frame t + k drive rate frame t (default 1, the filter's "
                        "own lag; 0 = the committed reports before this option)")
    r.add_argument("--data-root", default="data/allen", help="joint estimators: where the twin datasets are")
    r.add_argument("--rnn-size", choices=("quick", "paper"), default="paper",
                   help="joint-rnn: population sizes (paper: N = 1440; quick: N = 192, for a trial run)")
    r.add_argument("--rnn-dtype", choices=("float32", "float64"), default="float32",
                   help="joint-rnn: arithmetic (float32 measured 2.3x faster per Adam step at N = 1440 on one core)")
    r.add_argument("--device", default=None, help="joint-rnn: torch device (default CUDA when present)")
    r.add_argument("--reverse", action="store_true",
                   help="joint-rnn: a second worker on the same --out, taking twins and resamples from the end")
    r.add_argument("--from-cache", default=None,
                   help="joint estimators: recompute the report from the joint-linear- or joint-rnn-bootstrap.npz "
                        "the estimator wrote (fits nothing)")
    r.set_defaults(func=_cmd_recovery)
    q = csub.add_parser("queue", help="train + summarise every missing (twin, condition) of a variant and window",
                        description="Resumable background queue for the recovery report: builds both twins' "
                                    "datasets once, trains each missing condition (resuming from checkpoints) and "
                                    "writes its summary into the figure cache. Run it again after an interruption.")
    q.add_argument("--variant", default="recommended", choices=("published", "corrected", "recommended"))
    q.add_argument("--window", choices=("full", "half"), default="half")
    q.add_argument("--twins", default="planted,null", help="comma-separated: planted, null")
    q.add_argument("--mode", choices=("quick", "paper"), default="paper")
    q.add_argument("--data-root", default="data/allen", help="where the twin datasets are built")
    q.add_argument("--runs-root", default="data/runs", help="where full runs and checkpoints go (not committed)")
    q.add_argument("--device", default=None)
    q.add_argument("--stack", action="store_true",
                   help="train a twin's missing conditions as one model batch (for CUDA, where kernel launches "
                        "set the time; not timed on the CPU, where a bigger Figure 2 batch measured no faster)")
    q.set_defaults(func=_cmd_queue)


def _cmd_queue(args) -> int:
    twins = tuple(t.strip() for t in args.twins.split(","))
    bad = [t for t in twins if t not in TWIN_KINDS]
    if bad:
        raise BiornnError(f"unknown twin {bad[0]!r} in --twins; use planted, null or both")
    written = run_queue(args.variant, args.window, twins, args.mode, args.data_root, args.runs_root,
                        device=args.device, stack=args.stack)
    print(f"queue done: {len(written)} new summaries")
    return 0


def _cmd_recovery(args) -> int:
    if args.estimator == "joint-rnn":
        return _cmd_joint_rnn(args)
    if args.estimator == "joint-linear":
        return _cmd_joint_linear(args)
    if args.sampling != "population":
        raise BiornnError(f"--sampling {args.sampling} applies to --estimator joint-linear; the separate runs drew "
                          "their own resamples")
    args.window = args.window or "half"
    report = report_from_cache(args.root, args.variant, args.window)
    path = write_report(report, args.out)
    print(describe(report))
    print(f"held-out median r per condition (planted twin): {report['heldout_median_r']['planted']}")
    print(f"wrote {path}")
    return 0


def _null_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise BiornnError(f"--null-seeds {text!r}; use comma-separated integers such as 0,1,2,3,4") from None
    if not seeds or min(seeds) < 0:
        raise BiornnError(f"--null-seeds {text!r}; use one or more non-negative integers")
    return seeds


def _cmd_joint_rnn(args) -> int:
    """``compare recovery --estimator joint-rnn`` (:func:`biornn.experiments.fig5.joint_rnn.run_recovery`;
    resumable)."""
    if args.kinetics_scale != 1.0:
        raise BiornnError("--estimator joint-rnn fits with the twin's kinetics; drop --kinetics-scale")
    if args.from_cache:
        report, path = joint_rnn.report_from_cache(args.from_cache, args.out)
        print(joint_linear_report.describe(report))
        print(f"wrote {path}")
        return 0
    if args.resamples < 2:
        raise BiornnError(f"--resamples {args.resamples}; use at least 20 for a report")
    seeds = _null_seeds(args.null_seeds)
    config = joint_rnn.rnn_config(args.rnn_size, dtype=args.rnn_dtype, code_shift=args.code_shift,
                                  window=args.window or "full")
    planted = joint_linear_report.ensure_twin(args.data_root, "planted", "paper", 0)
    nulls = [(s, joint_linear_report.ensure_twin(args.data_root, "null", "paper", s)) for s in seeds]
    report, path = joint_rnn.run_recovery(args.out, planted, nulls, config, resamples=args.resamples,
                                          sampling=args.sampling, warm=False, device=args.device, reverse=args.reverse,
                                          log=lambda line: print(line, flush=True))
    print(joint_linear_report.describe(report))
    print(f"wrote {path}")
    return 0


def _cmd_joint_linear(args) -> int:
    """``compare recovery --estimator joint-linear``
    (:func:`biornn.experiments.fig5.joint_linear_report.run_recovery`)."""
    seeds = _null_seeds(args.null_seeds)
    report, path = joint_linear_report.run_recovery(
        args.out, window=args.window or "full", sampling=args.sampling, resamples=args.resamples, null_seeds=seeds,
        kinetics_scale=args.kinetics_scale, root=args.data_root, from_cache=args.from_cache,
        starts=args.resample_starts, code_shift=args.code_shift)
    print(joint_linear_report.describe(report))
    print(f"wrote {path}")
    return 0


def _cmd_compare(args) -> int:
    if not args.models or not args.out:
        raise BiornnError("compare needs --models DIR_A DIR_B and --out DIR (or the action: compare recovery ...)")
    if args.n_resamples < 1:
        raise BiornnError(f"--n-resamples {args.n_resamples}; use a positive number such as 9999")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BiornnError(f"output path {out} is a file; pass a folder path for --out")
    a = load_models(args.models[0], args.weights)
    b = load_models(args.models[1], args.weights)
    comp = compare_conditions(a, b, order=args.order, tol=args.tol, test=args.test, correction=args.correction,
                              alpha=args.alpha, n_resamples=args.n_resamples, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for g in GRANULARITIES:
        path = out / f"differences_{g}.csv"
        atomic_write_bytes(path, comp.table(g).to_csv(index=False, float_format="%.6g").encode())
        written.append(path.name)
    meta = comp.meta()
    meta.update(models={"A": a.source, "B": b.source}, weights=args.weights, files=written,
                columns={"mean_a": "run mean in A", "mean_b": "run mean in B", "diff": "mean_b - mean_a",
                         "hedges_g": "effect size", "p": "raw two-sided p", "p_adj": f"{args.correction} adjusted p",
                         "tested": "block in the correction family", "n_a": "runs of A with a value",
                         "n_b": "runs of B with a value"})
    atomic_write_bytes(out / "comparison.json", (json.dumps(meta, indent=1) + "\n").encode())
    print(comp.describe())
    print(f"wrote {', '.join(written)} and comparison.json to {out}")
    return 0




