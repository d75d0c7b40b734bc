#!/usr/bin/env bash
# Sanitizer runs (part of the test command): the engine, scheduler and server GoogleTest suites and the
# daemon, built with ASan + UBSan (build-asan/) and with TSan (build-tsan/), then
#   asan: the three suites, and the daemon's client tests (tests/server/*.py) against the sanitized pagodad;
#   tsan: the scheduler and server suites and the HTTP client tests;
# less the model-heavy cases that only repeat what is run (the lists below say which, and why).
# Any sanitizer report fails the run, whatever the tests said: every process writes its reports under
# build-<kind>/sanitizer-logs/ (log_path), and the script prints them and exits 1 when there are any.
#
#   bash scripts/sanitize.sh [--build-only] [asan|tsan|all]      (default all)
#
# --build-only configures and builds each kind and stops; build-<kind>/.pagoda-built then holds the
# build's exit status. scripts/test.sh runs that in the background, at the lowest CPU priority, from the
# end of the normal build on, and sets PAGODA_SANITIZER_BUILDER to its PID: a later run waits for that
# builder to be done with a kind before it builds (then a no-op) and tests it. So the sanitizer builds
# use the CPU the suites, the image stage and the fuzzers leave idle (the CI machine has 2 cores).
#
# Needs the project's venv (scripts/setup.sh) and the model (PAGODA_MODEL; fetched when unset).
# Flags and suppressions: tests/sanitizers/ (each file says why). scripts/test.sh runs this after ctest and
# the fuzz stage (PAGODA_SANITIZERS: asan by default, tsan, all or none).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

BUILD_ONLY=0
if [ "${1:-}" = --build-only ]; then BUILD_ONLY=1; shift; fi
WHICH="${1:-all}"
case "$WHICH" in
  asan | tsan) KINDS=("$WHICH") ;;
  all) KINDS=(asan tsan) ;;
  -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
  *) die "unknown argument '$WHICH' (asan, tsan or all)" ;;
esac

if [ -z "${PAGODA_MODEL:-}" ]; then
  PAGODA_MODEL="$(bash scripts/fetch_model.sh | tail -n1)"
fi
[ -f "$PAGODA_MODEL" ] || die "model not found: '$PAGODA_MODEL'"
export PAGODA_MODEL PAGODA_REQUIRE_MODEL=1 OMP_WAIT_POLICY=passive
export PATH="$VENV/bin:$PATH"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1   # as scripts/build.sh
SAN="$ROOT/tests/sanitizers"

# A flags file: '#' lines dropped, the rest joined with ':'.
flags_of() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1" | paste -sd: -; }

# Which GoogleTest cases run (gtest filters; times are under ASan + UBSan on 2 cores, 2026-12-07).
# ASan + UBSan makes the model ~6x slower. The engine suite runs whole but for the two llama.cpp golden
# sweeps (240 s together: many prompts through the same forward pass that ArchitectureGolden, the ragged
# batch test and the scheduler cases run here too). Of the scheduler's token-for-token equivalence tests
# it runs the suffix drafter's (its cache of finished outputs shared across requests, 104 s) and the
# forked-choice and predicted-output Speculative cases (20 s), whose drafts are verified, kept and rolled
# back. Left out are the ones that repeat those paths under other step sizes, pools and drafters (the
# perfect drafter alone was 212 s, the small pool's preemptions 146 s: preemption and block reuse run
# here in SchedulerSoak and the KV cache soaks, and in the client tests); the drafters' own tests run in
# the engine suite, the draft-model drafter's too.
ASAN_EXCLUDE=(
  'ForwardGolden.TeacherForcedTop1AgreesWithLlamaCpp' 'ForwardGolden.GreedyFirst32TokensMatchLlamaCpp'
  'BatchInvariance.*'
  'Speculative.PromptLookupGreedyIsIdenticalAloneAndAtBatch16' 'Speculative.AutoIsIdentical'
  'Speculative.ChunkedPrefillAndPreemptionStayIdentical' 'Speculative.SeededSamplingIsIdenticalWithGoodAndBadDrafters'
  'Speculative.DraftModelEqualToTheTargetIsAlwaysKeptAndIdentical'
  'Speculative.DraftModelWithChunkedPrefillPreemptionAndSamplingStaysIdentical'
  'Speculative.PerfectDrafterIsAlwaysKeptUnderGreedy'
)
# TSan runs the scheduler and server suites, not the engine's: no engine test starts a thread and under
# TSan OpenMP has one, so that suite is single-threaded code, where TSan has nothing to find (ASan runs
# it); the engine code that the server's threads share (tokenizer, grammar compiler) runs under TSan in
# the server suite and the client tests. Not building it saves 6 CPU-minutes of the 2-core CI. Of the
# two suites it leaves out every case that runs the real model for seconds on one thread: nothing for
# TSan there either, and minutes of time. What it keeps are the cases with threads of their own (the
# engine loop's driver, the soak's stop without drain) and the quick unit cases.
TSAN_EXCLUDE=(
  'ForwardGolden.*' 'DraftModel.*' 'SpeculativeDistribution.*' 'BatchInvariance.*' 'Speculative.*'
)
# Client tests. ASan + UBSan: all of tests/server (10.5 min under ASan) less 5 min: the ones whose pass
# depends on the daemon's speed (a 400-token stream inside the 30 s drain grace period, loadgen's time
# limits: loadgen is the unsanitized tool's own test), the chat-template collection (it runs the
# unsanitized `pagoda chat-template` against jinja2, no daemon), the tool-calling tests (about 2 min
# here: their parsers are fuzzed under ASan + UBSan, their templates are the Jinja engine, which this
# build leaves uninstrumented, and their constrained decoding is the structured-output tests' xgrammar
# path), the 32-stream gRPC test (its HTTP twin runs) and
# the random faults soak (the cancels and deadlines it mixes run in test_grpc.py and
# test_concurrency_cancel.py). TSan: the HTTP ones (concurrent and cancelled streams, bad input, the
# SIGTERM drain). gRPC calls are left out under TSan: libgrpc is not instrumented, so the order it puts
# between a reactor's operations is invisible and each call shows dozens of false races (e.g. a
# GenerateReactor built in the handler and read in OnDone on another gRPC thread); ASan + UBSan runs them.
# Structured outputs: the 32-schema sweeps run only in the normal build (their grammar paths run in
# the other structured-output tests here too); under TSan the HTTP ones, whose grammars compile on the
# gateway's grammar threads and come back to the session's strand.
ASAN_PYTEST=(tests/server --ignore tests/server/test_loadgen.py --ignore tests/server/test_chat_templates.py
             --ignore tests/server/test_tools.py
             --deselect tests/server/test_grpc.py::test_sigterm_drains_running_stream
             --deselect tests/server/test_grpc.py::test_32_concurrent_streams_match_sequential
             --deselect tests/server/test_faults.py::test_random_disconnects_cancels_and_deadlines_leak_nothing
             --deselect tests/server/test_structured_outputs.py::test_every_schema_greedy_and_sampled_one_at_a_time
             --deselect tests/server/test_structured_outputs.py::test_every_schema_32_at_once_streaming_and_not)
TSAN_PYTEST=(tests/server/test_concurrency_cancel.py tests/server/test_bad_input.py tests/server/test_openai.py
             tests/server/test_sigterm.py tests/server/test_structured_outputs.py
             -k "not test_every_schema and not test_grpc_constraints")

TIMES=()
stage() {  # stage NAME CMD...: runs it and records its time
  local name="$1" start=$SECONDS rc=0
  shift
  log "== $name"
  "$@" || rc=$?
  TIMES+=("$(printf '%-34s %5d s%s' "$name" $((SECONDS - start)) "$([ "$rc" -eq 0 ] || echo "  (exit $rc)")")")
  return "$rc"
}

suites_of() {  # the GoogleTest suites a kind runs
  case "$1" in
    asan) echo engine scheduler server ;;
    tsan) echo scheduler server ;;
  esac
}

build_kind() {  # configure and build build-<kind>/
  local kind="$1" dir="build-$1" sanitize
  case "$kind" in
    asan) sanitize="address,undefined" ;;
    tsan) sanitize="thread" ;;
  esac
  # PRE_TEST: gtest's test discovery runs the binaries when ctest does, not after each link (this script
  # runs them itself; and at nice 19 behind busy cores a discovery could outlast its 60 s timeout).
  stage "$kind: configure" cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPAGODA_SANITIZE="$sanitize" -DPAGODA_CUDA=OFF -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST >/dev/null || return 1
  local t
  local -a targets=(pagodad)
  for t in $(suites_of "$kind"); do targets+=("pagoda_${t}_tests"); done
  stage "$kind: build" cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}"
}

run_kind() {
  local kind="$1" dir="build-$1"
  local -a filter=() pytests=()
  local logs="$ROOT/$dir/sanitizer-logs"

  # A background builder (scripts/test.sh) may still be building this kind: two builds in one folder
  # at once would trip over each other. The build below is then a no-op, or shows the builder's error.
  local builder="${PAGODA_SANITIZER_BUILDER:-}"
  if [ -n "$builder" ] && [ ! -f "$dir/.pagoda-built" ] && [ -d "/proc/$builder" ]; then
    stage "$kind: wait for the background build" \
      bash -c 'alive() { [ -r "/proc/$1/status" ] && ! grep -q "^State:[[:space:]]*Z" "/proc/$1/status" 2>/dev/null; }
               while [ ! -f "$2" ] && alive "$1"; do sleep 5; done' _ "$builder" "$dir/.pagoda-built"
  fi
  build_kind "$kind" || return 1

  rm -rf "$logs"
  mkdir -p "$logs"
  local -a env
  case "$kind" in
    asan)
      env=(ASAN_OPTIONS="$(flags_of "$SAN/asan.options"):log_path=$logs/asan"
           UBSAN_OPTIONS="$(flags_of "$SAN/ubsan.options"):log_path=$logs/ubsan"
           LSAN_OPTIONS="suppressions=$SAN/lsan.supp:print_suppressions=0")
      filter=("--gtest_filter=-$(IFS=:; echo "${ASAN_EXCLUDE[*]}")")
      pytests=("${ASAN_PYTEST[@]}")
      ;;
    tsan)
      # libgomp is not instrumented: TSan cannot see its barriers, and every OpenMP region would show
      # as races between the team's threads. One OpenMP thread runs each region on its caller alone.
      env=(TSAN_OPTIONS="$(flags_of "$SAN/tsan.options"):suppressions=$SAN/tsan.supp:log_path=$logs/tsan"
           OMP_NUM_THREADS=1)
      filter=("--gtest_filter=-$(IFS=:; echo "${TSAN_EXCLUDE[*]}")")
      pytests=("${TSAN_PYTEST[@]}")
      ;;
  esac
  log "$kind environment: ${env[*]}"

  local failed=0 t
  for t in $(suites_of "$kind"); do
    stage "$kind: pagoda_${t}_tests" env "${env[@]}" "$dir/tests/pagoda_${t}_tests" "${filter[@]}" || failed=1
  done

  # The client tests start the sanitized daemon; the `pagoda` tool they compare with is the normal
  # build's (not sanitized: it is the reference, not what is under test).
  stage "$kind: client tests (pytest)" env "${env[@]}" PAGODAD="$ROOT/$dir/server/pagodad" \
    PAGODA_CLI="$ROOT/build/cli/pagoda" PAGODA_BACKEND=cpu \
    "$VENV/bin/python" -m pytest "${pytests[@]}" -q -p no:cacheprovider --durations=12 || failed=1

  local reports
  reports="$(find "$logs" -type f -size +0 | sort)"
  if [ -n "$reports" ]; then
    log "$kind: sanitizer reports (a failure, whatever the tests said):"
    local f
    for f in $reports; do
      printf '\n----- %s\n' "$f" >&2
      cat "$f" >&2
    done
    failed=1
  fi
  return "$failed"
}

status=0
if [ "$BUILD_ONLY" -eq 1 ]; then
  for k in "${KINDS[@]}"; do
    rm -f "build-$k/.pagoda-built"
  done
  for k in "${KINDS[@]}"; do
    rc=0
    build_kind "$k" || rc=$?
    mkdir -p "build-$k"
    echo "$rc" > "build-$k/.pagoda-built"
    [ "$rc" -eq 0 ] || { status=1; log "$k: build FAILED"; }
  done
  log "times:"
  printf '  %s\n' "${TIMES[@]}" >&2
  exit "$status"
fi
for k in "${KINDS[@]}"; do
  run_kind "$k" || { status=1; log "$k: FAILED"; }
done
log "times:"
printf '  %s\n' "${TIMES[@]}" >&2
if [ "$status" -eq 0 ]; then log "sanitizers passed: ${KINDS[*]}"; else log "sanitizers FAILED"; fi
exit "$status"
