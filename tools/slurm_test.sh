#!/usr/bin/env bash
# bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py flags]
# Env: GPUS (total, default 8), GPUS_PER_NODE (8; GPUS when GPUS is smaller; GPUS must be a multiple
# of it), CPUS_PER_TASK (5), SRUN_ARGS (more srun options, split at spaces), MASTER_PORT (29500), as
# tools/slurm_train.sh.
source "$(dirname "$0")/_args.sh"
need_args $# 4 "bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py flags]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
PY_ARGS=("${@:5}")
need_file CONFIG "$CONFIG"
need_checkpoint CHECKPOINT "$CHECKPOINT"
need_int GPUS "$GPUS" 1
need_int GPUS_PER_NODE "$GPUS_PER_NODE" 1
need_int CPUS_PER_TASK "$CPUS_PER_TASK" 1
slurm_layout
source "$(dirname "$0")/_python.sh"
slurm_srun "$PYTHON" -u "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher=slurm "${PY_ARGS[@]}"
