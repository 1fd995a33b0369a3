#!/usr/bin/env bash
# bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test.py flags]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1; with NNODES > 1 it must be
# set, to the address of node 0, on every node), as tools/dist_train.sh.
set -e
source "$(dirname "$0")/_args.sh"
need_args $# 3 "bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test.py flags]"
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
need_file CONFIG "$CONFIG"
need_checkpoint CHECKPOINT "$CHECKPOINT"
need_int NUM_PROCESSES "$GPUS" 1
need_int NNODES "$NNODES" 1
need_int NODE_RANK "$NODE_RANK" 0 $((NNODES - 1))
need_int PORT "$PORT" 1 65535
need_master_addr "$NNODES"
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
source "$(dirname "$0")/_python.sh"
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
