#!/usr/bin/env bash
# Set up, build, fetch the model and generate one chat answer with the pagoda CLI.
#   PROMPT="..." bash scripts/run.sh [extra pagoda generate args]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

bash scripts/setup.sh
bash scripts/build.sh
MODEL="$(bash scripts/fetch_model.sh | tail -n1)"

exec build/cli/pagoda generate --model "$MODEL" --chat \
  --prompt "${PROMPT:-What is the capital of France?}" --max-tokens 64 "$@"
