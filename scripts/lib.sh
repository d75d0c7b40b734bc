# Shared helpers for scripts/*.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAGODA_CACHE="${PAGODA_CACHE:-$HOME/.cache/pagoda}"
VENV="${PAGODA_VENV:-$ROOT/.venv}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (no sudo found)"
  fi
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# apt-get installs those of the given Debian packages that are not installed yet (none: no apt call).
apt_install_missing() {
  local p missing=()
  for p in "$@"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed$' || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt packages: all $# present"
    return 0
  fi
  log "installing ${#missing[@]} apt package(s): ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# A bare Debian root file system as a tarball (mmdebstrap --variant=minbase, from this machine's apt
# sources: its mirror, and where it has one, its proxy), cached per day under $PAGODA_CACHE/fresh/; prints
# its path. The fresh-machine check unpacks it into a chroot; scripts/image.sh imports it as the images'
# base. Needs root and mmdebstrap.
debian_base_tarball() {
  local suite="$1" dir="$PAGODA_CACHE/fresh" tarball sources=() f
  tarball="$dir/debian-$suite-minbase-$(date -u +%F).tar"
  mkdir -p "$dir" || return 1
  if [ -f "$tarball" ]; then
    log "cached: $tarball"
  else
    rm -f "$dir"/debian-"$suite"-minbase-*.tar   # yesterday's
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
      [ -s "$f" ] && sources+=("$f")
    done
    rm -f "$tarball.part"
    # Called as $(...), where set -e does not reach: every failure returns by hand.
    mmdebstrap --variant=minbase --mode=root --format=tar "$suite" "$tarball.part" "${sources[@]}" >&2 || return 1
    mv -f "$tarball.part" "$tarball" || return 1
  fi
  echo "$tarball"
}
