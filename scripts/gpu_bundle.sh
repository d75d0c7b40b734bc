#!/usr/bin/env bash
# Builds the CUDA suites (Release, sm_90) on a build machine and packs a self-contained folder for a
# GPU machine that has the NVIDIA driver and CUDA but none of our Debian libraries and no network:
#   gpu-bundle/bin/        pagoda_cuda_tests, pagoda_scheduler_tests, pagodad, pagoda (stripped)
#   gpu-bundle/lib/        the shared libraries they need from this machine (ldd-collected), except
#                          the C runtime and cuBLASLt, which the GPU machine's CUDA provides; the
#                          largest (oneDNN, 40 MB) travels xz-compressed and gpu_check.sh unpacks it
#   gpu-bundle/gpu_check.sh
# Usage: bash scripts/gpu_bundle.sh [bundle-dir]   (default: gpu-bundle, git-ignored; < 60 MiB)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${1:-$root/gpu-bundle}
build=$root/build-gpu

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGODA_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DPAGODA_BUILD_TESTS=ON >/dev/null
ninja -C "$build" pagoda_cuda_tests pagoda_scheduler_tests pagodad pagoda

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
bins=("$build/tests/pagoda_cuda_tests" "$build/tests/pagoda_scheduler_tests" "$build/server/pagodad" "$build/cli/pagoda")
cp "${bins[@]}" "$bundle/bin/"
strip "$bundle"/bin/*
# Everything ldd resolves, but the C runtime (the GPU machine's is newer) and cuBLASLt (540 MB;
# the GPU machine's CUDA 13 has it).
for b in "${bins[@]}"; do ldd "$b"; done | awk '/=>/ {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libdl.so.*|librt.so.*|libpthread.so.*|libgcc_s.so.*|ld-linux*|libcublas*) ;;
    libstdc++.so.*) mkdir -p "$bundle/lib/fallback"; cp -L "$lib" "$bundle/lib/fallback/" ;;
    *) cp -L "$lib" "$bundle/lib/" ;;
  esac
done
xz -T0 -6 "$bundle/lib/libdnnl.so.2"
cp "$root/scripts/gpu_check.sh" "$bundle/"
size=$(du -sm "$bundle" | cut -f1)
echo "gpu bundle: $bundle ($size MiB)"
if [ "$size" -ge 60 ]; then echo "gpu bundle is over 60 MiB" >&2; exit 1; fi
