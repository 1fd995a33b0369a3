#!/usr/bin/env bash
# bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py flags]
# NUM_PROCESSES processes on this node (one per GPU) through torchrun; nccl on GPU nodes, gloo on
# CPU-only machines, chosen automatically.
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1; with NNODES > 1 it must be
# set, to the address of node 0, on every node). torchrun gives each process RANK, LOCAL_RANK,
# WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
set -e
source "$(dirname "$0")/_args.sh"
need_args $# 2 "bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py flags]"
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
need_file CONFIG "$CONFIG"
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
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"
