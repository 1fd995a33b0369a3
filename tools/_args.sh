# Sourced by the shell launchers: checks of their positional arguments and environment variables,
# each failing with one line "<tool>: error: <argument>: <what is wrong>" and exit status 2 (as
# argparse does), before torchrun or srun start any process.
_TOOL="$(basename "$0")"

die() {  # die MESSAGE [USAGE]
    [ -n "${2:-}" ] && echo "usage: $2" >&2
    echo "$_TOOL: error: $1" >&2
    exit 2
}

need_args() {  # need_args COUNT_GIVEN COUNT_NEEDED USAGE
    if [ "$1" -lt "$2" ]; then
        die "expected at least $2 arguments, got $1" "$3"
    fi
}

need_file() {  # need_file NAME PATH
    if [ -d "$2" ]; then die "$1: '$2' is a folder, not a file"; fi
    if [ ! -f "$2" ]; then die "$1: no such file: '$2'"; fi
}

need_checkpoint() {  # need_checkpoint NAME PATH (a URL is left to mmengine)
    case "$2" in
        *://*) ;;
        *) need_file "$1" "$2" ;;
    esac
}

need_int() {  # need_int NAME VALUE MIN [MAX]
    if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ] || { [ -n "${4:-}" ] && [ "$2" -gt "$4" ]; }; then
        if [ -n "${4:-}" ]; then die "$1 must be an integer in [$3, $4], got '$2'"; fi
        die "$1 must be an integer >= $3, got '$2'"
    fi
}

need_master_addr() {  # need_master_addr NNODES (the nodes meet at node 0, whose address only the user knows)
    if [ "$1" -gt 1 ] && [ -z "${MASTER_ADDR:-}" ]; then
        die "MASTER_ADDR: NNODES=$1 needs the address of node 0 (the node with NODE_RANK=0), the same on every node; it is not set"
    fi
}

slurm_layout() {  # slurm_layout: GPUS_PER_NODE capped at GPUS, NODES = GPUS / GPUS_PER_NODE
    if [ "$GPUS" -lt "$GPUS_PER_NODE" ]; then GPUS_PER_NODE=$GPUS; fi
    if [ $((GPUS % GPUS_PER_NODE)) -ne 0 ]; then
        die "GPUS: $GPUS is not a multiple of GPUS_PER_NODE ($GPUS_PER_NODE); each node runs GPUS_PER_NODE tasks, so the job would hold $(((GPUS + GPUS_PER_NODE - 1) / GPUS_PER_NODE * GPUS_PER_NODE)) GPUs and leave $((GPUS_PER_NODE - GPUS % GPUS_PER_NODE)) idle"
    fi
    NODES=$((GPUS / GPUS_PER_NODE))
}

slurm_srun() {  # slurm_srun CMD...: CMD as GPUS tasks, GPUS_PER_NODE per node (after slurm_layout)
    local srun_argv
    read -r -a srun_argv <<< "${SRUN_ARGS:-}"  # split at spaces, never globbed
    set -x
    srun -p "$PARTITION" \
        --job-name="$JOB_NAME" \
        --nodes="$NODES" \
        --gres=gpu:"$GPUS_PER_NODE" \
        --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --kill-on-bad-exit=1 \
        "${srun_argv[@]}" \
        "$@"
}
