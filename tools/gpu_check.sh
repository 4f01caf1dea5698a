#!/usr/bin/env bash
# The one script for checking the CUDA backend on a lent GPU machine.
#
#   tools/gpu_check.sh --prepare          here (no GPU needed): configures and builds
#                                         build-gpu (CUDA on, sm_90 only), then packs the
#                                         xcomp, cuda_tests and nccl_tests binaries with the
#                                         shared libraries the GPU machine lacks, and the
#                                         stories260K and TinyStories fixtures, into
#                                         build-gpu/bundle/xcomp-gpu.tar.xz
#   tools/gpu_check.sh ['bench cmd' ...]  there: unpacks the bundle, runs cuda_tests, then
#                                         nccl_tests, then each argument as a shell command
#                                         (with the bundled xcomp first on PATH), and prints
#                                         a summary
#
# The GPU machine has the CUDA driver, cuBLAS and nvcc but none of our C++ dependencies
# (glog, gflags, yaml-cpp, hdf5, openblas, sentencepiece, ...), so those travel in the
# bundle; libcuda comes from the driver there, cuBLAS and NCCL from its own CUDA install
# or Python packages (over 500 and 200 MiB, too big to carry). Send only the bundle folder
# along: with the device tool, carry ["build-gpu/bundle"]. Results go to $OUT (or
# ./gpu-check-out): cuda_tests.json, cuda_tests.log, nccl_tests_<how>.json/.log (one per
# way of starting it, see run_nccl_tests), bench.log and gpu_check.log (everything
# printed); when the test binary crashes, each test is rerun alone
# (cuda_tests_isolated.log). GPU_CHECK_SANITIZE=1 adds a compute-sanitizer memcheck pass
# over the small shapes (sanitizer.log) and a racecheck pass over the flash attention
# tests (racecheck.log). XCOMP_GPU_BUNDLE names another bundle file (for
# trying the script out elsewhere).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The build folder may be another CUDA build (XCOMP_GPU_BUILD); the bundle always lands in
# build-gpu/bundle, the one folder that travels.
BUILD=${XCOMP_GPU_BUILD:-$REPO/build-gpu}
BUNDLE=${XCOMP_GPU_BUNDLE:-$REPO/build-gpu/bundle/xcomp-gpu.tar.xz}
MAX_BUNDLE_MIB=50

# Libraries never packed: the C library family (the GPU machine's own is newer), the
# driver's, cuBLAS and NCCL (found on the GPU machine, see find_cublas_dir and
# find_nccl_dir).
is_system_library() {
  case "$1" in
    linux-vdso.so* | ld-linux*.so* | libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | \
      libresolv.so.* | libutil.so.* | libcuda.so* | libnvidia*.so* | libcublas.so* | libcublasLt.so* | libnccl.so*)
      return 0 ;;
  esac
  return 1
}

prepare() {
  cmake -S "$REPO" -B "$BUILD" -DXCOMP_CUDA=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  # The full target, never cuda_tests/fast: /fast skips make's dependency scan, and test
  # objects compiled against an older ops.h (another vtable) ran and gave garbage.
  cmake --build "$BUILD" --target cuda_tests -- -j"${JOBS:-1}"
  local binaries=("$BUILD/tests/cuda_tests")
  if cmake --build "$BUILD" --target xcomp -- -j"${JOBS:-1}"; then
    binaries+=("$BUILD/xcomp")
  else
    echo "WARNING: xcomp did not build; the bundle holds the tests only (no benchmarks)" >&2
  fi
  # Its own binary (a target only where CMake found NCCL).
  if cmake --build "$BUILD" --target nccl_tests -- -j"${JOBS:-1}"; then
    binaries+=("$BUILD/tests/nccl_tests")
  else
    echo "WARNING: nccl_tests did not build (no NCCL found?); the bundle holds no NCCL tests" >&2
  fi

  local stage=$BUILD/stage
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib" "$(dirname "$BUNDLE")"
  cp "${binaries[@]}" "$stage/bin/"
  strip --strip-unneeded "$stage/bin/"*

  local missing
  missing=$(ldd "$stage/bin/"* | grep 'not found' || true)
  if [[ -n $missing ]]; then
    echo "unresolved libraries here:" >&2
    echo "$missing" >&2
    exit 1
  fi
  local lib name
  for lib in $(ldd "$stage/bin/"* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
    name=$(basename "$lib")
    is_system_library "$name" && continue
    cp -L "$lib" "$stage/lib/$name"
  done
  strip --strip-unneeded "$stage/lib/"*.so* 2>/dev/null || true
  # Open MPI loads its components at MPI_Init from its install tree: pack them for xcomp
  # commands that start MPI (the cuda_tests don't).
  # (best effort: Debian's Open MPI 4.1 with its external PMIx, untried on the GPU machine).
  local ompi_components=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3 pmix=/usr/lib/x86_64-linux-gnu/pmix2/lib
  if [[ -d $ompi_components ]]; then cp -rL "$ompi_components" "$stage/lib/openmpi3"; fi
  if [[ -d $pmix ]]; then
    mkdir -p "$stage/lib/pmix2"
    cp -L "$pmix"/libpmix.so.2 "$stage/lib/"
    cp -rL "$pmix/pmix" "$stage/lib/pmix2/"
  fi

  # The fixtures the stories260K checks read (the compressor-vs-CPU test, the training
  # check): the GPU machine gets only the working tree, and ../shared is beside it.
  local fixtures=${XCOMP_FIXTURES:-$REPO/../shared/fixtures} subset
  for subset in stories260K tinystories; do
    if [[ -d $fixtures/$subset ]]; then
      mkdir -p "$stage/fixtures"
      cp -rL "$fixtures/$subset" "$stage/fixtures/"
    else
      echo "WARNING: no $fixtures/$subset: the stories260K checks will fail there" >&2
    fi
  done

  tar -C "$stage" -cJf "$BUNDLE" .
  echo "packed: $(ls "$stage/bin" | tr '\n' ' ')+ $(ls "$stage/lib" | wc -l) libraries"
  du -sh "$stage" | awk '{print "unpacked: " $1}'
  local bytes
  bytes=$(stat -c %s "$BUNDLE")
  echo "bundle: $BUNDLE, $((bytes / 1024 / 1024)) MiB (limit ${MAX_BUNDLE_MIB} MiB)"
  if ((bytes > MAX_BUNDLE_MIB * 1024 * 1024)); then
    echo "the bundle is too big to travel" >&2
    exit 1
  fi
  echo "next: send it with carry [\"build-gpu/bundle\"] and run tools/gpu_check.sh [bench commands]"
}

# The folder holding libcublas.so.13 on the GPU machine: its CUDA install first (it
# matches its nvcc and driver), then the pip wheel beside PyTorch, then anywhere.
find_cublas_dir() {
  local dir
  for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
    if [[ -e $dir/libcublas.so.13 ]]; then echo "$dir"; return; fi
  done
  local found
  found=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' \
    2>/dev/null || true)
  if [[ -n $found && -e $found/libcublas.so.13 ]]; then echo "$found"; return; fi
  found=$(find / -xdev -name 'libcublas.so.13*' -not -path '/proc/*' 2>/dev/null | head -1 || true)
  if [[ -n $found ]]; then dirname "$found"; fi
}

# The folder holding libnccl.so.2 on the GPU machine: its CUDA install first, then the
# pip wheel beside PyTorch (nvidia-nccl-cu12/-cu13), then anywhere.
find_nccl_dir() {
  local dir
  for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
    /usr/local/cuda-13*/lib /usr/lib/x86_64-linux-gnu; do
    if [[ -e $dir/libnccl.so.2 ]]; then echo "$dir"; return; fi
  done
  local found
  found=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' \
    2>/dev/null || true)
  if [[ -n $found && -e $found/libnccl.so.2 ]]; then echo "$found"; return; fi
  found=$(find / -xdev -name 'libnccl.so.2*' -not -path '/proc/*' 2>/dev/null | head -1 || true)
  if [[ -n $found ]]; then dirname "$found"; fi
}

# nccl_tests (the NCCL communicator) three ways, each with its own report
# nccl_tests_<how>.json and log: "alone", a world of one without MPI (NCCL and CUDA only:
# the run that must pass); then under an Open MPI 4 mpirun if this machine has one ("np1",
# and "np2" when there are two GPUs), else as an MPI singleton ("singleton", the way a
# plain `xcomp train` starts). Returns non-zero when a run failed.
#   run_nccl_tests OUT WRAPPER BINARY (the wrapper runs it, ldd reads the binary)
run_nccl_tests() {
  local out=$1 binary=$2 real_binary=$3
  echo "==== nccl_tests"
  if LD_LIBRARY_PATH="$NCCL_TEST_LIBS" ldd "$real_binary" | grep -q 'libnccl.*not found'; then
    echo "WARNING: no libnccl.so.2 on this machine: nccl_tests NOT RUN"
    return 0
  fi
  local gpus failed=0
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  run_nccl_tests_as alone "$out" "$binary" || failed=1
  if command -v mpirun >/dev/null && mpirun --version 2>&1 | grep -q 'Open MPI) 4\.'; then
    run_nccl_tests_as np1 "$out" mpirun -np 1 --allow-run-as-root --oversubscribe --bind-to none "$binary" || failed=1
    if ((gpus >= 2)); then
      run_nccl_tests_as np2 "$out" mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none "$binary" || failed=1
    else
      echo "$gpus GPU(s): no two-rank run (nccl_tests under mpirun -np 2 needs two)"
    fi
  else
    echo "no Open MPI 4 mpirun here: nccl_tests as an MPI singleton instead"
    XCOMP_TESTS_MPI_SINGLETON=1 run_nccl_tests_as singleton "$out" "$binary" || failed=1
  fi
  return "$failed"
}

# One run: run_nccl_tests_as NAME OUT COMMAND... (the command ends with the test binary).
run_nccl_tests_as() {
  local name=$1 out=$2
  shift 2
  echo "---- nccl_tests ($name): $*"
  local start rc=0
  start=$(date +%s%N)
  set +e
  # Every run is on this one node: NCCL's bootstrap over loopback needs no network.
  NCCL_DEBUG=${NCCL_DEBUG:-WARN} NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-lo} timeout "${NCCL_TEST_TIMEOUT:-180}" "$@" \
    --gtest_output="json:$out/nccl_tests_$name.json" 2>&1 | tee "$out/nccl_tests_$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "nccl_tests ($name) exit $rc after $(seconds_since "$start") s"
  return "$rc"
}

# The reports: cuda_tests.json first (said to be missing when it is), then any others
# given (the nccl_tests runs), then the benchmark rows.
print_summary() {
  local json=$1 bench_rows=$2
  shift 2
  python3 - "$json" "$bench_rows" "$@" <<'PY'
import json, os, sys
path, bench_rows, others = sys.argv[1], sys.argv[2], sys.argv[3:]
standard = {"name", "file", "line", "status", "result", "timestamp", "time", "classname", "failures", "value_param",
            "type_param"}


def number(value):
    try:
        return float(value)
    except ValueError:
        return 1e300 if value in ("inf", "nan") else -1e300  # non-numbers (versions, sizes) last


def print_report(path, what):
    try:
        report = json.load(open(path))
    except Exception as e:  # the binary crashed before writing it
        print(f"{what}: no test report ({e}); see {what}.log")
        return
    print(f"{what}: {report.get('tests')} tests, {report.get('failures')} failed, "
          f"{report.get('disabled', 0)} disabled, {report.get('time')}")
    print(f"{'test':72} {'result':6} {'time':>8}  largest recorded error")
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            name = f"{suite['name']}.{case['name']}"
            ok = "FAIL" if case.get("failures") else ("skip" if case.get("result") == "SKIPPED" else "ok")
            errors = {k: v for k, v in case.items() if k not in standard}
            worst = max(errors.items(), key=lambda kv: number(kv[1]), default=None)
            worst_text = f"{worst[1]} ({worst[0]})" if worst else ""
            if 1 < len(errors) <= 3:  # a step check's loss, norm and worst-tensor errors: all of them
                worst_text = ", ".join(f"{k} {v}" for k, v in errors.items())
            print(f"{name[:72]:72} {ok:6} {case.get('time', ''):>8}  {worst_text}")
            for failure in case.get("failures", []):
                print("    " + failure.get("failure", "").replace("\n", "\n    ")[:600])


print("\n==== summary ====")
print_report(path, "cuda_tests")
for other in others:
    print()
    print_report(other, os.path.splitext(os.path.basename(other))[0])
if bench_rows.strip():
    print(f"\n{'benchmark command':64} {'rc':>4} {'seconds':>8}")
    for row in bench_rows.strip().split("\n"):
        rc, seconds, cmd = row.split("\t", 2)
        print(f"{cmd[:64]:64} {rc:>4} {seconds:>8}")
PY
}

# Seconds since a `date +%s%N` reading, to a tenth.
seconds_since() { local ns=$(($(date +%s%N) - $1)); printf '%d.%d' $((ns / 1000000000)) $((ns / 100000000 % 10)); }

run_on_gpu() {
  local out=$1
  shift
  echo "==== $(date -u) on $(hostname)"
  nvidia-smi -L || echo "WARNING: nvidia-smi failed"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  [[ -f $BUNDLE ]] || { echo "no bundle at $BUNDLE: run tools/gpu_check.sh --prepare first and carry build-gpu/bundle"; exit 1; }

  local dest=/tmp/xcomp-gpu
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -C "$dest" -xJf "$BUNDLE"
  local cublas_dir
  cublas_dir=$(find_cublas_dir)
  echo "cuBLAS from: ${cublas_dir:-NOT FOUND}"
  local nccl_dir
  nccl_dir=$(find_nccl_dir)
  echo "NCCL from: ${nccl_dir:-NOT FOUND}"
  # Only our binaries see the packed libraries (Debian's, older than some of the GPU
  # machine's): python3 and other tools there keep their own. `xcomp` on PATH is a wrapper.
  # NCCL's folder comes last: it may be a Python package's, and must not shadow anything.
  local libs="$dest/lib${cublas_dir:+:$cublas_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}${nccl_dir:+:$nccl_dir}"
  NCCL_TEST_LIBS=$libs
  mkdir -p "$dest/wrap"
  local binary
  for binary in "$dest/bin/"*; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$libs" "$binary" >"$dest/wrap/$(basename "$binary")"
    chmod +x "$dest/wrap/$(basename "$binary")"
  done
  export PATH="$dest/wrap:$PATH"
  # The packed fixtures, unless the caller names others; the image's python3 holds
  # PyTorch, transformers and PEFT for `xcomp bench train --reference`.
  if [[ -d $dest/fixtures ]]; then export XCOMP_FIXTURES=${XCOMP_FIXTURES:-$dest/fixtures}; fi
  export XCOMP_PYTHON=${XCOMP_PYTHON:-python3}
  # For xcomp commands that start MPI as a singleton (root, no mpirun, packed components).
  export OMPI_MCA_mca_base_component_path="$dest/lib/openmpi3" OMPI_MCA_ess_singleton_isolated=1
  export PMIX_MCA_mca_base_component_path="$dest/lib/pmix2/pmix"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
  LD_LIBRARY_PATH="$libs" ldd "$dest/bin/"* | grep 'not found' && echo "WARNING: unresolved libraries above"

  echo "==== cuda_tests"
  local start rc=0
  start=$(date +%s%N)
  set +e
  timeout "${TEST_TIMEOUT:-300}" "$dest/wrap/cuda_tests" --gtest_output="json:$out/cuda_tests.json" 2>&1 |
    tee "$out/cuda_tests.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "cuda_tests exit $rc after $(seconds_since "$start") s"
  if ((rc > 1)); then
    # Crashed (a failed CHECK aborts the whole binary): run each test on its own so the
    # others still report, and merge their reports into cuda_tests.json.
    echo "==== cuda_tests crashed: running each test in its own process"
    local isolated=/tmp/xcomp-gpu-isolated test_name
    rm -rf "$isolated"
    mkdir -p "$isolated"
    for test_name in $("$dest/wrap/cuda_tests" --gtest_list_tests |
      awk '/^[^ ]/ {suite=$1} /^  / {print suite $1}'); do
      local test_rc=0
      timeout 120 "$dest/wrap/cuda_tests" --gtest_filter="$test_name" \
        --gtest_output="json:$isolated/${test_name//\//_}.json" >>"$out/cuda_tests_isolated.log" 2>&1 || test_rc=$?
      echo "$test_name: exit $test_rc"
      [[ -f $isolated/${test_name//\//_}.json ]] || printf '%s\t%s\n' "$test_name" "$test_rc" >>"$isolated/crashed.tsv"
    done
    python3 - "$isolated" "$out/cuda_tests.json" <<'PY'
import glob, json, sys
merged = {"tests": 0, "failures": 0, "disabled": 0, "time": "", "testsuites": []}
suites = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
    report = json.load(open(path))
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            suites.setdefault(suite["name"], []).append(case)
            merged["tests"] += 1
            merged["failures"] += bool(case.get("failures"))
try:
    crashed = [line.split("\t") for line in open(sys.argv[1] + "/crashed.tsv").read().splitlines()]
except FileNotFoundError:
    crashed = []
for name, rc in crashed:  # wrote no report: record them as failures
    suite, case = name.split(".", 1)
    suites.setdefault(suite, []).append({"name": case, "time": "", "failures": [{"failure": f"crashed (exit {rc})"}]})
    merged["tests"] += 1
    merged["failures"] += 1
merged["testsuites"] = [{"name": name, "testsuite": cases} for name, cases in suites.items()]
json.dump(merged, open(sys.argv[2], "w"), indent=1)
print(f"{len(crashed)} tests crashed; their output is in cuda_tests_isolated.log")
PY
  fi
  if [[ ${GPU_CHECK_SANITIZE:-0} == 1 ]]; then
    # Out-of-bounds accesses and races that happen to give right numbers: the small shapes
    # only (memcheck slows kernels down a hundredfold).
    echo "==== compute-sanitizer memcheck"
    local sanitizer_rc=0
    LD_LIBRARY_PATH="$libs" timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 "$dest/bin/cuda_tests" \
      --gtest_filter="${GPU_CHECK_SANITIZE_FILTER:-*stories260k*:*Dropout*:*WriteAndRead*:*Adds*:*AdamW*}" \
      >"$out/sanitizer.log" 2>&1 || sanitizer_rc=$?
    echo "compute-sanitizer exit $sanitizer_rc (0: clean; log in sanitizer.log)"
    tail -5 "$out/sanitizer.log"
    # Shared-memory hazards (a barrier missing between a write and another thread's read):
    # the kernels that share tiles between warps, on shapes with several tiles.
    echo "==== compute-sanitizer racecheck"
    local racecheck_rc=0
    LD_LIBRARY_PATH="$libs" timeout 240 compute-sanitizer --tool racecheck --racecheck-report hazard \
      --error-exitcode 3 "$dest/bin/cuda_tests" \
      --gtest_filter="${GPU_CHECK_RACECHECK_FILTER:-*Flash*/stories260k:*Flash*/decoder_blocks_d64}" \
      >"$out/racecheck.log" 2>&1 || racecheck_rc=$?
    echo "compute-sanitizer racecheck exit $racecheck_rc (0: clean; log in racecheck.log)"
    tail -5 "$out/racecheck.log"
  fi

  local nccl_reports=()
  if [[ -x $dest/bin/nccl_tests ]]; then
    if ! run_nccl_tests "$out" "$dest/wrap/nccl_tests" "$dest/bin/nccl_tests"; then
      ((rc == 0)) && rc=1
    fi
    shopt -s nullglob
    nccl_reports=("$out"/nccl_tests_*.json)
    shopt -u nullglob
  else
    echo "==== no nccl_tests in the bundle (built without NCCL)"
  fi

  local bench_rows="" cmd brc
  for cmd in "$@"; do
    echo "==== bench: $cmd" | tee -a "$out/bench.log"
    start=$(date +%s%N)
    set +e
    timeout "${BENCH_TIMEOUT:-300}" bash -c "$cmd" 2>&1 | tee -a "$out/bench.log"
    brc=${PIPESTATUS[0]}
    set -e
    bench_rows+="$brc"$'\t'"$(seconds_since "$start")"$'\t'"$cmd"$'\n'
  done
  print_summary "$out/cuda_tests.json" "$bench_rows" ${nccl_reports[@]+"${nccl_reports[@]}"}
  return "$rc"
}

if [[ ${1:-} == --prepare ]]; then
  prepare
else
  out=${OUT:-$PWD/gpu-check-out}
  mkdir -p "$out"
  set +e
  run_on_gpu "$out" "$@" 2>&1 | tee -a "$out/gpu_check.log"
  exit "${PIPESTATUS[0]}"
fi
