#!/usr/bin/env bash
# Prints the Debian packages (one per line, sorted) that hold the shared libraries the given binaries
# load, so the runtime image installs exactly those: run in the build stage, where they are installed.
#   bash docker/runtime_packages.sh BINARY...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

owner() {  # the package that owns a library file; merged /usr means it may be listed under either path
  local f="$1" alt
  dpkg-query -S "$f" 2>/dev/null && return 0
  alt="$(realpath "$f")"; dpkg-query -S "$alt" 2>/dev/null && return 0
  case "$f" in
    /usr/*) dpkg-query -S "${f#/usr}" 2>/dev/null && return 0 ;;
    *) dpkg-query -S "/usr$f" 2>/dev/null && return 0 ;;
  esac
  echo "runtime_packages.sh: no package owns $f" >&2
  return 1
}

# ldd's lines: "\tlibfoo.so.1 => /path (0x…)", "\t/lib64/ld-linux….so.2 (0x…)", and with several
# binaries a "BINARY:" heading each.
libs="$(ldd "$@" | awk '$1 ~ /:$/ { next } $2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' | sort -u)"
missing="$(ldd "$@" | grep 'not found' || true)"
[ -z "$missing" ] || { echo "runtime_packages.sh: unresolved libraries:" >&2; echo "$missing" >&2; exit 1; }
packages="" unowned=0
for lib in $libs; do
  if pkg="$(owner "$lib")"; then packages+="${pkg%%[,:]*}"$'\n'; else unowned=1; fi
done
[ "$unowned" -eq 0 ] || exit 1
printf '%s' "$packages" | sort -u
