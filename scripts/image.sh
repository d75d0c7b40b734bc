#!/usr/bin/env bash
# Builds Pagoda's CPU container image (docker/Dockerfile) here, from a bare Debian, and smoke-tests it.
#
#   bash scripts/image.sh [--smoke] [--tag IMAGE] [--no-ccache]
#
# No registry is reachable here and no Docker engine runs, so the image is built with Debian's podman:
#  1. the base: the same bare Debian 12 root file system as the fresh-machine check (mmdebstrap
#     --variant=minbase, cached per day), imported as localhost/pagoda-base:bookworm;
#  2. the build: `podman build --isolation chroot --network host` with BASE set to it; the build stage
#     runs scripts/setup.sh and scripts/build.sh (tests off) from nothing, the compiler cache of this
#     machine mounted (--no-ccache: without it);
#  3. deploy/compose.yaml's other images: localhost/pagoda:loadgen (the Dockerfile's loadgen stage),
#     localhost/pagoda-nginx and localhost/pagoda-prometheus (docker/*.Dockerfile, Debian's packages);
#  4. --smoke: tests/deploy/test_image.py runs containers of the image (start, /health, the HEALTHCHECK,
#     one completion over HTTP and one over gRPC, SIGTERM, first-start model fetch), then
#     tests/deploy/test_compose.py the compose stack (nginx, Prometheus, failover, session routing).
# Podman's settings for this machine (runc, cgroupfs, no default ulimits) are in a containers.conf of
# ours under $PAGODA_CACHE/containers, pointed at by CONTAINERS_CONF. Needs root.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

TAG=localhost/pagoda:cpu SMOKE=0 CCACHE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1; shift ;;
    --tag) TAG="$2"; shift 2 ;;
    --no-ccache) CCACHE=0; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "building images here needs root (podman with chroot isolation)"

apt_install_missing podman runc mmdebstrap ccache curl

# crun (podman's default) fails on this machine's cgroups; runc with cgroupfs works. Default ulimits
# (nofile) cannot be raised here either.
CONF_DIR="$PAGODA_CACHE/containers"
mkdir -p "$CONF_DIR"
cat > "$CONF_DIR/containers.conf" <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$CONF_DIR/containers.conf"

BASE=localhost/pagoda-base:bookworm
TARBALL="$(debian_base_tarball bookworm)" || die "could not build the bare Debian tarball"
base_id="$(basename "$TARBALL" .tar)"
if [ "$(podman image inspect --format '{{index .Labels "pagoda.base"}}' "$BASE" 2>/dev/null || true)" != "$base_id" ]; then
  log "importing $TARBALL as $BASE"
  podman import --change "LABEL pagoda.base=$base_id" --change "CMD [\"/bin/bash\"]" "$TARBALL" "$BASE" >/dev/null
fi

common=(--format docker --isolation chroot --network host --build-arg "BASE=$BASE")
# The build stage's LANG is this machine's: ccache keys on it, and with another one every compile in the
# image missed the test build's cache (the whole build again: 934 s of the fresh check's image stage).
build_args=("${common[@]}" -f docker/Dockerfile --build-arg "LANG=${LANG:-C.UTF-8}")
# The CA bundle this machine trusts (SSL_CERT_FILE where set, as in the fresh-machine check's chroot):
# a proxy's CA, where there is one, which the build stage's pip and curl need too.
host_ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$host_ca" ] && build_args+=(-v "$host_ca:/run/pagoda-host-ca.crt:ro")
if [ "$CCACHE" -eq 1 ]; then
  cache_dir="$(ccache --get-config cache_dir)"
  mkdir -p "$cache_dir"
  build_args+=(-v "$cache_dir:/root/.cache/ccache")
fi
log "building $TAG (docker/Dockerfile, base $BASE)"
start=$SECONDS
podman build "${build_args[@]}" -t "$TAG" .
log "built $TAG in $((SECONDS - start)) s: $(podman image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1 / 1e6}')"

# deploy/compose.yaml's other images: the load generator (a stage of the same Dockerfile), nginx and
# Prometheus from Debian's packages.
podman build "${build_args[@]}" --target loadgen -t localhost/pagoda:loadgen .
for tool in nginx prometheus; do
  podman build "${common[@]}" -f "docker/$tool.Dockerfile" -t "localhost/pagoda-$tool:bookworm" docker
done

if [ "$SMOKE" -eq 1 ]; then
  MODEL="$(bash scripts/fetch_model.sh | tail -n1)"
  log "smoke test of $TAG (tests/deploy/test_image.py)"
  PAGODA_IMAGE="$TAG" PAGODA_MODEL="$MODEL" "$VENV/bin/python" -m pytest tests/deploy/test_image.py \
    tests/deploy/test_compose.py -v -p no:cacheprovider
fi
