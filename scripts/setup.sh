#!/usr/bin/env bash
# Idempotent machine + project set-up for Pagoda (Debian 12).
#  1. apt-get installs the build dependencies that are missing (sudo only when not root);
#  2. unpacks Debian's kubectl (kubernetes-client) under $PAGODA_CACHE/tools for the deployment tests
#     (not installed: a machine may have a kubectl of its own);
#  3. creates the project's virtual environment .venv and installs scripts/requirements.txt into it,
#     only when the requirements (or the interpreter) changed since the last install.
# The system interpreter's site-packages are never touched.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-venv
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libdnnl-dev libspdlog-dev libfmt-dev libboost-dev
  ocl-icd-opencl-dev opencl-headers  # oneDNN's CMake config finds OpenCL; libdnnl-dev only recommends them
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libpcre2-dev
  libssl-dev openssl  # TLS on both ports (--tls-cert); the TLS tests make their certificate with openssl
  fortunes gnuplot-nox  # load-test prompt text (English quotations) and benchmark plots
  clang-14 libclang-rt-14-dev libfuzzer-14-dev  # scripts/fuzz.sh: libFuzzer targets (tests/fuzz), ASan + UBSan
)

apt_install_missing "${APT_PACKAGES[@]}"

# --- kubectl for the Kubernetes manifests' tests (tests/deploy) -------------------------------------
# Debian's kubernetes-client, unpacked and not installed: its /usr/bin/kubectl would conflict with a
# kubectl the machine may already have, and the tests render with this one whatever else is there.
KUBECTL_DIR="$PAGODA_CACHE/tools/kubernetes-client"
if [ ! -x "$KUBECTL_DIR/usr/bin/kubectl" ]; then
  log "unpacking Debian's kubernetes-client into $KUBECTL_DIR"
  tmp="$(mktemp -d)"
  # As whoever runs this, into a folder of theirs (not apt's _apt sandbox user, who cannot write there).
  download() { ( cd "$tmp" && apt-get download -q -o APT::Sandbox::User="$(id -un)" kubernetes-client ); }
  download || { as_root apt-get update -q && download; } || { rm -rf "$tmp"; die "could not download kubernetes-client"; }
  mkdir -p "$(dirname "$KUBECTL_DIR")"
  rm -rf "$KUBECTL_DIR.part"
  dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$KUBECTL_DIR.part"
  rm -rf "$tmp" "$KUBECTL_DIR"
  mv "$KUBECTL_DIR.part" "$KUBECTL_DIR"
fi

# --- Python virtual environment -------------------------------------------------------------------
REQ="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.pagoda-requirements.sha256"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  log "$VENV is broken (its interpreter does not start); recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi

want="$( { sha256sum "$REQ" | cut -d' ' -f1; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  log "installing Python requirements into $VENV"
  "$VENV/bin/python" -m pip install -q -r "$REQ"
  echo "$want" > "$STAMP"
else
  log "Python requirements: up to date"
fi
log "setup done"
