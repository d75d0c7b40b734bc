#!/bin/sh
# The image's entry point: makes sure the model is there, then runs pagodad with the container's
# arguments (every flag is also a PAGODA_* environment variable).
# - PAGODA_MODEL present (baked, or on the volume from an earlier start): it is used as is;
# - PAGODA_MODEL is the default model's path and absent: fetched into the volume first (the same
#   pinned file and sha256 as scripts/fetch_model.sh, which this runs);
# - any other absent path: an error naming it.
# A --model (or --help) among the arguments is pagodad's business: no fetch for it.
set -eu
for arg in "$@"; do
  case "$arg" in
    --model | --model=* | -h | --help) exec /usr/local/bin/pagodad "$@" ;;
  esac
done
model="${PAGODA_MODEL:-}"
default="$PAGODA_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$model" ]; then
  if [ "$model" != "$default" ]; then
    echo "pagoda-entrypoint: model file '$model' not found (mount it there, or leave PAGODA_MODEL at its default, $default, to fetch the default model)" >&2
    exit 1
  fi
  echo "pagoda-entrypoint: first start: fetching the default model into $PAGODA_CACHE/models" >&2
  bash /usr/local/lib/pagoda/fetch_model.sh >/dev/null
fi
exec /usr/local/bin/pagodad "$@"
