#!/usr/bin/env bash
# Build the whole stack for visionllama_mm, idempotently, on a fresh machine or a cluster node.
#
#   bash tools/setup_env.sh               # build (or reuse) the environment; `.venv` in the repo points to it
#   bash tools/setup_env.sh --check       # exit 0 if the environment is complete, 1 otherwise
#   bash tools/setup_env.sh --print-plan  # print the torch build, driver check and cache keys a build
#                                         # would use, and stop (creates nothing, installs nothing)
#
# Which torch build (VLMM_TORCH_INDEX):
#   auto (default)  where nvidia-smi reports a driver (or VLMM_DRIVER_VERSION is set): the newest CUDA
#                   variant below that the driver runs; elsewhere (a CPU machine, a login node without
#                   a GPU): pypi.
#   pypi            torch from the default package index or the machine's local wheel store. PyPI's
#                   torch 2.11 to 2.14.1 for Linux x86-64 are CUDA 13.0 builds (they depend on cuda-toolkit 13.0.x).
#   cu126, cu128, cu130, cpu
#                   torch and torchvision from https://download.pytorch.org/whl/<variant>.
#   an index URL    the same from a mirror of that index; its last path component names the variant
#                   (e.g. https://mirror.example.org/whl/cu126).
# A CUDA build of torch runs on NVIDIA drivers from the minimum of its CUDA major version (NVIDIA's CUDA
# minor-version compatibility table, Linux x86-64): CUDA 12.x >= 525.60.13, CUDA 13.x >= 580.65.06. When
# the chosen variant needs a newer driver than the node has, the script stops before it creates or
# installs anything and names the variant to choose instead. VLMM_DRIVER_VERSION=<version> checks
# against another driver than this node's: on a login node, the driver of the compute nodes.
# The variant is part of the environment's cache key: a cu126 and a cu130 environment are two entries.
#
# mmcv's compiled ops: CUDA and CPU ops where a GPU (nvidia-smi) and nvcc are found, CPU ops elsewhere.
# FORCE_CUDA=1 builds the CUDA ops on a node without a GPU (a login node), for the GPU architectures
# in TORCH_CUDA_ARCH_LIST, which is then required: "8.0" for A100, "9.0" for H100, "8.0;9.0" for both.
# With a GPU and no TORCH_CUDA_ARCH_LIST, the architectures of this node's GPUs. FORCE_CUDA=0 builds
# the CPU ops only. nvcc is found as torch finds it (CUDA_HOME or CUDA_PATH, PATH, /usr/local/cuda) and
# must have the CUDA major version of the torch build. The cached mmcv wheel is keyed by the
# architectures too.
#
# torch version: requirements/torch.txt pins torch 2.14.1 + torchvision 0.29.1. VLMM_TORCH_VERSION=2.11.0
# (any 2.11.x to 2.14.x) builds the environment on that torch instead, with the torchvision release of
# its minor version (0.26 for 2.11, ..., 0.29 for 2.14); it is part of the cache keys.
#
# Traps of this stack handled here:
#   * setuptools >=77.0.3,<81: mmcv 2.1.0's setup.py and mmengine 0.10.7 import pkg_resources, which
#     setuptools 81 removed; torch 2.14 needs setuptools >= 77.0.3.
#   * mmcv 2.1.0's setup.py hard-codes -std=c++17, and the headers of torch >= 2.10 need C++20 (the build
#     stops with "C++20 or later compatible compiler is required to use ATen"): the unpacked sdist is
#     patched to -std=c++20 before it is compiled with its ops (MMCV_WITH_OPS=1).
#   * pip's own wheel cache keys a built wheel by its name and version only, so an mmcv compiled against
#     one torch would be reused with another and fail at import with undefined symbols: mmcv is built
#     with --no-cache-dir and kept in our own cache (VLMM_CACHE/wheels/) keyed by mmcv, the exact torch
#     version (+variant), python, and cpu or the CUDA version and architectures of its ops.
# The virtual environment is cached too (VLMM_CACHE/venvs/), keyed by python, the requirement files,
# and the torch version and variant where they are not the defaults, so a second setup on the same
# machine (a fresh clone included) only re-links the editable install.
#
# Other environment variables: PYTHON (interpreter, default python3), VLMM_CACHE (cache root, default
# ~/.cache/visionllama_mm), VLMM_VENV (use this venv path instead of the cached one), MAX_JOBS
# (compile jobs, default nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
CACHE="${VLMM_CACHE:-$HOME/.cache/visionllama_mm}"
MODE="${1:-build}"

log() { echo "[setup_env $(date +%H:%M:%S)] $*"; }
die() { echo "setup_env: $*" >&2; exit 1; }

case "$MODE" in
    build | --check | --print-plan) ;;
    *) die "unknown argument '$MODE'; usage: bash tools/setup_env.sh [--check | --print-plan]" ;;
esac
[ $# -le 1 ] || die "one argument at most; usage: bash tools/setup_env.sh [--check | --print-plan]"

pin() {  # pin FILE NAME -> version pinned with == in FILE
    sed -n "s/^$2==\([^ ;#]*\).*/\1/p" "$ROOT/requirements/$1" | head -n1
}

ver_ge() {  # ver_ge A B: version A >= version B (dotted numbers, as NVIDIA driver versions)
    [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]
}

command -v "$PY" >/dev/null 2>&1 || die "PYTHON=$PY: no such interpreter"
PYTAG="$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
MMCV_VER="$(pin runtime.txt mmcv)"
REQ_HASH="$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -c1-10)"

# ---- torch version ------------------------------------------------------------------------------
TORCH_VER="$(pin torch.txt torch)"
TV_SPEC="torchvision==$(pin torch.txt torchvision)"
VENV_TAG=""
if [ -n "${VLMM_TORCH_VERSION:-}" ] && [ "$VLMM_TORCH_VERSION" != "$TORCH_VER" ]; then
    [[ "$VLMM_TORCH_VERSION" =~ ^2\.(1[1-4])\.[0-9]+$ ]] ||
        die "VLMM_TORCH_VERSION=$VLMM_TORCH_VERSION: visionllama_mm supports torch 2.11.x to 2.14.x; give a full version such as 2.11.0"
    TORCH_VER="$VLMM_TORCH_VERSION"
    TV_SPEC="torchvision==0.$((BASH_REMATCH[1] + 15)).*"  # torchvision 0.(m+15) goes with torch 2.m
    VENV_TAG="-torch$TORCH_VER"
fi

# ---- the torch variant and the driver check -----------------------------------------------------
# CUDA variants of the PyTorch index that `auto` chooses from, oldest first.
VARIANTS="cu126 cu128 cu130"

pypi_cuda() {  # CUDA version of the default index's Linux x86-64 torch wheel ("" if not known here)
    case "$1" in
        2.1[1-4].*) echo 13.0 ;;  # 2.11.0, 2.12.1, 2.13.0, 2.14.1: cuda-toolkit 13.0.x (checked on PyPI)
        *) echo "" ;;
    esac
}

variant_cuda() {  # cu126 -> 12.6, cu130 -> 13.0, cpu -> "", pypi -> the default index's build
    case "$1" in
        cpu) echo "" ;;
        pypi) pypi_cuda "$TORCH_VER" ;;
        cu[0-9][0-9][0-9]) echo "${1:2:2}.${1:4}" ;;
    esac
}

driver_min() {  # minimum NVIDIA driver (Linux) of a CUDA version, by its major version
    case "${1%%.*}" in
        12) echo 525.60.13 ;;
        13) echo 580.65.06 ;;
        *) echo "" ;;
    esac
}

newest_for_driver() {  # the newest of $VARIANTS that driver $1 runs ("" if none)
    local best="" v min
    for v in $VARIANTS; do
        min="$(driver_min "$(variant_cuda "$v")")"
        if [ -n "$min" ] && ver_ge "$1" "$min"; then best="$v"; fi
    done
    echo "$best"
}

newest_of_major() {  # the newest of $VARIANTS with CUDA major version $1 ("" if none)
    local best="" v
    for v in $VARIANTS; do
        if [ "$(variant_cuda "$v" | cut -d. -f1)" = "$1" ]; then best="$v"; fi
    done
    echo "$best"
}

GPU_HERE=0
SMI_DRIVER=""
GPU_ARCHS=""
SMI_NOTE="no nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
    if SMI_OUT="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null)" && [ -n "$SMI_OUT" ]; then
        SMI_DRIVER="$(echo "$SMI_OUT" | head -n1 | tr -d ' ')"
        GPU_HERE=1
        GPU_ARCHS="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
                     tr -d ' ' | sort -u | paste -sd ';' || true)"
    else
        SMI_NOTE="nvidia-smi found no driver or GPU"
    fi
fi
if [ -n "${VLMM_DRIVER_VERSION:-}" ]; then
    DRIVER="$VLMM_DRIVER_VERSION"
    DRIVER_FROM="VLMM_DRIVER_VERSION"
else
    DRIVER="$SMI_DRIVER"
    DRIVER_FROM="nvidia-smi"
fi
if [ -n "$DRIVER" ] && ! [[ "$DRIVER" =~ ^[0-9]+(\.[0-9]+)+$ ]]; then
    die "$DRIVER_FROM gives the NVIDIA driver version '$DRIVER'; expected a version such as 535.104.05"
fi

REQUEST="${VLMM_TORCH_INDEX:-auto}"
INDEX_URL=""
case "$REQUEST" in
    auto)
        if [ -n "$DRIVER" ]; then
            VARIANT="$(newest_for_driver "$DRIVER")"
            [ -n "$VARIANT" ] || die "the NVIDIA driver ($DRIVER_FROM) is $DRIVER, older than every CUDA variant of torch needs (CUDA 12.x: >= 525.60.13, CUDA 13.x: >= 580.65.06): update the driver, or choose VLMM_TORCH_INDEX=cpu"
        else
            VARIANT=pypi
        fi ;;
    pypi | cpu | cu[0-9][0-9][0-9]) VARIANT="$REQUEST" ;;
    http://* | https://* | file://*)
        INDEX_URL="${REQUEST%/}"
        VARIANT="${INDEX_URL##*/}" ;;
    *) VARIANT="" ;;
esac
case "$VARIANT" in
    pypi | cpu | cu1[2-3][0-9]) ;;
    *) die "VLMM_TORCH_INDEX=$REQUEST: expected auto, pypi, cpu, a CUDA variant of the PyTorch index (${VARIANTS// /, }) or the URL of such an index (ending in /cpu or /cuXYZ)" ;;
esac
if [ "$VARIANT" != pypi ] && [ -z "$INDEX_URL" ]; then
    INDEX_URL="https://download.pytorch.org/whl/$VARIANT"
fi
TORCH_CUDA="$(variant_cuda "$VARIANT")"
if [ "$VARIANT" = pypi ] && [ -z "$TORCH_CUDA" ] && { [ -n "$DRIVER" ] || [ "${FORCE_CUDA:-}" = 1 ]; }; then
    die "torch $TORCH_VER from the default index: this script does not know its CUDA version, which the driver check and mmcv's CUDA ops need; choose its variant explicitly (VLMM_TORCH_INDEX=${VARIANTS// /, } or cpu)"
fi

DRIVER_MIN=""
if [ -n "$TORCH_CUDA" ]; then
    DRIVER_MIN="$(driver_min "$TORCH_CUDA")"
    [ -n "$DRIVER_MIN" ] || die "VLMM_TORCH_INDEX=$REQUEST: CUDA $TORCH_CUDA is not a CUDA 12 or 13 build; choose one of ${VARIANTS// /, } or cpu"
fi
if [ -n "$DRIVER" ] && [ -n "$DRIVER_MIN" ] && ! ver_ge "$DRIVER" "$DRIVER_MIN"; then
    ALT="$(newest_for_driver "$DRIVER")"
    if [ -n "$ALT" ]; then
        INSTEAD="choose VLMM_TORCH_INDEX=$ALT (the newest variant this driver runs) or update the driver"
    else
        INSTEAD="no CUDA variant of torch runs on it (CUDA 12.x needs >= 525.60.13): update the driver, or choose VLMM_TORCH_INDEX=cpu"
    fi
    WHAT="torch $TORCH_VER $VARIANT"
    [ "$VARIANT" != pypi ] || WHAT="torch $TORCH_VER of the default index"
    die "$WHAT is built for CUDA $TORCH_CUDA and needs an NVIDIA driver >= $DRIVER_MIN, but the driver ($DRIVER_FROM) is $DRIVER: $INSTEAD."
fi

# ---- how mmcv's ops are built -------------------------------------------------------------------
find_nvcc() {  # as torch.utils.cpp_extension finds CUDA_HOME
    local home="${CUDA_HOME:-${CUDA_PATH:-}}"
    if [ -z "$home" ]; then
        if command -v nvcc >/dev/null 2>&1; then
            home="$(dirname "$(dirname "$(command -v nvcc)")")"
        elif [ -d /usr/local/cuda ]; then
            home=/usr/local/cuda
        fi
    fi
    if [ -n "$home" ] && [ -x "$home/bin/nvcc" ]; then echo "$home/bin/nvcc"; fi
}

arch_tag() {  # "8.0;9.0" -> sm80-sm90, "8.6+PTX" -> sm86ptx (sorted, so the order does not matter)
    echo "$1" | tr ' ;,' '\n\n\n' | sed '/^$/d' | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9\n+' |
        sed 's/+//g; s/^/sm/' | sort -u | paste -sd '-'
}

FORCE="${FORCE_CUDA:-}"
OPS=cpu
NVCC=""
NVCC_VER=""
ARCHS=""
if [ "$FORCE" = 1 ] || { [ -z "$FORCE" ] && [ "$GPU_HERE" = 1 ]; }; then
    if [ -z "$TORCH_CUDA" ]; then
        [ "$FORCE" != 1 ] || die "FORCE_CUDA=1 asks for mmcv's CUDA ops, but torch $VARIANT has no CUDA; choose a CUDA variant (VLMM_TORCH_INDEX=${VARIANTS// /, }) or unset FORCE_CUDA"
    else
        MAJOR="${TORCH_CUDA%%.*}"
        NVCC="$(find_nvcc)"
        [ -n "$NVCC" ] || die "mmcv's CUDA ops need nvcc of CUDA $MAJOR.x (torch $VARIANT is built for CUDA $TORCH_CUDA), and none is in CUDA_HOME/bin, CUDA_PATH/bin, PATH or /usr/local/cuda/bin: load a CUDA $MAJOR toolkit (e.g. \`module load cuda/$TORCH_CUDA\`) or set CUDA_HOME; FORCE_CUDA=0 builds the CPU ops only"
        NVCC_VER="$("$NVCC" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n1)"
        [ -n "$NVCC_VER" ] || die "$NVCC --version does not name a CUDA release"
        if [ "${NVCC_VER%%.*}" != "$MAJOR" ]; then
            OTHER="$(newest_of_major "${NVCC_VER%%.*}")"
            die "nvcc $NVCC is CUDA $NVCC_VER, and torch $VARIANT is built for CUDA $TORCH_CUDA: mmcv's CUDA ops need both of the same major version. Put a CUDA $MAJOR.x nvcc first (CUDA_HOME)${OTHER:+, or choose VLMM_TORCH_INDEX=$OTHER (CUDA ${NVCC_VER%%.*})}."
        fi
        ARCHS="${TORCH_CUDA_ARCH_LIST:-$GPU_ARCHS}"
        if [ -z "$ARCHS" ]; then
            if [ "$GPU_HERE" = 1 ]; then
                die "nvidia-smi does not report the GPUs' compute capability: set TORCH_CUDA_ARCH_LIST (\"8.0\" for A100, \"9.0\" for H100, \"8.0;9.0\" for both)"
            fi
            die "FORCE_CUDA=1 on a node without a GPU: set TORCH_CUDA_ARCH_LIST to the compute capabilities of the GPUs that will run mmcv's ops: \"8.0\" for A100, \"9.0\" for H100, \"8.0;9.0\" for both"
        fi
        OPS="cu${TORCH_CUDA/./}_$(arch_tag "$ARCHS")"
    fi
fi

TORCH_BUILD="$TORCH_VER"  # torch.__version__ of the build: 2.14.1 from the default index, 2.14.1+cu126 ...
[ "$VARIANT" = pypi ] || TORCH_BUILD="$TORCH_VER+$VARIANT"
[ "$VARIANT" = pypi ] || VENV_TAG="$VENV_TAG-$VARIANT"
VENV="${VLMM_VENV:-$CACHE/venvs/$PYTAG-$REQ_HASH$VENV_TAG}"
VPY="$VENV/bin/python"
STAMP="$VENV/.visionllama_mm_complete"
KEY="mmcv-${MMCV_VER}_torch-${TORCH_BUILD}_${PYTAG}_${OPS}"

if [ "$MODE" = --print-plan ]; then
    echo "python=$PY ($PYTAG)"
    echo "torch=torch==$TORCH_VER $TV_SPEC"
    echo "torch_index=$VARIANT"
    echo "index_url=${INDEX_URL:-the default index of the pip configuration}"
    echo "torch_build=$TORCH_BUILD"
    echo "torch_cuda=${TORCH_CUDA:-none}"
    if [ -n "$DRIVER" ]; then echo "driver=$DRIVER ($DRIVER_FROM)"; else echo "driver=none ($SMI_NOTE)"; fi
    echo "driver_min=${DRIVER_MIN:-none}"
    if [ "$OPS" = cpu ]; then
        echo "mmcv_ops=cpu"
    else
        echo "mmcv_ops=cuda (nvcc $NVCC_VER at $NVCC, TORCH_CUDA_ARCH_LIST=$ARCHS)"
    fi
    echo "venv=$VENV"
    echo "mmcv_wheel_key=$KEY"
    exit 0
fi

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
    log "environment ready: $VENV (cached; torch $TORCH_BUILD, mmcv ops $OPS)"
    exit 0
fi

log "building the environment in $VENV (torch $TORCH_BUILD from ${INDEX_URL:-the default index}, mmcv ops $OPS)"
mkdir -p "$CACHE/wheels" "$(dirname "$VENV")"
[ -x "$VPY" ] || "$PY" -m venv "$VENV"
PIP=("$VPY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q -r "$ROOT/requirements/build.txt"

log "installing torch==$TORCH_VER $TV_SPEC"
TORCH_ARGS=("torch==$TORCH_VER" "$TV_SPEC")
[ -z "$INDEX_URL" ] || TORCH_ARGS+=(--index-url "$INDEX_URL")
"${PIP[@]}" install -q "${TORCH_ARGS[@]}" ||
    die "could not install torch==$TORCH_VER $TV_SPEC from ${INDEX_URL:-the default index} (pip's error above). If the index lacks that build, choose another VLMM_TORCH_INDEX (${VARIANTS// /, }, cpu); the PyTorch index lists its builds at https://download.pytorch.org/whl/<variant>/torch/"
# torch.__version__ is 2.14.1+cu130 for PyPI's wheel too: its release and CUDA version are checked,
# and the variant's name for the other indexes.
GOT="$("$VPY" -c 'import torch; print(torch.__version__, torch.version.cuda or "none")')"
GOT_VER="${GOT%% *}"
GOT_OK=1
[ "${GOT_VER%%+*}" = "$TORCH_VER" ] || GOT_OK=0
[ "$VARIANT" = pypi ] || [ "$GOT_VER" = "$TORCH_BUILD" ] || GOT_OK=0
[ "${GOT#* }" = "${TORCH_CUDA:-none}" ] || GOT_OK=0
if [ "$GOT_OK" = 0 ]; then
    die "the torch installed in $VENV is $GOT_VER (CUDA ${GOT#* }), expected $TORCH_BUILD (CUDA ${TORCH_CUDA:-none}) for VLMM_TORCH_INDEX=$REQUEST"
fi

# ---- mmcv with ops, from our own cache ---------------------------------------------------------
WHEEL_DIR="$CACHE/wheels/$KEY"
WHEEL="$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$WHEEL" ]; then
    if [ "$OPS" = cpu ]; then
        log "building mmcv $MMCV_VER with its CPU ops for torch $TORCH_BUILD; about 10-17 minutes on 2 cores"
        export FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=""  # no CUDA ops, even with a GPU on the node
    else
        log "building mmcv $MMCV_VER with its CUDA ops for torch $TORCH_BUILD (nvcc $NVCC_VER, TORCH_CUDA_ARCH_LIST=$ARCHS)"
        export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCHS" CUDA_HOME="$(dirname "$(dirname "$NVCC")")"
    fi
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation --no-cache-dir "mmcv==$MMCV_VER" -d "$TMP"
    tar -xzf "$TMP"/mmcv-*.tar.gz -C "$TMP"
    SRC="$(ls -d "$TMP"/mmcv-*/ | head -n1)"
    # the headers of torch >= 2.10 require C++20
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    grep -q 'std=c++20' "$SRC/setup.py" || die "could not patch mmcv's C++ standard in $SRC/setup.py"
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
    "torch==$TORCH_VER" "$TV_SPEC"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "checking the install"
OPS="$OPS" "$VPY" - <<'EOF'
import os, torch, mmcv, mmengine, mmpretrain, mmseg, mmdet
from mmcv.ops import nms, RoIAlign, get_compiling_cuda_version  # compiled ops
import mmpretrain.models  # noqa: F401  (fails with transformers 5.x)
ops_cuda = get_compiling_cuda_version()
if os.environ['OPS'] != 'cpu':
    assert ops_cuda != 'not available', "mmcv was built without its CUDA ops"
print(f'torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__} '
      f'(CUDA ops: {ops_cuda}), mmpretrain {mmpretrain.__version__}, mmseg {mmseg.__version__}, '
      f'mmdet {mmdet.__version__}')
EOF
touch "$STAMP"
link_repo
log "environment ready: $VENV"
