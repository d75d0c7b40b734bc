#!/usr/bin/env bash
# Fresh-machine check: the README's two set-up commands on a bare Debian 12, from nothing.
#
#   bash scripts/fresh_check.sh [--rev REV] [--keep] [--no-run]
#
# 1. builds a bare Debian bookworm root file system (mmdebstrap --variant=minbase, from this machine's
#    apt sources; the tarball is cached per day under $PAGODA_CACHE/fresh/),
# 2. puts a clean copy of the committed tree (git archive REV, default HEAD) in it,
# 3. runs the test command there in a chroot: `bash scripts/test.sh` (set-up, build, every test),
# 4. runs the run command there: `bash scripts/run.sh` until /health answers and one completion
#    succeeds, then SIGTERM, which must drain and exit 0.
# Nothing of this machine's packages, virtual environment, build or model cache reaches the chroot:
# only its network settings (resolv.conf, hosts, apt sources, the CA bundle it trusts). A step that fails
# ends the check with "FAILED at step '...'" and a non-zero exit. Needs root (chroot, mounts).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

REV=HEAD KEEP=0 RUN=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rev) REV="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;          # leave the chroot in place (its path is printed) for a look
    --no-run) RUN=0; shift ;;         # the test command only
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "the fresh check needs root (chroot and bind mounts)"

SUITE=bookworm
STEP=""
step() { STEP="$1"; log "== step: $STEP"; }
on_exit() {
  local rc=$?
  set +e  # the clean-up is best effort: the check's own exit status is what counts
  if [ -n "${SERVER_PID:-}" ]; then kill -KILL -- "-$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "${FRESH:-}" ]; then teardown; fi
  if [ "$rc" -ne 0 ]; then
    log "fresh check FAILED at step '$STEP' (exit $rc)"
  fi
  exit "$rc"
}
trap on_exit EXIT

# --- host tools -----------------------------------------------------------------------------------
step "host tools (mmdebstrap, curl, git)"
need=()
for p in mmdebstrap curl git; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ "${#need[@]}" -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
git rev-parse --verify -q "$REV^{commit}" >/dev/null || die "'$REV' is not a commit of $ROOT"
[ -z "$(git status --porcelain)" ] || log "note: uncommitted changes are not part of the check (git archive $REV)"

# --- a bare Debian root file system ---------------------------------------------------------------
step "bare Debian $SUITE root file system (mmdebstrap --variant=minbase)"
TARBALL="$(debian_base_tarball "$SUITE")" || die "could not build the bare Debian $SUITE tarball"

FRESH="$(mktemp -d "${TMPDIR:-/tmp}/pagoda-fresh.XXXXXX")"
MOUNTS=()
teardown() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -R "${MOUNTS[$i]}" 2>/dev/null || umount -lR "${MOUNTS[$i]}" 2>/dev/null || true
  done
  MOUNTS=()
  # What the tests mounted in there themselves (podman's storage keeps its overlay folder bind-mounted):
  # deepest first.
  # (grep finds nothing when all is unmounted: `|| true`, or pipefail ends the exit trap with 1.)
  findmnt -rn -o TARGET | { grep "^$FRESH/" || true; } | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if [ "$KEEP" -eq 1 ]; then
    log "kept: $FRESH (chroot $FRESH/root)"
  elif findmnt -rn -o TARGET | grep "^$FRESH/" >/dev/null; then  # (not -q: findmnt must not die of SIGPIPE)
    log "not removing $FRESH: something is still mounted under it"
  else
    rm -rf "$FRESH"
  fi
  FRESH=""
}
R="$FRESH/root"
mkdir -p "$R"
tar -xf "$TARBALL" -C "$R"
# The root a mount point of its own: podman (the image stage of the test command) remounts / in its
# mount namespaces, which fails where / is a plain folder.
mount --bind "$R" "$R"
mount --make-rprivate "$R"  # nothing mounted in there propagates back to this machine
MOUNTS+=("$R")

# --- the committed tree and this machine's network settings -------------------------------------
step "clean copy of the committed tree (git archive $REV)"
SRC=/src/pagoda
mkdir -p "$R$SRC"
git archive --format=tar "$REV" | tar -x -C "$R$SRC"

# Name resolution as on this machine: a minbase root file system has no /etc/hosts (an installer or a
# container runtime writes it), and without one 'localhost' does not resolve.
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
cp -L /etc/hosts "$R/etc/hosts"
# The CA bundle this machine trusts (a proxy's CA, where there is one): kept apart from the chroot's
# own /etc/ssl so installing ca-certificates there does not replace it.
HOST_CA=/etc/pagoda-fresh/host-ca-certificates.crt
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$R$(dirname "$HOST_CA")"
  cp -L /etc/ssl/certs/ca-certificates.crt "$R$HOST_CA"
fi

for m in proc sys dev; do
  mount --rbind "/$m" "$R/$m"
  mount --make-rslave "$R/$m"
  MOUNTS+=("$R/$m")
done

# Runs a command in the chroot with a clean environment (nothing of this shell's leaks in).
CHROOT_ENV=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
            LANG=C.UTF-8 TERM=dumb CI="${CI:-}" PIP_DEFAULT_TIMEOUT=180)
[ -f "$R$HOST_CA" ] && CHROOT_ENV+=(PIP_CERT="$HOST_CA" SSL_CERT_FILE="$HOST_CA" REQUESTS_CA_BUNDLE="$HOST_CA")
in_chroot() { chroot "$R" /usr/bin/env -i "${CHROOT_ENV[@]}" "$@"; }

# --- the README's test command --------------------------------------------------------------------
step "test command: bash scripts/test.sh"
start=$SECONDS
in_chroot bash -c "cd $SRC && bash scripts/test.sh"
log "test command passed in $((SECONDS - start)) s"

# --- the README's run command ---------------------------------------------------------------------
if [ "$RUN" -eq 1 ]; then
  step "run command: bash scripts/run.sh until /health answers and one completion succeeds"
  free_port() { in_chroot python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  HTTP_PORT="$(free_port)" GRPC_PORT="$(free_port)"
  # Its own session, so a failure can stop the whole tree (set-up steps included); run.sh ends in
  # `exec pagodad`, so this PID is the daemon's once it serves.
  setsid chroot "$R" /usr/bin/env -i "${CHROOT_ENV[@]}" \
    bash -c "cd $SRC && exec bash scripts/run.sh --http-port $HTTP_PORT --grpc-port $GRPC_PORT" &
  SERVER_PID=$!
  deadline=$((SECONDS + 600))
  until curl -fsS "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "pagodad exited before /health answered"
    [ "$SECONDS" -lt "$deadline" ] || die "/health did not answer within 600 s"
    sleep 1
  done
  log "/health answers on port $HTTP_PORT"
  reply="$(curl -fsS --max-time 120 "http://127.0.0.1:$HTTP_PORT/v1/completions" \
    -H 'content-type: application/json' -d '{"prompt": "The capital of France is", "max_tokens": 8}')" \
    || die "the completion request failed"
  log "completion: $reply"
  printf '%s' "$reply" | in_chroot python3 -c '
import json, sys
r = json.load(sys.stdin)
c = r["choices"][0]
assert c["text"] and c["finish_reason"] in ("length", "stop"), r
assert r["usage"]["completion_tokens"] >= 1, r' || die "the completion reply is not a non-empty completion"
  kill -TERM "$SERVER_PID"
  rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  [ "$rc" -eq 0 ] || die "pagodad exited $rc after SIGTERM (want 0: drain and exit)"
  log "run command passed: /health, one completion, SIGTERM drained with exit 0"
fi

STEP="done"
log "fresh check passed ($SUITE minbase, $(git rev-parse --short "$REV"))"
