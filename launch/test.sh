#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test that needs no GPU: the release
# build's unit and slow suites, then the unit suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/launch/setup.sh"
# Spinning OpenMP threads of tests running side by side steal each other's cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

jobs=$(nproc)
echo "== release build" >&2
# The CUDA backend is compiled (never run: CI has no GPU) for one architecture, the
# H100/H200's, to keep nvcc's share of the CI time small.
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DXCOMP_CUDA=AUTO -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build "$root/build" -j"$jobs" -- --no-print-directory >/dev/null
(cd "$root/build" && ctest -LE cuda --output-on-failure -j"$jobs")

echo "== sanitizer build (ASan + UBSan), unit tests" >&2
cmake -S "$root" -B "$root/build-sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXCOMP_CUDA=OFF -DXCOMP_SANITIZE=ON >/dev/null
cmake --build "$root/build-sanitize" -j"$jobs" --target unit_tests -- --no-print-directory >/dev/null
(cd "$root/build-sanitize" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest -L unit --output-on-failure -j"$jobs")
