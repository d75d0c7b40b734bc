#!/usr/bin/env bash
# Set up, build, fetch the model and run the whole test suite (ctest). Model tests are required to run
# (PAGODA_REQUIRE_MODEL=1): a missing model is a failure, not a skip. Extra arguments go to ctest.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

bash scripts/setup.sh
bash scripts/build.sh
MODEL="$(bash scripts/fetch_model.sh | tail -n1)"
[ -f "$MODEL" ] || die "model not found after fetch: '$MODEL'"

export PAGODA_MODEL="$MODEL" PAGODA_REQUIRE_MODEL=1
# ctest runs two test processes at once on a 2-core machine, each with an OpenMP team: spinning
# idle threads would steal the other process's core, so they sleep instead (results are unaffected:
# every kernel gives the same bits for any thread count).
export OMP_WAIT_POLICY=passive
export PATH="$VENV/bin:$PATH"   # Python-based tests use the project's venv
log "PAGODA_MODEL=$PAGODA_MODEL"
# Each stage's wall time, printed at the end (CI has 90 min on 2 cores: this says where they go).
TIMES=("set-up and build: $SECONDS s")
timed() {  # timed NAME CMD...
  local name="$1" start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  TIMES+=("$name: $((SECONDS - start)) s$([ "$rc" -eq 0 ] || echo " (exit $rc)")")
  return "$rc"
}
SANITIZERS="${PAGODA_SANITIZERS:-all}"
BUILDER=""
on_exit() {
  if [ -n "$BUILDER" ]; then
    kill -CONT -- "-$BUILDER" 2>/dev/null || true  # it may be paused (the image stage)
    kill -- "-$BUILDER" 2>/dev/null || true
  fi
  log "stage times: ${TIMES[*]}"
  if [ -f build/sanitizer-builds.log ]; then
    log "the background sanitizer builds' log, its end:"
    tail -n 12 build/sanitizer-builds.log >&2
  fi
}
trap on_exit EXIT

# --- The sanitizer builds, in the background ---------------------------------------------------------
# build-asan/ and build-tsan/ (scripts/sanitize.sh --build-only) start now at the lowest CPU priority,
# and take the CPU that the suites, the image stage and the fuzzers leave idle; the sanitizer stage at
# the end waits for them (their log: build/sanitizer-builds.log). A process group of their own (job
# control, set -m), so a failure here stops them all; not a session of their own (setsid): the kernel's
# autogroups give each session an equal share whatever its nice value, and the builds would take a core.
if [ "$SANITIZERS" != none ]; then
  rm -f build-asan/.pagoda-built build-tsan/.pagoda-built build/sanitizer-builds.log
  set -m
  nice -n 19 bash scripts/sanitize.sh --build-only "$SANITIZERS" </dev/null >build/sanitizer-builds.log 2>&1 &
  BUILDER=$!
  set +m
  log "sanitizer builds started in the background (PID $BUILDER, nice 19)"
fi

timed ctest ctest --test-dir build --output-on-failure --no-tests=error -j2 "$@"

# --- The container image (scripts/image.sh, tests/deploy/test_image.py) -----------------------------
# docker/Dockerfile built from a bare Debian with podman, its build stage running setup.sh and
# build.sh, then its smoke test (HTTP, gRPC, health check, SIGTERM, first-start model fetch): 3-10 min
# on 2 cores. Needs root (sudo otherwise, with this run's cache and venv). PAGODA_IMAGE_TEST=0 skips it.
# The background builder pauses meanwhile. The containers' pagodad runs its OpenMP team with threads that
# spin at each barrier, from a cgroup of its own where the builder's nice value does not reach, so a
# compile on its cores can cost it a time slice per barrier: with the builder running, the drain test's
# 200-token stream was cut after about 60 tokens, at the end of the 30 s grace period.
if [ "${PAGODA_IMAGE_TEST:-1}" != 0 ]; then
  [ -z "$BUILDER" ] || kill -STOP -- "-$BUILDER"
  image_rc=0
  timed image as_root env PAGODA_CACHE="$PAGODA_CACHE" PAGODA_VENV="$VENV" bash scripts/image.sh --smoke || image_rc=$?
  [ -z "$BUILDER" ] || kill -CONT -- "-$BUILDER"
  [ "$image_rc" -eq 0 ] || exit "$image_rc"
fi

# --- libFuzzer targets (tests/fuzz/, scripts/fuzz.sh) -----------------------------------------------
# A bounded run of each target (and its committed regression inputs), clang + ASan + UBSan, after the
# suites: PAGODA_FUZZ_SECONDS per target (default 10; 0 skips the stage, e.g. for a quick local run).
if [ "${PAGODA_FUZZ_SECONDS:-10}" != 0 ]; then
  timed fuzz bash scripts/fuzz.sh --seconds "${PAGODA_FUZZ_SECONDS:-10}"
fi

# --- Sanitizers (scripts/sanitize.sh, tests/sanitizers/) --------------------------------------------
# The engine, scheduler and server suites and the daemon's client tests under ASan + UBSan (build-asan/,
# about 16 min of tests on 2 cores), then under TSan (build-tsan/, the cases with threads of their own
# and the HTTP client tests, about 4 min), each once the background builder above is done with its
# build; any sanitizer report fails the run. PAGODA_SANITIZERS: all (default), asan, tsan, or none.
case "$SANITIZERS" in
  none) ;;
  *) timed sanitizers env PAGODA_SANITIZER_BUILDER="$BUILDER" bash scripts/sanitize.sh "$SANITIZERS"
     # The builder is done by now (the stage waited for each of its builds): collect it, so the exit
     # trap never signals a process group whose number was reused.
     builder_rc=0
     wait "$BUILDER" || builder_rc=$?
     BUILDER=""
     [ "$builder_rc" -eq 0 ] || die "the background sanitizer builds exited $builder_rc (build/sanitizer-builds.log)"
     ;;
esac
