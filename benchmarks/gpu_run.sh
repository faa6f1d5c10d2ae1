#!/usr/bin/env bash
# All GPU measurements of issue 9 in one run, everything written under $OUT.
#
#   on a CUDA machine, from the repository root:
#       OUT=/some/dir bash benchmarks/gpu_run.sh
#   through the project's device tool (carry .whl when benchmarks/gpu_wheels.sh made it):
#       run(command="bash benchmarks/gpu_run.sh", carry=[".whl"], timeout_s=600)
#   a CPU smoke test of the plumbing (tiny sizes, no GPU):
#       OUT=/tmp/gpu_smoke GPU_RUN_SMOKE=1 bash benchmarks/gpu_run.sh
#
# Stages, each under its own time limit so that one slow stage cannot eat the others
# (at most 520 s plus setup; the device tool allows 600 s per command):
#   1. tests/test_cuda.py: values and gradients on CUDA, the TF32 flag restored, and the
#      training path (w2_uniformity, W2Uniformity, a lightly BYOLW2 training_step) under
#      torch.cuda.set_sync_debug_mode("error")                           -> gpu_run.log
#   2. benchmarks/bench_w2.py --compile: every method vs the recipe       -> bench_w2.json
#   3. benchmarks/bench_step.py: the paper's step, lightly and solo-learn, +/- W2
#                                                                        -> bench_step.json
#   4. benchmarks/bench_scaling.py: time and memory up to 8192 x 8192     -> bench_scaling.json
#   5. ../shared/tools/gpu_probe.py (an independent probe), if present   -> gpu_probe.json
# Text output of every stage goes to $OUT/gpu_run.log (5 files in all: the tool returns 8).
#
# Python packages: the machine's python3 (torch, lightning, scipy, pytest) plus, when the
# folder .whl exists, the wheels in it (lightly, hydra-core, solo-learn...; see
# benchmarks/gpu_wheels.sh). w2reg itself is copied to a private site folder (the source tree
# keeps w2reg/ and adapters/ apart; the wheel maps adapters/ to w2reg.adapters).
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$REPO/gpu_out}"
SMOKE="${GPU_RUN_SMOKE:-0}"
PY="${PYTHON:-python3}"
SITE="$(mktemp -d /tmp/w2reg_site.XXXX)"
LOG="$OUT/gpu_run.log"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

say() { echo "=== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }

say "gpu_run.sh in $REPO, OUT=$OUT, smoke=$SMOKE, git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$REPO"/.whl/*.whl 2>&1 | tail -3 | tee -a "$LOG"
fi
rm -rf "$SITE/w2reg" && cp -r "$REPO/src/w2reg" "$SITE/w2reg"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# the independent probe: $GPU_PROBE (relative paths are from the repository root), else
# ../shared/tools/gpu_probe.py beside the checkout (it does not travel to a device machine),
# else the copy benchmarks/gpu_wheels.sh puts in .whl/, else shared/tools/ in the checkout
PROBE=""
GP="${GPU_PROBE:-}"
case "$GP" in ""|/*) ;; *) GP="$REPO/$GP" ;; esac
for candidate in "$GP" "$REPO/../shared/tools/gpu_probe.py" "$REPO/.whl/gpu_probe.py" \
    "$REPO/shared/tools/gpu_probe.py"; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then PROBE="$candidate"; break; fi
done
cd /tmp || exit 1  # never import the source tree's w2reg/ (it lacks w2reg.adapters)
"$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__,
      "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))
for name in ("w2reg", "lightning", "lightly", "solo", "hydra", "scipy"):
    try:
        mod = importlib.import_module(name)
        print(f"  {name}: {getattr(mod, '__version__', '?')} at {mod.__file__}")
    except Exception as err:  # noqa: BLE001 - a report, not a failure
        print(f"  {name}: not importable ({type(err).__name__}: {err})")
EOF
"$PY" -c "import os; print('load avg', os.getloadavg())" | tee -a "$LOG"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee -a "$LOG"

if [ "$SMOKE" = "1" ]; then
    DEV=cpu; W2_ARGS="--device cpu --repeats 1 --warmup 1 --budget 2"
    STEP_ARGS="--device cpu --batch-size 8 --steps 1 --warmup 1"
    SCALE_ARGS="--device cpu --max-seconds 0.3 --repeats 1 --in-process"
    PROBE_ARGS="--device cpu --quick"; T1=300; T2=300; T3=300; T4=300; T5=300
else
    DEV=cuda; W2_ARGS="--device cuda --compile"; STEP_ARGS="--device cuda"
    SCALE_ARGS="--device cuda --max-seconds 2 --repeats 2"
    PROBE_ARGS="--device cuda --budget-s 70"; T1=60; T2=180; T3=110; T4=80; T5=90
fi

say "1/5 tests/test_cuda.py (values on CUDA, TF32 flag, sync-debug checks)"
timeout "$T1" "$PY" -m pytest -q -p no:cacheprovider --rootdir "$REPO" "$REPO/tests/test_cuda.py" \
    -rs 2>&1 | tee -a "$LOG"

say "2/5 bench_w2.py $W2_ARGS"
timeout "$T2" "$PY" "$REPO/benchmarks/bench_w2.py" $W2_ARGS --json "$OUT/bench_w2.json" 2>&1 \
    | tee -a "$LOG"

say "3/5 bench_step.py $STEP_ARGS"
timeout "$T3" "$PY" "$REPO/benchmarks/bench_step.py" $STEP_ARGS --json "$OUT/bench_step.json" 2>&1 \
    | tee -a "$LOG"

say "4/5 bench_scaling.py $SCALE_ARGS"
timeout "$T4" "$PY" "$REPO/benchmarks/bench_scaling.py" $SCALE_ARGS \
    --json "$OUT/bench_scaling.json" 2>&1 | tee -a "$LOG"

if [ -n "$PROBE" ]; then
    say "5/5 gpu_probe.py ($PROBE) $PROBE_ARGS"
    timeout "$T5" "$PY" "$PROBE" $PROBE_ARGS --json "$OUT/gpu_probe.json" 2>&1 | tee -a "$LOG"
else
    say "5/5 gpu_probe.py not found (\$GPU_PROBE, ../shared/tools/, .whl/, shared/tools/): skipped"
fi
say "done; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
