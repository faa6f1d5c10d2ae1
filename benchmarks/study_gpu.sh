#!/usr/bin/env bash
# The paper's recipe on real images, on one GPU (issue 13): the full-width CIFAR ResNet-18
# (512-d features, projector 2048-2048-256), the whole Fashion-MNIST training set (60,000
# images; evaluation on its 10,000 test images), MoCo v2, BYOL, Barlow Twins and SimSiam
# with and without W2, seed 0, batch 256, bf16 mixed precision, and as many epochs as let
# all eight runs and their evaluation fit in BUDGET minutes (default 8): examples/study.py
# first times a few steps of each method (with W2) and one evaluation, and picks the epochs
# from that (recorded in study.md / plan.json).
#
# Written for the H200 device machine, which has no network: it has torch, torchvision,
# lightning, pytorch-lightning, tqdm and matplotlib, but not lightly, and no dataset.
# Before the call, in the repository root (data/ and .whl/ are ignored by git, so they travel
# only when named in `carry`; together about 31 MB):
#
#   mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl lightly==1.6.0
#
# (the first needs `apt-get install dataset-fashion-mnist`). Then the device tool's run:
#
#   command:   bash benchmarks/study_gpu.sh data/fashion-mnist
#   carry:     ["data/fashion-mnist", ".whl"]
#   timeout_s: 600
#
# Results: study.md, study.png, study.json, plan.json, log.txt and runs.tar.gz (one JSON per
# run) in $OUT (they come back to this machine); without $OUT in benchmarks/results/study_gpu.
# Commit them under benchmarks/results/study_gpu/.
#
# ACCELERATOR (default gpu) and STUDY_ARGS (appended; later flags win) exist for a dry run of
# this script on a CPU, e.g. ACCELERATOR=cpu STUDY_ARGS="--width 4 --train-subset 64
# --test-subset 32 --batch-size 16 --precision 32-true --num-workers 0" ... 0.3
set -euo pipefail

DATA=${1:?usage: bash benchmarks/study_gpu.sh FASHION_MNIST_DIR [BUDGET_MINUTES]}
BUDGET=${2:-${BUDGET:-8}}
DEST=${OUT:-benchmarks/results/study_gpu}
WORK=$(mktemp -d)/study
mkdir -p "$DEST"

# lightly (pure Python) next to the machine's own torch; w2reg from this tree's src/ (laid out
# as its wheel is), no build tools needed
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/lightly-*.whl
rm -rf /tmp/site/w2reg && cp -r src/w2reg /tmp/site/w2reg
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, torchvision, lightly, w2reg; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'lightly', lightly.__version__)"

status=0
python3 examples/study.py \
    --dataset fashion-mnist --data-dir "$DATA" \
    --methods mocov2 byol barlow_twins simsiam --seeds 0 \
    --width 64 --proj-hidden-dim 2048 --proj-output-dim 256 --batch-size 256 \
    --budget-minutes "$BUDGET" \
    --accelerator "${ACCELERATOR:-gpu}" --precision bf16-mixed --num-workers 14 \
    --out-dir "$WORK" ${STUDY_ARGS:-} 2>&1 | tee "$DEST/log.txt" || status=$?

# $OUT takes at most 8 files: the summary files, and the per-run JSONs as one archive
for f in study.md study.png study.json plan.json; do
    if [ -f "$WORK/$f" ]; then cp "$WORK/$f" "$DEST/"; fi
done
if [ -d "$WORK/runs" ]; then tar czf "$DEST/runs.tar.gz" -C "$WORK" runs; fi
exit "$status"
