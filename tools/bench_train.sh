#!/usr/bin/env bash
# One training step, xcomp beside PyTorch + PEFT (tools/bench/torch_reference.py), for the
# stories260K and dim512 shapes on 1 and 2 threads (or the options given, passed on to
# `xcomp bench train --reference`).
#
#   tools/bench_train.sh                                   # the CPU comparison table
#   tools/bench_train.sh --shape llama3-8b --device cuda   # one run with those options
#
# Environment: XCOMP (the xcomp binary; default build/xcomp), XCOMP_PYTHON (a Python with
# torch, transformers and peft; default /tmp/refvenv/bin/python, see
# tests/reference/README.md), XCOMP_FIXTURES. Run from the repository root on an otherwise
# idle machine: the numbers are only as steady as the machine is.
set -euo pipefail
XCOMP=${XCOMP:-build/xcomp}
if (($#)); then
  exec "$XCOMP" bench train --reference "$@"
fi
for shape in stories260k dim512; do
  for threads in 1 2; do
    echo "== $shape, $threads thread(s)"
    "$XCOMP" bench train --reference --shape "$shape" --threads "$threads"
    echo
  done
done
