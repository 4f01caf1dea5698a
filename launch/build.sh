#!/usr/bin/env bash
# Configures and builds xcomp into build/ (or $XCOMP_BUILD_DIR). Extra arguments go to
# cmake's configure step, e.g. -DXCOMP_CUDA=OFF.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${XCOMP_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j"$(nproc)" -- --no-print-directory >/dev/null
echo "$build"
