#!/usr/bin/env bash
# The GPU acceptance run: one command, offline, within a time budget (8 minutes by default).
#
#   bash tools/gpu_check/run.sh OUT_DIR [--device cuda|cpu] [--tiny] [--skip-install]
#        [--budget SECONDS] [--mmcv-ops build|skip] [--only NAME ...]
#
# Steps (each under `timeout`, with the time left passed on; every step runs even when an earlier
# one failed, and the exit status is non-zero if any failed):
#   install      the wheels of tools/gpu_check/wheels/bundle.tar.xz (made by prepare_wheels.py)
#                are unpacked and installed with `pip install --no-index --no-deps --target` into
#                a folder outside the machine's own site-packages, put first on PYTHONPATH with
#                this repository: the machine's torch, timm and CUDA stay in use, the bundled
#                transformers 4.46.3 shadows its transformers 5.x, and nothing of the machine is
#                changed (a `venv --system-site-packages` would not see the packages of a machine
#                whose Python is itself a virtual environment). mmcv is installed without its
#                compiled ops (a pure-python wheel); env_info.py --check then imports the stack.
#   mmcv ops     (cuda) mmcv's source archive from the bundle is compiled with its CUDA ops for
#                this card's architecture only (TORCH_CUDA_ARCH_LIST from nvidia-smi, MAX_JOBS =
#                all cores, C++20), in the background at the lowest priority, while the other
#                steps run. A finished build is kept in the work folder and reused by the next run.
#   train_checks tools/gpu_check/train_checks.py: each family's training checks, fused attention,
#                and the dense (Mask R-CNN, UperNet) configs when mmcv's ops are there.
#   bench        tools/gpu_check/bench_table.py: OUT_DIR/bench.md.
#   dense        (cuda) when the mmcv build finishes within the budget: the dense checks again,
#                with the compiled ops.
# OUT_DIR/summary.md gets the card, torch / CUDA versions, the date and each step's result and
# time; every step's log is in OUT_DIR/logs/.
#
# Environment: PYTHON (interpreter, default python3), VLMM_WHEELS (bundle folder, default
# tools/gpu_check/wheels), VLMM_GPU_CHECK_DIR (work folder for the installed packages and the
# mmcv build, default ${TMPDIR:-/tmp}/visionllama_mm_gpu_check).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
usage() {
    echo "usage: bash tools/gpu_check/run.sh OUT_DIR [--device cuda|cpu] [--tiny] [--skip-install]" \
         "[--budget SECONDS] [--mmcv-ops build|skip] [--only NAME ...]" >&2
    exit 2
}
[ $# -ge 1 ] && [ "${1#-}" = "$1" ] || usage
OUT="$1"; shift
DEVICE=cuda; TINY=0; INSTALL=1; BUDGET=480; MMCV_OPS=build; ONLY=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) [ $# -ge 2 ] || usage; DEVICE="$2"; shift 2 ;;
        --tiny) TINY=1; shift ;;
        --skip-install) INSTALL=0; shift ;;
        --budget) [ $# -ge 2 ] || usage; BUDGET="$2"; shift 2 ;;
        --mmcv-ops) [ $# -ge 2 ] || usage; MMCV_OPS="$2"; shift 2 ;;
        --only) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do ONLY+=("$1"); shift; done ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "run.sh: --device must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;; esac
case "$MMCV_OPS" in build|skip) ;; *) echo "run.sh: --mmcv-ops must be build or skip, got '$MMCV_OPS'" >&2; exit 2 ;; esac
[[ "$BUDGET" =~ ^[0-9]+$ ]] && [ "$BUDGET" -ge 60 ] \
    || { echo "run.sh: --budget must be a whole number of seconds >= 60, got '$BUDGET'" >&2; exit 2; }

PY="${PYTHON:-python3}"
if [ "$DEVICE" = cuda ]; then  # one clear error before anything runs
    if ! why="$("$PY" - 2>&1 <<'EOF'
import sys
import warnings
warnings.simplefilter('always')
import torch
with warnings.catch_warnings(record=True) as caught:
    ok = torch.cuda.is_available()
if not ok:
    detail = '; '.join(str(w.message).strip().splitlines()[0] for w in caught)
    sys.exit(f'torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no CUDA device'
             + (f': {detail}' if detail else ''))
EOF
)"; then
        echo "run.sh: --device cuda, but ${why##*$'\n'}. Use --device cpu --tiny for the dry run." >&2
        exit 2
    fi
fi
WHEELS="${VLMM_WHEELS:-$ROOT/tools/gpu_check/wheels}"
WORK="${VLMM_GPU_CHECK_DIR:-${TMPDIR:-/tmp}/visionllama_mm_gpu_check}"
mkdir -p "$OUT/logs" "$WORK" || exit 2
OUT="$(cd "$OUT" && pwd)"
LOGS="$OUT/logs"
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(elapsed) )); }
log() { echo "[gpu_check +$(elapsed)s] $*"; }

STEPS=()   # "name|result|seconds|log"
FAILED=0
record() {  # record NAME RESULT SECONDS LOG [ok]
    STEPS+=("$1|${2//|//}|$3|$4")
    [ "${5:-}" = ok ] || FAILED=1
    log "$1: $2 ($3 s)"
}
run_step() {  # run_step NAME TIMEOUT LOGFILE CMD...
    local name="$1" limit="$2" logfile="$3"; shift 3
    if [ "$limit" -lt 5 ]; then
        record "$name" "not run: no time left in the ${BUDGET} s budget" 0 "-"
        return 1
    fi
    log "$name (time limit ${limit} s)"
    local start rc
    start=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$logfile" 2>&1
    rc=$?
    local dt=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
        local last; last="$(tail -n 1 "$logfile")"
        case "$last" in result:*) last="passed; ${last#result: }" ;; *) last=passed ;; esac
        record "$name" "$last" "$dt" "logs/$(basename "$logfile")" ok
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        record "$name" "FAILED: stopped at its ${limit} s time limit" "$dt" "logs/$(basename "$logfile")"
    else
        record "$name" "FAILED (exit $rc): $(tail -n 1 "$logfile" | cut -c1-200)" "$dt" \
            "logs/$(basename "$logfile")"
    fi
    return $rc
}

# ------------------------------------------------------------------ install
BUNDLE="$WORK/bundle"
unpack_bundle() {  # the wheels and mmcv's source archive, out of bundle.tar.xz (once per archive)
    if [ ! -f "$WHEELS/bundle.tar.xz" ] || [ ! -f "$WHEELS/bundle.txt" ]; then
        echo "no wheel bundle at $WHEELS/bundle.tar.xz: run 'python tools/gpu_check/prepare_wheels.py'" \
             "on a machine with the package registry and carry tools/gpu_check/wheels/ with the repository"
        return 1
    fi
    local stamp; stamp="$BUNDLE/.unpacked-$(stat -c %s-%Y "$WHEELS/bundle.tar.xz")"
    [ -f "$stamp" ] && return 0
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE" && tar -xJf "$WHEELS/bundle.tar.xz" -C "$BUNDLE" && touch "$stamp"
}
install_bundle() {
    unpack_bundle || return 1
    local files=()
    while read -r _ _ file _; do
        case "$file" in *.whl) files+=("$BUNDLE/$file") ;; esac
    done < <(grep -v '^#' "$WHEELS/bundle.txt")
    rm -rf "$SITE"
    "$PY" -m pip install --disable-pip-version-check --no-index --no-deps --no-compile \
        --target "$SITE" "${files[@]}" || return 1
    PYTHONPATH="$SITE:$ROOT" "$PY" "$ROOT/tools/gpu_check/env_info.py" --check
}
if [ "$INSTALL" = 1 ]; then
    PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    SITE="$WORK/site-$PYTAG"
    export -f unpack_bundle install_bundle; export WHEELS BUNDLE SITE ROOT PY
    run_step install $(( $(left) - 60 )) "$LOGS/install.log" bash -c install_bundle
    export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$SITE/bin:$PATH"
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    record install "skipped (--skip-install): the current environment is used" 0 "-" ok
fi

# ------------------------------------------------------------------ mmcv's CUDA ops, in the background
MMCV_SRC=""; BUILD_PID=""
if [ "$DEVICE" = cuda ] && [ "$MMCV_OPS" = build ]; then
    if "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("mmcv._ext") is None)' 2>/dev/null; then
        record "mmcv ops" "present in the environment" 0 "-" ok
    else
        ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' ')"
        TORCH_VER="$("$PY" -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null)"
        unpack_bundle >/dev/null
        SDIST="$(ls "$BUNDLE"/mmcv-*.tar.gz 2>/dev/null | head -n1)"
        if [ -z "$ARCH" ] || [ -z "$SDIST" ]; then
            record "mmcv ops" "FAILED: cannot build (card architecture '${ARCH}', mmcv source '${SDIST}')" 0 "-"
        else
            MMCV_SRC="$WORK/mmcv-ops_torch-${TORCH_VER}_sm${ARCH/./}/$(basename "$SDIST" .tar.gz)"
            if [ -f "$MMCV_SRC/.built" ]; then
                record "mmcv ops" "reused the build in $MMCV_SRC" 0 "-" ok
            else
                log "mmcv ops: building $(basename "$SDIST") with CUDA ops for sm_${ARCH/./} in the background"
                rm -rf "$(dirname "$MMCV_SRC")" && mkdir -p "$(dirname "$MMCV_SRC")"
                tar -xzf "$SDIST" -C "$(dirname "$MMCV_SRC")"
                # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes C++14/17
                sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$MMCV_SRC/setup.py"
                BUILD_START=$(date +%s)
                ( cd "$MMCV_SRC" && exec setsid nice -n 19 env MMCV_WITH_OPS=1 FORCE_CUDA=1 \
                    TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="$(nproc)" \
                    "$PY" setup.py build_ext --inplace >"$LOGS/mmcv_build.log" 2>&1 ) &
                BUILD_PID=$!
            fi
        fi
    fi
fi
ops_ready() { [ -n "$MMCV_SRC" ] && [ -f "$MMCV_SRC/.built" ]; }
if ops_ready; then export PYTHONPATH="$MMCV_SRC:$PYTHONPATH"; fi

# ------------------------------------------------------------------ training checks (G1)
FLAGS=(--device "$DEVICE"); [ "$TINY" = 1 ] && FLAGS+=(--tiny)
ONLY_FLAGS=(); [ ${#ONLY[@]} -gt 0 ] && ONLY_FLAGS=(--only "${ONLY[@]}")
BENCH_RESERVE=$(( BUDGET * 3 / 8 ))   # ~3 of 8 minutes for the benchmark table
if [ -f "$ROOT/tools/gpu_check/train_checks.py" ]; then
    run_step train_checks $(( $(left) - BENCH_RESERVE )) "$LOGS/train_checks.log" \
        "$PY" "$ROOT/tools/gpu_check/train_checks.py" --out "$OUT" "${FLAGS[@]}" "${ONLY_FLAGS[@]}"
else
    record train_checks "FAILED: tools/gpu_check/train_checks.py is missing" 0 "-"
fi

# ------------------------------------------------------------------ benchmark table
DENSE_RESERVE=0; [ -n "$BUILD_PID" ] && DENSE_RESERVE=60
BENCH_LIMIT=$(( $(left) - DENSE_RESERVE - 10 ))
run_step bench "$BENCH_LIMIT" "$LOGS/bench.log" \
    "$PY" "$ROOT/tools/gpu_check/bench_table.py" --out "$OUT" "${FLAGS[@]}" \
    --budget $(( BENCH_LIMIT > 20 ? BENCH_LIMIT - 15 : 5 ))

# ------------------------------------------------------------------ dense checks with the compiled ops
if [ -n "$BUILD_PID" ]; then
    while kill -0 "$BUILD_PID" 2>/dev/null && [ "$(left)" -gt 45 ]; do sleep 2; done
    if kill -0 "$BUILD_PID" 2>/dev/null; then
        kill -- -"$(ps -o pgid= "$BUILD_PID" | tr -d ' ')" 2>/dev/null || kill "$BUILD_PID"
        wait "$BUILD_PID" 2>/dev/null
        record "mmcv ops" "FAILED: the build had not finished after $(( $(date +%s) - BUILD_START )) s (stopped; $(grep -c '^\[[0-9]*/[0-9]*\]' "$LOGS/mmcv_build.log") compile jobs done, see the log)" \
            $(( $(date +%s) - BUILD_START )) "logs/mmcv_build.log"
        record dense "FAILED: not run, mmcv's CUDA ops were not built within the budget" 0 "-"
    elif wait "$BUILD_PID" && [ -n "$(ls "$MMCV_SRC"/mmcv/_ext*.so 2>/dev/null)" ]; then
        touch "$MMCV_SRC/.built"
        record "mmcv ops" "built in the background" $(( $(date +%s) - BUILD_START )) "logs/mmcv_build.log" ok
        run_step dense $(( $(left) - 5 )) "$LOGS/dense.log" env PYTHONPATH="$MMCV_SRC:$PYTHONPATH" \
            "$PY" "$ROOT/tools/gpu_check/train_checks.py" --out "$OUT/dense" "${FLAGS[@]}" --only dense
    else
        record "mmcv ops" "FAILED: the build failed: $(tail -n 1 "$LOGS/mmcv_build.log" | cut -c1-200)" \
            $(( $(date +%s) - BUILD_START )) "logs/mmcv_build.log"
        record dense "FAILED: not run, mmcv's CUDA ops did not build" 0 "-"
    fi
fi

# ------------------------------------------------------------------ summary
"$PY" - "$OUT" "$DEVICE" "$BUDGET" "$(elapsed)" "${STEPS[@]}" >"$OUT/summary.md" 2>"$LOGS/summary.log" <<'EOF'
import datetime, json, os.path as osp, sys
out, device, budget, elapsed, *steps = sys.argv[1:]
env = {}
if osp.isfile(osp.join(out, 'env.json')):
    env = json.load(open(osp.join(out, 'env.json')))
lines = ['# GPU acceptance run', '',
         f'- date: {datetime.datetime.now().astimezone().isoformat(timespec="seconds")}',
         f'- device: {env.get("device_name", device)}',
         f'- torch {env.get("torch", "?")}, CUDA {env.get("cuda", "-")}, '
         f'Python {env.get("python", "?")}',
         f'- total: {elapsed} s of the {budget} s budget', '',
         '| step | result | time (s) | log |', '|---|---|---|---|']
lines += ['| ' + ' | '.join(s.split('|', 3)) + ' |' for s in steps]
for name in ('train_checks.md', 'bench.md'):
    if osp.isfile(osp.join(out, name)):
        lines += ['', f'## {name}', '', open(osp.join(out, name)).read().rstrip()]
print('\n'.join(lines))
EOF
log "summary: $OUT/summary.md"
exit $FAILED
