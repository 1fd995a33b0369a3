#!/usr/bin/env bash
# bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py flags]
# GPUS tasks, one per GPU, on GPUS / GPUS_PER_NODE nodes through srun. Each task reads its rank from
# the variables Slurm sets (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODELIST: the first
# node is the master) through mmengine's slurm launcher.
# Env: GPUS (total, default 8), GPUS_PER_NODE (8; GPUS when GPUS is smaller; GPUS must be a multiple
# of it), CPUS_PER_TASK (5), SRUN_ARGS (more srun options, split at spaces), MASTER_PORT (29500; set
# another one when two jobs share a node).
source "$(dirname "$0")/_args.sh"
need_args $# 4 "bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py flags]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
PY_ARGS=("${@:5}")
need_file CONFIG "$CONFIG"
need_int GPUS "$GPUS" 1
need_int GPUS_PER_NODE "$GPUS_PER_NODE" 1
need_int CPUS_PER_TASK "$CPUS_PER_TASK" 1
slurm_layout
if [ -e "$WORK_DIR" ] && [ ! -d "$WORK_DIR" ]; then die "WORK_DIR: '$WORK_DIR' is a file, not a folder"; fi
source "$(dirname "$0")/_python.sh"
slurm_srun "$PYTHON" -u "$(dirname "$0")/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${PY_ARGS[@]}"
