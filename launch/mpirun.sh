#!/usr/bin/env bash
# Data-parallel training with mpirun (Open MPI): one rank per GPU on each node, or
# RANKS_PER_NODE CPU ranks with the CPU backend.
#
#   launch/mpirun.sh configs/stories260k-regen-kv.yaml [key=value ...]
#   HOSTS=node1,node2 GPUS_PER_NODE=8 launch/mpirun.sh configs/x.yaml backend=cuda
#
# Environment:
#   HOSTS            comma-separated hosts (default: this one)
#   GPUS_PER_NODE    ranks per node = GPUs per node (default: nvidia-smi's count, else 1)
#   RANKS_PER_NODE   overrides GPUS_PER_NODE (CPU runs: several ranks on one node)
#   THREADS          CPU threads per rank (default: cores per node / ranks per node)
#   XCOMP            the xcomp binary (default: build/xcomp)
#   MPIRUN_ARGS      extra mpirun arguments (e.g. "--mca btl_tcp_if_include eth0")
# Each rank picks its GPU from its local rank (MPI_Comm_split_type), so nothing sets
# CUDA_VISIBLE_DEVICES per rank. The run directory must be on a filesystem every node
# sees only for rank 0 (it alone writes checkpoints and metrics) -- but resume=auto on a
# new allocation needs it again, so use shared storage.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
config=$1
shift

here=$(cd "$(dirname "$0")/.." && pwd)
xcomp=${XCOMP:-$here/build/xcomp}
hosts=${HOSTS:-$(hostname)}
if [[ -z "${GPUS_PER_NODE:-}" ]]; then
  GPUS_PER_NODE=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  [[ "$GPUS_PER_NODE" -gt 0 ]] || GPUS_PER_NODE=1
fi
per_node=${RANKS_PER_NODE:-$GPUS_PER_NODE}
IFS=, read -r -a host_list <<<"$hosts"
nodes=${#host_list[@]}
ranks=$((nodes * per_node))
threads=${THREADS:-$(( $(nproc) / per_node > 0 ? $(nproc) / per_node : 1 ))}

host_arg=""
for h in "${host_list[@]}"; do host_arg+="${host_arg:+,}$h:$per_node"; done

root_arg=()
[[ $(id -u) -ne 0 ]] || root_arg=(--allow-run-as-root)

echo "mpirun.sh: $ranks ranks ($nodes node(s) x $per_node), $threads thread(s) each" >&2
# --bind-to none: each rank runs its own OpenMP/BLAS threads; binding a rank to one core
# would squeeze them onto it. -x passes the environment each rank needs.
exec mpirun -np "$ranks" --host "$host_arg" --map-by "ppr:$per_node:node" --bind-to none "${root_arg[@]}" \
  -x OMP_NUM_THREADS="$threads" -x XCOMP_FIXTURES -x XCOMP_DATA -x XCOMP_MODELS -x PATH -x LD_LIBRARY_PATH \
  ${MPIRUN_ARGS:-} "$xcomp" train --config "$config" threads="$threads" "$@"
