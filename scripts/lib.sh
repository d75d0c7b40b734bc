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
