#!/usr/bin/env bash
# Build the peer, llama.cpp (shared libraries, llama-bench, llama-batched-bench, llama-server; CPU), from the
# source vendored in the PyPI sdist of llama-cpp-python. Used to regenerate golden data (tools/golden) and for
# peer benchmarks (bench/peer_llamacpp.sh, bench/*_side_by_side.*); CI does not run it (~20 minutes on 2 cores).
# Prints the bin folder as the last line of stdout; logs go to stderr. Skips everything already done.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="0.3.36"
PKG="llama-cpp-python==$VERSION"
SRC="$PAGODA_CACHE/llama_cpp_python-$VERSION"
LLAMA="$SRC/vendor/llama.cpp"
BIN="$LLAMA/build/bin"

built() { [ -f "$BIN/libllama.so" ] && [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-server" ] && [ -x "$BIN/llama-batched-bench" ]; }

if built; then
  log "llama.cpp already built: $BIN"
  echo "$BIN"
  exit 0
fi

# The configure step (cmake/llama_jinja.cmake) already downloads this sdist, pinned by sha256: use it.
CACHED_SDIST="$PAGODA_CACHE/downloads/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$LLAMA/CMakeLists.txt" ] && [ -f "$CACHED_SDIST" ]; then
  log "extracting $CACHED_SDIST into $PAGODA_CACHE"
  rm -rf "$SRC"
  tar -xzf "$CACHED_SDIST" -C "$PAGODA_CACHE" --no-same-owner
fi
if [ ! -f "$LLAMA/CMakeLists.txt" ]; then
  PIP="$VENV/bin/pip"
  [ -x "$PIP" ] || die "$PIP not found: run scripts/setup.sh first"
  mkdir -p "$PAGODA_CACHE"
  tmp="$(mktemp -d "$PAGODA_CACHE/.llamacpp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "downloading $PKG (sdist) from PyPI"
  "$PIP" download --disable-pip-version-check --no-deps --no-binary :all: --progress-bar on \
    "$PKG" -d "$tmp" >&2
  sdist="$(find "$tmp" -maxdepth 1 -name 'llama_cpp_python-*.tar.gz' | head -n1)"
  [ -n "$sdist" ] || die "no sdist downloaded for $PKG"
  log "extracting $(basename "$sdist") into $PAGODA_CACHE"
  rm -rf "$SRC"
  tar -xzf "$sdist" -C "$PAGODA_CACHE" --no-same-owner
  [ -f "$LLAMA/CMakeLists.txt" ] || die "vendor/llama.cpp missing in $(basename "$sdist")"
fi

log "configuring llama.cpp"
cmake -S "$LLAMA" -B "$LLAMA/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON >&2
log "building llama llama-bench llama-batched-bench llama-server (-j$(nproc))"
cmake --build "$LLAMA/build" -j"$(nproc)" --target llama llama-bench llama-batched-bench llama-server >&2
built || die "build finished but $BIN lacks libllama.so, llama-bench, llama-batched-bench or llama-server"
log "llama.cpp ready: $BIN"
echo "$BIN"
