#!/usr/bin/env bash
# One prepared run for a lent GPU machine: benchmark table + timed paper-mode trainings (benchmarks/README.md).
#
#   OUT=/some/dir bash benchmarks/gpu.sh            # on the GPU machine (OUT is set by the runner; default ./gpu-out)
#   bash benchmarks/gpu.sh --dry-run                # here: CPU smoke benchmark, every biornn command only parsed
#   bash benchmarks/gpu.sh --prepare                # here: copy allensdk's bundled metadata into .gpu-carry/vbo
#
# Writes into $OUT (at most 8 files come back from the machine): timings.json (one entry per stage, rewritten after
# every stage, so a run cut short still leaves the stages that finished), bench.json (benchmarks/run.py), gpu.log
# (every stage's output). Paper-mode caches go to a scratch folder ($GPU_SCRATCH, default /tmp/biornn-gpu-scratch)
# through BIORNN_RESULTS: the repository's data/results is never written.
#
# Settings (environment): GPU_BUDGET_S (whole run, default 540 s: stages that would start with under 20 s left are
# skipped, every stage's timeout is cut to what is left), GPU_STAGES (space-separated stage names, default below),
# PYTHON (default python3), GPU_TWIN_DIR (a built twin dataset folder with all six conditions; default: build one),
# BIORNN_METADATA (release CSV folder for the twin build when allensdk is not installed; default .gpu-carry/vbo),
# GPU_TWIN_PACK (a twin packed here with benchmarks/twin_pack.py, default .gpu-carry/twinpack if present: unpacked
# instead of rebuilding, since numpy 2 on the GPU machine rebuilds it with other float64 round-off),
# GPU_BENCH_ARGS (extra benchmarks/run.py arguments), GPU_SCRATCH, GPU_DEVICE (default cuda), GPU_FIG4_ARGS (extra celltype train arguments, for local checks only).
#
# Extra stages (not in the default list): twinsha (sha256 of every condition's prepared arrays, as a run records
# them), fig4c-COND-WINDOW-VARIANT (train with variant published or corrected, summarise into the figure cache,
# pack all summaries so far into $OUT/fig4_summaries.tar.gz), fig4stack-TWIN (planted or null: the recommended
# variant's six half-window conditions of that twin as one model batch, summaries packed into
# $OUT/fig4_stack_summaries.tar.gz), cudatests (the cell-type, model and constraint unit tests, which then run on CUDA),
# wavenn (Figure 3 wave with the reference's stack: nn.RNN, float32, CUDA, TF32 as torch allows by default; trains the
# wave networks of $GPU_WAVE_SEEDS, default 0-9, prunes them, writes $OUT/wave_nnrnn.json), jointrnn (builds a
# planted paper twin with its rows, times one paper-size joint RNN fit with $GPU_JRNN_STEPS / $GPU_JRNN_WARMUP Adam
# steps, default 1500 / 300, writes $OUT/joint_rnn.json).
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
MODE=run
case "${1:-}" in
    --dry-run) MODE=dry ;;
    --prepare) MODE=prepare ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu.sh [--dry-run | --prepare]" >&2; exit 2 ;;
esac
PY="${PYTHON:-python3}"

if [ "$MODE" = prepare ]; then
    src=$("$PY" -c "from biornn.data.allen import bundled_metadata_dir; print(bundled_metadata_dir())") || exit 1
    mkdir -p .gpu-carry/vbo && cp "$src"/*.csv .gpu-carry/vbo/ || exit 1
    echo "copied $(ls .gpu-carry/vbo | wc -l) metadata tables ($(du -sh .gpu-carry/vbo | cut -f1)) to .gpu-carry/vbo;"
    echo "ignore it (echo /.gpu-carry/ >> .git/info/exclude) and name .gpu-carry in the run's carry list"
    exit 0
fi

OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
SCRATCH="${GPU_SCRATCH:-${TMPDIR:-/tmp}/biornn-gpu-scratch}"
mkdir -p "$SCRATCH" || exit 2
export BIORNN_RESULTS="$SCRATCH/results"
BUDGET_S="${GPU_BUDGET_S:-540}"
DEFAULT_STAGES="info bench twin fig4-FC fig2-flipflop fig2-wave fig2-digits fig3 fig4-FN fig4-FO fig4-NC fig4-NN fig4-NO"
STAGES="${GPU_STAGES:-$DEFAULT_STAGES}"
LOG="$OUT/gpu.log"
TIMINGS="$OUT/timings.json"
DEVICE="${GPU_DEVICE:-cuda}"
[ "$MODE" = dry ] && DEVICE=cpu
read -r -a FIG4_EXTRA <<<"${GPU_FIG4_ARGS:-}"
START=$(date +%s)
: >"$LOG"
rm -f "$TIMINGS"

# ---- bookkeeping -----------------------------------------------------------------------------------------------
# record NAME STATUS RC WALL TIMEOUT COMMAND [DETAIL_JSON]: append one entry to timings.json (atomic rewrite).
record() {
    "$PY" - "$TIMINGS" "$@" <<'PYEOF' || echo "!!! could not write $1 to timings.json" | tee -a "$LOG"
import datetime, json, os, sys
path, name, status, rc, wall, limit, cmd = sys.argv[1:8]
detail = sys.argv[8] if len(sys.argv) > 8 else ""
try:
    with open(path) as f:
        data = json.load(f)
except (OSError, ValueError):
    data = {"stages": []}
entry = {"stage": name, "status": status, "rc": int(rc), "wall_s": round(float(wall), 3),
         "timeout_s": float(limit), "command": cmd,
         "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
if detail:
    try:
        entry["detail"] = json.loads(detail)
    except ValueError:
        entry["detail"] = detail
data["stages"].append(entry)
data["total_wall_s"] = round(sum(e["wall_s"] for e in data["stages"]), 3)
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(data, f, indent=1)
    f.write("\n")
os.replace(tmp, path)
PYEOF
}

# run_stage NAME CAP_S DETAIL_FN COMMAND...: run COMMAND with a timeout of min(CAP_S, budget left), log it, record it.
# DETAIL_FN (or "-") is called as DETAIL_FN NAME and prints a JSON detail for timings.json.
run_stage() {
    local name=$1 cap=$2 detail_fn=$3
    shift 3
    local now left limit rc status t0 t1 wall detail="" part="$SCRATCH/stage.out" shown="$*"
    shown=${shown//"-c $PARSE_ONLY"/-m biornn [parse only]}
    now=$(date +%s)
    left=$((BUDGET_S - (now - START) - 5))
    limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 20 ]; then
        echo "=== [$name] skipped: ${left} s of the ${BUDGET_S} s budget left" | tee -a "$LOG"
        record "$name" skipped 0 0 "$limit" "$shown" '{"reason": "time budget spent"}'
        return 0
    fi
    echo "=== [$name] timeout ${limit} s: $shown" | tee -a "$LOG"
    t0=$(date +%s.%N)
    timeout --kill-after=15 "$limit" "$@" >"$part" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    tr '\r' '\n' <"$part" >>"$LOG"
    tr '\r' '\n' <"$part" | grep -v '^[[:space:]]*$' | tail -n 4 | sed "s/^/    [$name] /"
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    if [ "$detail_fn" != "-" ]; then
        detail=$("$detail_fn" "$name" 2>>"$LOG") || detail=""
    fi
    record "$name" "$status" "$rc" "$wall" "$limit" "$shown" "$detail"
    echo "=== [$name] $status (rc $rc) in ${wall} s" | tee -a "$LOG"
    return 0
}

# "${BIORNN[@]}" ARGS...: runs python -m biornn ARGS (with --dry-run it only parses ARGS with biornn's own parser).
PARSE_ONLY='import sys; from biornn.cli import build_parser; a = build_parser().parse_args(sys.argv[1:]); print("parsed:", " ".join(sys.argv[1:]))'
if [ "$MODE" = dry ]; then
    BIORNN=("$PY" -c "$PARSE_ONLY")
else
    BIORNN=("$PY" -m biornn)
fi

# fig4_detail NAME: per-epoch seconds of a celltype run, from metrics.json or (cut short) its resume checkpoint.
fig4_detail() {
    run_detail "$SCRATCH/fig4/${1#fig4-}"
}
fig4c_detail() {
    run_detail "$SCRATCH/fig4c/${1#fig4c-}"
}
run_detail() {
    "$PY" - "$1" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
run = Path(sys.argv[1])
out = {"folder": str(run)}
hist = None
if (run / "metrics.json").exists():
    m = json.loads((run / "metrics.json").read_text())
    r = m["runs"][0]
    hist = {"dense_seconds": [r["epoch_seconds"]["dense"]], "finetune_seconds": [r["epoch_seconds"]["finetune"]]}
    out["wall_seconds"] = m.get("provenance", {}).get("wall_seconds")
    out["device"] = m.get("device")
    out["final_finetune_loss"] = [x["finetune_loss"][-1] for x in m["runs"]]
elif (run / "checkpoints" / "resume.pt").exists():
    import torch
    state = torch.load(run / "checkpoints" / "resume.pt", map_location="cpu", weights_only=False)
    hist = state["history"]
    out["cut_short_at"] = {"stage": state["stage"], "epoch": state["epoch"]}
if hist is not None:
    for stage in ("dense", "finetune"):
        sec = hist[f"{stage}_seconds"][0]
        out[f"{stage}_epochs_done"] = len(sec)
        if sec:
            out[f"{stage}_epoch_s_median"] = statistics.median(sec)
print(json.dumps(out))
PYEOF
}

bench_detail() {
    "$PY" - "$OUT/bench.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ("biornn_s", "naive_s", "ratio", "sparse_s", "limit_fraction", "seconds_per_call")
print(json.dumps({n: {k: r[k] for k in keys if k in r} for n, r in d.items() if n != "meta"}))
PYEOF
}

# ---- the twin dataset the Fig 4 runs train on --------------------------------------------------------------------
TWIN="${GPU_TWIN_DIR:-$SCRATCH/twin}"
META="${BIORNN_METADATA:-}"
if [ -z "$META" ] && [ -d "$ROOT/.gpu-carry/vbo" ]; then
    META="$ROOT/.gpu-carry/vbo"
fi
PACK="${GPU_TWIN_PACK:-$ROOT/.gpu-carry/twinpack}"
TWIN_ARGS=(allen build --source twin --condition all --mode paper --out "$TWIN")
[ -n "$META" ] && TWIN_ARGS+=(--metadata "$META")

# ---- stages ------------------------------------------------------------------------------------------------------
echo "biornn GPU run: mode $MODE, device $DEVICE, budget ${BUDGET_S} s, stages: $STAGES" | tee -a "$LOG"
echo "OUT=$OUT SCRATCH=$SCRATCH BIORNN_RESULTS=$BIORNN_RESULTS" | tee -a "$LOG"
for stage in $STAGES; do
    case $stage in
        info)
            cat >"$SCRATCH/info.sh" <<'SHEOF'
if command -v nvidia-smi >/dev/null; then
    nvidia-smi
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
else
    echo "nvidia-smi: not found"
fi
"$1" - <<'PYEOF'
import platform, sys
import numpy, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), {gpu}, "
      f"numpy {numpy.__version__}")
import biornn, biornn.celltype, biornn.cli, biornn.pruning, biornn.nn.train  # noqa: E401,F401
bad = [m for m in ("allensdk", "seaborn") if m in sys.modules]
print("allensdk/seaborn imported by biornn:", bad or "none")
sys.exit(1 if bad else 0)
PYEOF
SHEOF
            run_stage info 60 - bash "$SCRATCH/info.sh" "$PY"
            ;;
        bench)
            if [ "$MODE" = dry ]; then
                run_stage bench 300 bench_detail "$PY" benchmarks/run.py --device cpu --smoke --threads 1 \
                    --out "$OUT/bench.json"
            else
                read -r -a BENCH_EXTRA <<<"${GPU_BENCH_ARGS:-}"
                run_stage bench 240 bench_detail "$PY" benchmarks/run.py --device cuda --out "$OUT/bench.json" \
                    ${BENCH_EXTRA[@]+"${BENCH_EXTRA[@]}"}
            fi
            ;;
        twin)
            if [ -n "${GPU_TWIN_DIR:-}" ]; then
                record twin skipped 0 0 0 "use $GPU_TWIN_DIR" '{"reason": "GPU_TWIN_DIR given"}'
            elif [ -f "$PACK/pack.json" ]; then
                # a twin built here and packed (benchmarks/twin_pack.py): bit for bit the dataset of the cache
                run_stage twin 150 - "$PY" benchmarks/twin_pack.py unpack "$PACK" "$TWIN"
            else
                run_stage twin 150 - "${BIORNN[@]}" "${TWIN_ARGS[@]}"
            fi
            ;;
        fig4-*)
            cond=${stage#fig4-}
            run_stage "$stage" 180 fig4_detail "${BIORNN[@]}" celltype train --data "$TWIN" --condition "$cond" \
                --seeds 0-4 --out "$SCRATCH/fig4/$cond" --mode paper --device "$DEVICE" --no-resume \
                ${FIG4_EXTRA[@]+"${FIG4_EXTRA[@]}"}
            ;;
        fig4c-*)
            # fig4c-COND-WINDOW-VARIANT (variant published or corrected): train, summarise into the figure cache
            # ($BIORNN_RESULTS/fig4/, --no-matrices) and pack every summary so far into $OUT/fig4_summaries.tar.gz
            IFS=- read -r _ cond win variant <<<"$stage"
            flag=()
            [ "$variant" = published ] && flag=(--published)
            cat >"$SCRATCH/fig4c.sh" <<'SHEOF'
set -e
run=$1; data=$2; shift 2
"$@"
if [ "${MODE:-run}" != dry ]; then
    "$PY" -m biornn celltype summarize --run "$run" --data "$data" --no-matrices
    tar czf "$OUT/fig4_summaries.tar.gz" -C "$BIORNN_RESULTS" fig4
fi
SHEOF
            export PY OUT MODE
            run_stage "$stage" 240 fig4c_detail bash "$SCRATCH/fig4c.sh" "$SCRATCH/fig4c/$cond-$win-$variant" "$TWIN" \
                "${BIORNN[@]}" celltype train --data "$TWIN" --condition "$cond" --window "$win" --seeds 0-4 \
                --out "$SCRATCH/fig4c/$cond-$win-$variant" --mode paper --device "$DEVICE" --no-resume \
                ${flag[@]+"${flag[@]}"} ${FIG4_EXTRA[@]+"${FIG4_EXTRA[@]}"}
            ;;
        fig4stack-*)
            # fig4stack-TWIN (planted or null): the recommended variant's half window, every missing condition of the
            # twin as one model batch (python -m biornn compare queue --stack; builds the paper twin if missing),
            # summaries packed into $OUT/fig4_stack_summaries.tar.gz
            twin=${stage#fig4stack-}
            cat >"$SCRATCH/fig4stack.sh" <<'SHEOF'
set -e
"$@"
if [ "${MODE:-run}" != dry ]; then
    tar czf "$OUT/fig4_stack_summaries.tar.gz" -C "$BIORNN_RESULTS" fig4
fi
SHEOF
            export PY OUT MODE
            run_stage "$stage" 400 - bash "$SCRATCH/fig4stack.sh" "${BIORNN[@]}" compare queue --variant recommended \
                --window half --mode paper --twins "$twin" --stack --device "$DEVICE" \
                --data-root "$SCRATCH/allen" --runs-root "$SCRATCH/runs"
            ;;
        twinsha)
            # sha256 of every condition's prepared arrays (what a run records as data.sha256), to compare with the
            # twin built on another machine: equal hashes = the same dataset bit for bit
            cat >"$SCRATCH/twinsha.py" <<'PYEOF'
import json, sys
from biornn.celltype import prepare_data
from biornn.core.conditions import CONDITIONS
from biornn.data.curate import load_dataset
out = {}
for c in CONDITIONS:
    ds = load_dataset(sys.argv[1], c)
    out[c] = {w: prepare_data(ds, w, c).sha256 for w in ("full", "half")}
print(json.dumps(out))
PYEOF
            twinsha_detail() { tail -n 1 "$SCRATCH/stage.out"; }
            run_stage twinsha 60 twinsha_detail "$PY" "$SCRATCH/twinsha.py" "$TWIN"
            ;;
        cudatests)
            run_stage cudatests 150 - "$PY" -m pytest -q -p no:cacheprovider tests/test_celltype.py \
                tests/test_models.py tests/test_constraints.py
            ;;
        fig2-*)
            run_stage "$stage" 150 - "${BIORNN[@]}" reproduce-fig2 --mode paper --tasks "${stage#fig2-}" \
                --device "$DEVICE"
            ;;
        fig3)
            run_stage fig3 240 - "${BIORNN[@]}" reproduce-fig3 --mode paper --device "$DEVICE"
            ;;
        wavenn)
            # Figure 3 wave on the reference's own stack: torch nn.RNN stepped by hand (the state fed back as
            # relu(a_t)), separate E (102 -> 1) and I (26 -> 1) readouts, float32 on CUDA with torch's default TF32
            # settings, Adam 1e-3, Dale projection after every step, paper sizes (25 epochs, 1000 / 1000 windows of
            # 500 steps, batch 100); then prune each trained network at the 15 levels (3 draws, 200 held-out
            # windows, biornn.pruning's masks) and write $OUT/wave_nnrnn.json (curves, errors, the mid-range log
            # ratio per seed, Spearman of the epoch-6 test loss against it). Seeds: $GPU_WAVE_SEEDS (default 0-9);
            # each seed is written as soon as it is done. --dry-run: 1 seed, tiny sizes, on the CPU.
            cat >"$SCRATCH/wavenn.py" <<'PYEOF'
import json, sys, time
import numpy as np
import torch
from torch import nn
from scipy import stats
from biornn.core.config import parse_seeds
from biornn.nn.constraints import dale_project_
from biornn.experiments.fig3.experiment import SWEEP
from biornn.experiments.fig3.wave_candidates import MID
from biornn.nn.models import EIRNN
from biornn.pruning import prune
from biornn.nn.tasks import make_wave

out_path, device, seeds, dry = sys.argv[1], sys.argv[2], parse_seeds(sys.argv[3]), sys.argv[4] == "dry"
sizes = dict(n_train=20, n_test=10, steps=50) if dry else dict(n_train=1000, n_test=1000, steps=500)
epochs, batch, n_score, draws = (1, 10, 10, 1) if dry else (25, 100, 200, 3)
if dry:
    seeds = seeds[:1]


class RefWave(nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.rnn = nn.RNN(2, 128, nonlinearity="tanh", batch_first=True)
        self.out_e, self.out_i = nn.Linear(102, 1), nn.Linear(26, 1)
        with torch.no_grad():  # start from biornn's initial weights of this seed (paired with the cache)
            self.rnn.weight_ih_l0.copy_(ours.w_ih[0]); self.rnn.bias_ih_l0.copy_(ours.b_ih[0])
            self.rnn.bias_hh_l0.copy_(ours.b_hh[0]); self.rnn.weight_hh_l0.copy_(ours.w_hh[0])
            self.out_e.weight.copy_(ours.w_out[0][0:1, :102]); self.out_i.weight.copy_(ours.w_out[0][1:2, 102:])
            self.out_e.bias.copy_(ours.b_out[0][0:1]); self.out_i.bias.copy_(ours.b_out[0][1:2])

    def forward(self, x):
        h, outs = x.new_zeros(1, x.shape[0], 128), []
        for t in range(x.shape[1]):
            a, _ = self.rnn(x[:, t:t + 1], h)
            outs.append(torch.cat([self.out_e(a[..., :102]), self.out_i(a[..., 102:])], -1))
            h = torch.relu(a).transpose(0, 1)
        return torch.cat(outs, 1)


def mse(model, x, y):
    with torch.no_grad():
        return float(sum(((model(x[i:i + 100]) - y[i:i + 100]) ** 2).sum() for i in range(0, len(x), 100)) / y.numel())


signs = torch.ones(128); signs[102:] = -1
result = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__,
          "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
          "levels": SWEEP.tolist(), "draws": draws, "n_score": n_score, "seeds": {}}
for seed in seeds:
    t0 = time.time()
    data = make_wave([seed], **sizes)
    model = RefWave(EIRNN([seed], 2, 2, readout_mask=data.readout_mask)).to(device)
    xtr, ytr = (torch.from_numpy(a[0]).to(device) for a in (data.x_train, data.y_train))
    xte, yte = (torch.from_numpy(a[0]).to(device) for a in (data.x_test, data.y_test))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=g).to(device)
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            ((model(xtr[idx]) - ytr[idx]) ** 2).mean().backward()
            opt.step()
            dale_project_(model.rnn.weight_hh_l0.data, signs.to(device))
        curve.append(mse(model, xte, yte))
    W = model.rnn.weight_hh_l0.detach().clone()
    err = {m: np.zeros(len(SWEEP)) for m in ("random", "topprob")}
    for j, p in enumerate(SWEEP):
        for k in range(draws):
            for m in err:
                Wp = prune(W.double().cpu()[None], m, float(p), [seed], draw=k)[0][0].float().to(device)
                with torch.no_grad():
                    model.rnn.weight_hh_l0.copy_(Wp)
                err[m][j] += mse(model, xte[:n_score], yte[:n_score]) / draws
        with torch.no_grad():
            model.rnn.weight_hh_l0.copy_(W)
    log_ratio = float(np.log(err["topprob"][MID] / err["random"][MID]).mean())
    result["seeds"][str(seed)] = {"test_loss": curve, "random": err["random"].tolist(),
                                  "topprob": err["topprob"].tolist(), "log_ratio_mid": log_ratio,
                                  "seconds": time.time() - t0}
    done = result["seeds"].values()
    if len(done) >= 3 and not dry:
        early = [d["test_loss"][5] for d in done]
        rho = stats.spearmanr(early, [d["log_ratio_mid"] for d in done])
        result["spearman_epoch6_vs_log_ratio"] = {"rho": float(rho.correlation), "p": float(rho.pvalue),
                                                  "n": len(early), "test": "Spearman, two-sided, descriptive"}
    json.dump(result, open(out_path, "w"), indent=1)
    print(f"seed {seed}: final test MSE {curve[-1]:.4g}, mid-range log(top-prob / random) {log_ratio:+.3f}, "
          f"{time.time() - t0:.0f} s", flush=True)
PYEOF
            if [ "$MODE" = dry ]; then
                run_stage wavenn 120 - "$PY" "$SCRATCH/wavenn.py" "$OUT/wave_nnrnn.json" cpu 0 dry
            else
                run_stage wavenn 500 - "$PY" "$SCRATCH/wavenn.py" "$OUT/wave_nnrnn.json" "$DEVICE" \
                    "${GPU_WAVE_SEEDS:-0-9}" run
            fi
            ;;
        jointrnn)
            # one paper-size joint RNN fit (biornn.experiments.fig5.joint_rnn, issue 26) of a planted twin built with its rows
            JTWIN="$SCRATCH/twin-jointrnn"
            [ -f "$JTWIN/ground_truth.npz" ] || run_stage jointrnn-twin 200 - "${BIORNN[@]}" allen build \
                --source twin --twin planted --mode paper --condition all --windows --out "$JTWIN"
            if [ "$MODE" = dry ]; then
                record jointrnn skipped 0 0 0 "" '{"reason": "dry run"}'
            else
                run_stage jointrnn 400 - "$PY" -c "import sys; from biornn.experiments.fig5.joint_rnn import timed_fit; \
timed_fit(sys.argv[1], sys.argv[2], 'paper', int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])" "$JTWIN" \
                    "$OUT/joint_rnn.json" "${GPU_JRNN_STEPS:-1500}" "${GPU_JRNN_WARMUP:-300}" "$DEVICE"
            fi
            ;;
        *)
            echo "=== unknown stage $stage (known: $DEFAULT_STAGES)" | tee -a "$LOG"
            record "$stage" failed 2 0 0 "" '{"reason": "unknown stage"}'
            ;;
    esac
done
echo "done in $(($(date +%s) - START)) s; stages in $TIMINGS:" | tee -a "$LOG"
"$PY" -c "
import json, sys
for e in json.load(open(sys.argv[1]))['stages']:
    print(f\"  {e['stage']:<14} {e['status']:<8} {e['wall_s']:>9.1f} s (limit {e['timeout_s']:.0f} s)\")
" "$TIMINGS" | tee -a "$LOG"
exit 0
