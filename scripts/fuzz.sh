#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/, clang with ASan + UBSan) into build-fuzz/ and run each one
# for a bounded time or number of inputs. Fails when a target crashes, leaks, hangs (-timeout), runs
# out of memory (-rss_limit_mb) or breaks one of its properties, and when a committed regression input
# (tests/fuzz/regressions/<target>/) fails again. Prints the executions of each target.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [--no-build] [target...]
#     --seconds N   run each target for N seconds (default 20; PAGODA_FUZZ_SECONDS sets the default)
#     --runs N      stop each target after N inputs instead (with --seconds too: whichever comes first)
#     --no-build    use the binaries already in build-fuzz/
#     target        some of: gguf_reader_fuzz tokenizer_fuzz chat_template_fuzz stop_strings_fuzz
#                   http_request_fuzz tool_calls_fuzz grpc_request_fuzz (default: all)
# The tokenizer and gRPC targets load $PAGODA_MODEL (default: the cache path scripts/fetch_model.sh uses).
# The gRPC target links the engine from the normal build in build/ (built here if missing).
# New inputs a run finds go to build-fuzz/corpus/<target>/ (not committed); crashes to
# build-fuzz/artifacts/. Seeds: tests/fuzz/corpus/<target>/ (python3 tests/fuzz/make_corpus.py).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ALL=(gguf_reader_fuzz tokenizer_fuzz chat_template_fuzz stop_strings_fuzz http_request_fuzz tool_calls_fuzz
     grpc_request_fuzz)
seconds="${PAGODA_FUZZ_SECONDS:-20}"
runs=""
build=1
targets=()
seconds_given=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; seconds_given=1; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
      printf '%s\n' "${ALL[@]}" | grep -qx "$1" || die "unknown target '$1' (known: ${ALL[*]})"
      targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
[[ "$seconds" =~ ^[0-9]+$ ]] || die "--seconds wants a whole number of seconds, got '$seconds'"
[ -z "$runs" ] || [[ "$runs" =~ ^[0-9]+$ ]] || die "--runs wants a whole number, got '$runs'"
if [ -n "$runs" ] && [ "$seconds_given" -eq 0 ]; then seconds=0; fi  # --runs alone: no time limit
[ -n "$runs" ] || [ "$seconds" -gt 0 ] || die "nothing to run: --seconds 0 without --runs"

wants_grpc=0
for t in "${targets[@]}"; do [ "$t" = grpc_request_fuzz ] && wants_grpc=1; done

if [ "$build" -eq 1 ]; then
  command -v clang++-14 >/dev/null || die "clang++-14 not found: run scripts/setup.sh (it installs clang-14, libclang-rt-14-dev, libfuzzer-14-dev)"
  if [ "$wants_grpc" -eq 1 ]; then
    # The gRPC target's engine and scheduler come from the normal build (a no-op after scripts/build.sh).
    export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
    [ -f build/CMakeCache.txt ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build --target pagoda_engine pagoda_scheduler xgrammar llama_jinja -j"$(nproc)"
  fi
  grpc_flag=ON
  [ "$wants_grpc" -eq 1 ] || grpc_flag=OFF
  CC=clang-14 CXX=clang++-14 cmake -S tests/fuzz -B build-fuzz -G Ninja -DPAGODA_GCC_BUILD="$ROOT/build" \
    -DPAGODA_FUZZ_GRPC="$grpc_flag" >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
fi

if [ -z "${PAGODA_MODEL:-}" ]; then
  export PAGODA_MODEL="$PAGODA_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
mkdir -p build-fuzz/logs build-fuzz/artifacts
failed=()
summary=()
for t in "${targets[@]}"; do
  bin="build-fuzz/$t"
  [ -x "$bin" ] || die "$bin is missing (run without --no-build)"
  work="build-fuzz/corpus/$t"
  seeds="tests/fuzz/corpus/$t"
  regress="tests/fuzz/regressions/$t"
  mkdir -p "$work"
  log="build-fuzz/logs/$t.log"
  # Every committed regression input once, on its own: each was a crash once.
  if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    if ! "$bin" -rss_limit_mb=2560 -timeout=30 "$regress"/* >"$log.regressions" 2>&1; then
      log "$t: a regression input fails again:"
      grep -E "ERROR|violated|runtime error|Running:" "$log.regressions" | tail -n 20 >&2 || true
      failed+=("$t (regression)")
      continue
    fi
  fi
  args=(-rss_limit_mb="${PAGODA_FUZZ_RSS_MB:-2560}" -timeout=10 -print_final_stats=1
        -artifact_prefix="build-fuzz/artifacts/$t-")
  [ "$seconds" -gt 0 ] && args+=(-max_total_time="$seconds")
  [ -n "$runs" ] && args+=(-runs="$runs")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  dirs=("$work" "$seeds")
  [ -d "$regress" ] && dirs+=("$regress")
  log "$t: ${args[*]} ${dirs[*]}"
  start=$(date +%s)
  rc=0
  "$bin" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)"
  line="$(printf '%-20s %10s execs %5s s  rc %s' "$t" "${execs:-?}" "$took" "$rc")"
  summary+=("$line")
  if [ "$rc" -ne 0 ]; then
    log "$t failed (rc $rc); the end of $log:"
    grep -v 'libprotobuf ERROR' "$log" | grep -E "ERROR|violated|runtime error|SUMMARY|Test unit written|#[0-9]+ 0x" | head -n 40 >&2 || true
    failed+=("$t")
  fi
done

log "summary (logs in build-fuzz/logs/):"
for s in "${summary[@]}"; do printf '  %s\n' "$s" >&2; done
if [ ${#failed[@]} -gt 0 ]; then
  die "fuzzing failed: ${failed[*]} (inputs in build-fuzz/artifacts/; make each a regression input in tests/fuzz/regressions/<target>/)"
fi
log "fuzzing clean"
