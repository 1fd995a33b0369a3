#!/usr/bin/env bash
# Build the whole stack for visionllama_mm, idempotently, on a fresh machine.
#
#   bash tools/setup_env.sh            # build (or reuse) the environment; `.venv` in the repo points to it
#   bash tools/setup_env.sh --check    # exit 0 if the environment is complete, 1 otherwise
#
# What it handles (see ../shared/ENVIRONMENT.md for how each was measured):
#   * setuptools >=77,<81: mmcv's setup.py and mmengine import pkg_resources (gone in 81),
#     torch 2.14 needs >= 77.0.3.
#   * mmcv 2.1.0 hard-codes -std=c++17, torch >= 2.10 headers need C++20: the unpacked sdist is
#     patched to -std=c++20 before it is compiled with its ops (MMCV_WITH_OPS=1).
#   * pip's own wheel cache ignores the torch version, so mmcv is built with --no-cache-dir and kept
#     in our own cache keyed by (mmcv, torch, python, CUDA version or cpu).
# The virtual environment itself is cached too, keyed by the requirement files and python, so a
# second setup on the same machine (a fresh clone included) only re-links the editable install.
#
# Environment variables: PYTHON (interpreter, default python3), VLMM_CACHE (cache root, default
# ~/.cache/visionllama_mm), VLMM_VENV (use this venv path instead of the cached one),
# MAX_JOBS (compile jobs, default nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
CACHE="${VLMM_CACHE:-$HOME/.cache/visionllama_mm}"
MODE="${1:-build}"

log() { echo "[setup_env $(date +%H:%M:%S)] $*"; }

pin() {  # pin FILE NAME -> version pinned with == in FILE
    sed -n "s/^$2==\([^ ;#]*\).*/\1/p" "$ROOT/requirements/$1" | head -n1
}

PYTAG="$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
TORCH_VER="$(pin torch.txt torch)"
TV_VER="$(pin torch.txt torchvision)"
MMCV_VER="$(pin runtime.txt mmcv)"
REQ_HASH="$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -c1-10)"
VENV="${VLMM_VENV:-$CACHE/venvs/$PYTAG-$REQ_HASH}"
VPY="$VENV/bin/python"
STAMP="$VENV/.visionllama_mm_complete"

link_repo() {
    # `.venv` in the repository always points at the environment in use.
    if [ "$VENV" != "$ROOT/.venv" ]; then
        ln -sfn "$VENV" "$ROOT/.venv"
    fi
}

editable_ok() {
    # run from / so that the current directory does not shadow the installed package
    (cd / && "$VPY" - "$ROOT" <<'EOF' >/dev/null 2>&1
import os, sys, importlib.util
spec = importlib.util.find_spec('visionllama_mm')
assert spec is not None
assert os.path.realpath(os.path.dirname(spec.origin)) == os.path.realpath(os.path.join(sys.argv[1], 'visionllama_mm'))
EOF
    )
}

if [ "$MODE" = "--check" ]; then
    [ -f "$STAMP" ] && editable_ok && exit 0
    exit 1
fi

if [ -f "$STAMP" ]; then
    link_repo
    if ! editable_ok; then
        log "environment cached at $VENV; re-linking the editable install to $ROOT"
        "$VPY" -m pip install --no-deps --no-build-isolation -q -e "$ROOT"
    fi
    log "environment ready: $VENV (cached)"
    exit 0
fi

log "building the environment in $VENV"
mkdir -p "$CACHE/wheels" "$(dirname "$VENV")"
[ -x "$VPY" ] || "$PY" -m venv "$VENV"
PIP=("$VPY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q -r "$ROOT/requirements/build.txt"

log "installing torch==$TORCH_VER torchvision==$TV_VER"
"${PIP[@]}" install -q "torch==$TORCH_VER" "torchvision==$TV_VER"

# ---- mmcv with ops, from our own cache ---------------------------------------------------------
ACCEL="$("$VPY" - <<'EOF'
import os, shutil, torch
cuda = torch.version.cuda and (torch.cuda.is_available() or os.environ.get('FORCE_CUDA') == '1') \
    and shutil.which('nvcc')
print(f"cu{torch.version.cuda.replace('.', '')}" if cuda else 'cpu')
EOF
)"
KEY="mmcv-${MMCV_VER}_torch-${TORCH_VER}_${PYTAG}_${ACCEL}"
WHEEL_DIR="$CACHE/wheels/$KEY"
WHEEL="$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$WHEEL" ]; then
    log "building mmcv $MMCV_VER with ops for torch $TORCH_VER ($ACCEL); this takes about 10 minutes on 2 cores"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation --no-cache-dir "mmcv==$MMCV_VER" -d "$TMP"
    tar -xzf "$TMP"/mmcv-*.tar.gz -C "$TMP"
    SRC="$(ls -d "$TMP"/mmcv-*/ | head -n1)"
    # torch >= 2.10 headers require C++20 (ENVIRONMENT.md trap 2).
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    grep -q 'std=c++20' "$SRC/setup.py" || { echo "could not patch mmcv's C++ standard" >&2; exit 1; }
    if [ "$ACCEL" != cpu ]; then export FORCE_CUDA=1; fi
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" wheel -q --no-deps --no-build-isolation --no-cache-dir -w "$TMP/out" "$SRC"
    mkdir -p "$WHEEL_DIR.partial"
    cp "$TMP"/out/mmcv-*.whl "$WHEEL_DIR.partial/"
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.partial" "$WHEEL_DIR"
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-*.whl | head -n1)"
else
    log "reusing cached mmcv wheel $WHEEL"
fi

log "installing the OpenMMLab stack and test requirements"
"${PIP[@]}" install -q "$WHEEL" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
    "torch==$TORCH_VER" "torchvision==$TV_VER"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "checking the install"
"$VPY" - <<'EOF'
import torch, mmcv, mmengine, mmpretrain, mmseg, mmdet
from mmcv.ops import nms, RoIAlign  # compiled ops
import mmpretrain.models  # noqa: F401  (fails with transformers 5.x)
print(f'torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, '
      f'mmpretrain {mmpretrain.__version__}, mmseg {mmseg.__version__}, mmdet {mmdet.__version__}')
EOF
touch "$STAMP"
link_repo
log "environment ready: $VENV"
