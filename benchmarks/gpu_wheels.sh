#!/usr/bin/env bash
# Prepare .whl/ for benchmarks/gpu_run.sh: the pure-Python packages the GPU image lacks.
#
# The device image has torch, lightning, pytorch-lightning, scipy, pytest, timm, einops but
# not lightly, hydra-core/omegaconf or solo-learn (see /work/.library/device/KINDS.md), and
# it cannot reach a package index. Run this here (with pip and the solo-learn archive), then
# pass carry=[".whl"] to the device tool. All wheels are pure Python (a few MiB in all);
# a copy of ../shared/tools/gpu_probe.py goes along.
#
#   bash benchmarks/gpu_wheels.sh            # from the repository root
set -eu
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO/.whl"
SOLO_ARCHIVE="${SOLO_ARCHIVE:-$REPO/../shared/third_party/solo-learn/solo-learn-main-9187ea3.tar.gz}"
PY="${PYTHON:-python3}"
mkdir -p "$DEST"
grep -qx '/.whl/' "$REPO/.git/info/exclude" 2>/dev/null \
    || echo '/.whl/' >> "$(git -C "$REPO" rev-parse --git-path info/exclude)"
# lightly and its Hydra config stack; solo-learn's pins (lightning 2.1.2, torchmetrics < 0.12);
# setuptools < 81 for the pkg_resources that lightning 2.1.2 and solo-learn import
"$PY" -m pip wheel --no-deps -q -w "$DEST" \
    lightly==1.6.0 "hydra-core>=1.3,<1.4" "omegaconf>=2.3,<2.4" antlr4-python3-runtime==4.9.3 \
    lightning==2.1.2 torchmetrics==0.11.4 "setuptools<81"
if [ -f "$SOLO_ARCHIVE" ]; then
    # its setup.py imports pkg_resources: build it in a throwaway venv with setuptools < 81
    # and wheel (the system Python's setuptools may lack bdist_wheel)
    build=$(mktemp -d)
    "$PY" -m venv "$build/venv"
    "$build/venv/bin/python" -m pip install -q "setuptools<81" wheel
    "$build/venv/bin/python" -m pip wheel --no-deps --no-build-isolation -q -w "$DEST" \
        "$SOLO_ARCHIVE"
    rm -rf "$build"
else
    echo "solo-learn archive not found at $SOLO_ARCHIVE: the solo arm will be skipped" >&2
fi
# the independent probe travels in the same folder (../shared beside the checkout does not)
PROBE_SRC="${GPU_PROBE_SRC:-$REPO/../shared/tools/gpu_probe.py}"
[ -f "$PROBE_SRC" ] && cp "$PROBE_SRC" "$DEST/gpu_probe.py"
ls -l "$DEST"
