#!/usr/bin/env bash
# Configure and build Pagoda into build/ (RelWithDebInfo, Ninja; ccache is picked up by CMakeLists.txt).
# Extra arguments are passed to the configure step (e.g. -DPAGODA_CUDA=ON).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# ccache keys on paths relative to the checkout, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build build -j"$(nproc)"
