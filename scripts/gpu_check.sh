#!/usr/bin/env bash
# The GPU check: runs on a GPU machine from the folder scripts/gpu_bundle.sh made, in <= 8 minutes.
#   nvidia-smi; the CUDA suites (kernels vs CPU references, the backend suite on cpu and cuda,
#   teacher-forced parity on random-weight smollm2-135m and llama3-8b shapes, batch invariance of
#   32 greedy sequences); the kernel and backend suites again under compute-sanitizer memcheck.
# Writes under $OUT (default: ./gpu-out): nvidia-smi.txt, tests.log, gtest.json, results.jsonl
# (one JSON object per measured check), sanitizer.log, summary.txt. (memcheck skips the test that
# asks for 128 TiB on purpose: the sanitizer counts that failed cudaMalloc as an error.)
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
export LD_LIBRARY_PATH="$here/lib:$(find_cublas):${LD_LIBRARY_PATH:-}"
bin=$here/bin/pagoda_cuda_tests
if ! "$bin" --gtest_list_tests >/dev/null 2>&1; then  # this machine's libstdc++ is older than ours
  export LD_LIBRARY_PATH="$here/lib/fallback:$LD_LIBRARY_PATH"
fi

{ nvidia-smi; nvidia-smi -q -d CLOCK,MEMORY | head -60; } >"$OUT/nvidia-smi.txt" 2>&1
head -12 "$OUT/nvidia-smi.txt"
rm -f "$OUT/results.jsonl"
start=$(date +%s)
PAGODA_GPU_BIG=1 PAGODA_GPU_REPORT="$OUT/results.jsonl" timeout 360 "$bin" --gtest_output="json:$OUT/gtest.json" \
  >"$OUT/tests.log" 2>&1
rc=$?
echo "pagoda_cuda_tests: exit $rc in $(( $(date +%s) - start )) s" | tee "$OUT/summary.txt"
grep -E '^\[  (FAILED|SKIPPED|PASSED) |^REPORT|Failure|error' "$OUT/tests.log" | head -60 | tee -a "$OUT/summary.txt"

if command -v compute-sanitizer >/dev/null; then
  start=$(date +%s)
  timeout 150 compute-sanitizer --tool memcheck --leak-check no "$bin" \
    --gtest_filter='CudaKernels.*:Backends/BackendSuite.*/cuda:-CudaKernels.BadArguments*' >"$OUT/sanitizer.log" 2>&1
  echo "memcheck: exit $? in $(( $(date +%s) - start )) s; $(grep -c '^========= Invalid' "$OUT/sanitizer.log") invalid accesses" \
    | tee -a "$OUT/summary.txt"
  tail -3 "$OUT/sanitizer.log" | tee -a "$OUT/summary.txt"
  # racecheck: shared-memory hazards in the block reductions.
  timeout 60 compute-sanitizer --tool racecheck "$bin" --gtest_filter='CudaKernels.AddRmsNorm*' >"$OUT/racecheck.log" 2>&1
  echo "racecheck: exit $?; $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' "$OUT/racecheck.log" | head -2 | tr '\n' ' ')" | tee -a "$OUT/summary.txt"
fi
exit $rc
