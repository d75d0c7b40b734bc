#!/usr/bin/env bash
# The GPU check: runs on a GPU machine from the folder scripts/gpu_bundle.sh made, in <= 8 minutes.
#   nvidia-smi; the CUDA suites (kernels vs CPU references, the backend suite on cpu and cuda,
#   teacher-forced parity on random-weight smollm2-135m and llama3-8b shapes, batch invariance of
#   32 greedy sequences); the kernel and backend suites again under compute-sanitizer memcheck (and
#   racecheck on the block reductions); the scheduler's soak tests with the CUDA backend (forced
#   preemption, cancellation, every KV block returned); a first `pagoda bench single` on random
#   smollm2-135m and llama3-8b models made there (smollm2 also without CUDA graphs; ncu's DRAM counters
#   on llama3-8b's decode linear layers); then, when run from a checkout (tests/server beside
#   the bundle) whose Python has the test packages (or wheels for them in .whl/), the daemon's HTTP
#   and gRPC suites against `pagodad --backend cuda` on the random smollm2-135m-shaped model.
# Writes under $OUT (default: ./gpu-out) the 8 files a lent machine returns: summary.txt (nvidia-smi
# first), tests.log, results.jsonl (one JSON object per measured check), sanitizer.log, scheduler.log,
# bench-single.json (smollm2-135m shape), bench-single-llama3-8b.json, server-suites.log. memcheck
# skips the test that asks for 128 TiB on purpose and the one that breaks a graph capture on purpose:
# the sanitizer counts those failed calls.
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"

find_cublas() {
  for f in /usr/local/cuda/lib64/libcublasLt.so.13 /usr/local/cuda*/lib64/libcublasLt.so.13 \
           /usr/local/cuda*/targets/x86_64-linux/lib/libcublasLt.so.13 /usr/lib/x86_64-linux-gnu/libcublasLt.so.13; do
    [ -e "$f" ] && { dirname "$f"; return; }
  done
  python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null
}
for z in "$here"/lib/*.xz; do [ -e "$z" ] && xz -d -k -f "$z"; done
# Our binaries see the bundled libraries (before the machine's own path, which may be where the driver's
# libcuda lives); Python and the machine's tools keep theirs.
cublas_dir=$(find_cublas)
if [ -z "$cublas_dir" ]; then
  echo "gpu check: libcublasLt.so.13 not found on this machine (CUDA 13 is needed)" | tee "$OUT/summary.txt"
  exit 1
fi
libs="$here/lib:$cublas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin=$here/bin/pagoda_cuda_tests
if ! LD_LIBRARY_PATH=$libs "$bin" --gtest_list_tests >/dev/null 2>&1; then  # this machine's libstdc++ is older
  libs="$here/lib/fallback:$libs"
fi
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
for b in pagoda_cuda_tests pagoda_scheduler_tests pagodad pagoda; do
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$libs" "$here/bin/$b" >"$wrap/$b"
  chmod +x "$wrap/$b"
done
bin=$wrap/pagoda_cuda_tests
# Every stage's failure fails the check; a GPU test that would skip fails instead.
export PAGODA_REQUIRE_GPU=1
fail() { [ "$rc" -eq 0 ] && rc=$1; }
# bench_single LABEL MODEL PROMPT GEN REPEATS JSON: one `pagoda bench single` on the GPU, its result
# line in the summary.
bench_single() {
  # shellcheck disable=SC2086  # GPU_CHECK_BENCH_EXTRA is a list of flags
  timeout 180 "$wrap/pagoda" bench single --backend "${GPU_CHECK_SERVER_BACKEND:-cuda}" --model "$2" \
    --prompt-tokens "$3" --gen-tokens "$4" --repeats "$5" --json "$6" ${GPU_CHECK_BENCH_EXTRA:-} >"$wrap/bench.log" 2>&1
  local src=$?
  fail $src
  echo "bench single $1: exit $src" | tee -a "$OUT/summary.txt"
  tail -5 "$wrap/bench.log" | tee -a "$OUT/summary.txt"
}

{ nvidia-smi; nvidia-smi -q -d CLOCK,MEMORY | head -60; } >"$OUT/summary.txt" 2>&1
head -12 "$OUT/summary.txt"
rm -f "$OUT/results.jsonl"
start=$(date +%s)
PAGODA_GPU_BIG=1 PAGODA_GPU_REPORT="$OUT/results.jsonl" timeout 360 "$bin" >"$OUT/tests.log" 2>&1
rc=$?
echo "pagoda_cuda_tests: exit $rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
grep -E '^\[  (FAILED|SKIPPED|PASSED) |^REPORT|Failure|error' "$OUT/tests.log" | head -60 | tee -a "$OUT/summary.txt"

if command -v compute-sanitizer >/dev/null; then
  start=$(date +%s)
  timeout 150 env LD_LIBRARY_PATH="$libs" compute-sanitizer --tool memcheck --leak-check no --error-exitcode 1 \
    "$here/bin/pagoda_cuda_tests" \
    --gtest_filter='CudaKernels.*:Backends/BackendSuite.*/cuda:CudaGraphs.*:-CudaKernels.BadArguments*:CudaKernels.StepGraphs*' >"$OUT/sanitizer.log" 2>&1
  src=$?
  fail $src
  echo "memcheck: exit $src in $(( $(date +%s) - start )) s; $(grep -c '^========= Invalid' "$OUT/sanitizer.log") invalid accesses" \
    | tee -a "$OUT/summary.txt"
  tail -3 "$OUT/sanitizer.log" | tee -a "$OUT/summary.txt"
  # racecheck: shared-memory hazards in the block reductions.
  timeout 60 env LD_LIBRARY_PATH="$libs" compute-sanitizer --tool racecheck --error-exitcode 1 "$here/bin/pagoda_cuda_tests" \
    --gtest_filter='CudaKernels.AddRmsNorm*' >"$OUT/racecheck.tmp" 2>&1
  src=$?
  fail $src
  echo "racecheck: exit $src; $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' "$OUT/racecheck.tmp" | head -2 | tr '\n' ' ')" | tee -a "$OUT/summary.txt"
  cat "$OUT/racecheck.tmp" >>"$OUT/sanitizer.log" && rm -f "$OUT/racecheck.tmp"
fi

# The scheduler's soak tests (1,000 random requests, forced preemption, cancellations; every KV block
# back in the pool at the end) with the CUDA backend under the engine loop.
start=$(date +%s)
PAGODA_TEST_BACKEND=cuda timeout 240 "$wrap/pagoda_scheduler_tests" --gtest_filter='SchedulerSoak.*' >"$OUT/scheduler.log" 2>&1
src=$?
fail $src
echo "scheduler soak (cuda): exit $src in $(( $(date +%s) - start )) s; $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/scheduler.log" | tr '\n' ' ')" \
  | tee -a "$OUT/summary.txt"

# The daemon's suites on the GPU (needs the checkout's tests/ and the Python test packages).
repo=$(cd "$here/.." && pwd)
if [ -d "$repo/tests/server" ]; then
  if [ -d "$repo/.whl" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/pagoda-site \
      "$repo"/.whl/*.whl && export PYTHONPATH=/tmp/pagoda-site${PYTHONPATH:+:$PYTHONPATH}
  fi
  if python3 -c 'import openai, grpc_tools, pytest' 2>/dev/null; then
    model=$OUT/random-smollm2-135m.gguf
    "$wrap/pagoda" make-model --preset smollm2-135m --out "$model" >/dev/null 2>&1 || echo "make-model failed" >>"$OUT/summary.txt"
    # A first decode/prefill timing on that model (the CUDA performance issue builds the real benchmarks).
    bench_single smollm2-135m "$model" 512 128 3 "$OUT/bench-single.json"
    # With the few-row decode kernel, and without CUDA graphs (every step's ~300 launches from the
    # host): what each buys. Their result lines go to the summary only.
    GPU_CHECK_BENCH_EXTRA="--cuda-decode-kernel gemv" bench_single "smollm2-135m, --cuda-decode-kernel gemv" "$model" \
      512 128 3 "$wrap/bench-gemv.json"
    GPU_CHECK_BENCH_EXTRA="--cuda-graph-max-tokens 0" bench_single "smollm2-135m, no CUDA graphs" "$model" 512 128 3 \
      "$wrap/bench-eager.json"
    start=$(date +%s)
    (cd "$repo" && PAGODAD="$wrap/pagodad" PAGODA_CLI="$wrap/pagoda" PAGODA_MODEL="$model" \
      PAGODA_BACKEND=${GPU_CHECK_SERVER_BACKEND:-cuda} timeout 300 python3 -m pytest tests/server -q -rs -p no:cacheprovider \
      -k 'not prefill_matmul' >"$OUT/server-suites.log" 2>&1)
    src=$?
    echo "server suites (pagodad --backend ${GPU_CHECK_SERVER_BACKEND:-cuda}): exit $src in $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
    grep -E '^(SKIPPED|FAILED|ERROR)|passed|failed' "$OUT/server-suites.log" | tail -15 | tee -a "$OUT/summary.txt"
    rm -f "$model"
    fail $src
  else
    echo "server suites: NOT RUN (python3 lacks openai / grpc_tools / pytest)" | tee -a "$OUT/summary.txt"
    fail 1
  fi
fi

# The same timing at the llama3-8b shape (all 32 layers, random q4_0 weights, 16 GB in bf16 on the GPU).
if [ "${GPU_CHECK_BIG_BENCH:-1}" = 1 ]; then
  big=$wrap/random-llama3-8b.gguf
  if timeout 120 "$wrap/pagoda" make-model --preset llama3-8b --out "$big" >/dev/null 2>&1; then
    bench_single llama3-8b "$big" 512 64 2 "$OUT/bench-single-llama3-8b.json"
    GPU_CHECK_BENCH_EXTRA="--cuda-decode-kernel gemv" bench_single "llama3-8b, --cuda-decode-kernel gemv" "$big" \
      512 64 2 "$wrap/bench-gemv-8b.json"
    # Hardware counters of the first decode step's four linear layers (layer 0: q|k|v, o, gate|up,
    # down; the skipped launch is the prefill's LM head row) under the few-row kernel: DRAM bytes and
    # throughput against the card's peak, the roofline fraction's evidence.
    if [ "${GPU_CHECK_NCU:-1}" = 1 ] && command -v ncu >/dev/null; then
      {
        echo "ncu: the decode linear layers of llama3-8b (first decode step, layer 0)"
        timeout 150 env LD_LIBRARY_PATH="$libs" ncu --clock-control none --kernel-name regex:gemv_kernel --launch-skip 1 \
          --launch-count 4 --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size \
          "$here/bin/pagoda" bench single --backend cuda --cuda-decode-kernel gemv --model "$big" --prompt-tokens 16 \
          --gen-tokens 2 --repeats 1 \
          2>&1 | grep -E 'gemv_kernel|gpu__time|dram__|launch__grid|==PROF==|rror' | head -40
      } | tee -a "$OUT/summary.txt"
    fi
  else
    echo "bench single llama3-8b: make-model failed or timed out" | tee -a "$OUT/summary.txt"
    fail 1
  fi
  rm -f "$big"
fi
exit $rc
