#!/usr/bin/env bash
# Set up, build, fetch the default model and run the daemon on it (HTTP on :8080, gRPC on :50051,
# loopback only). Extra arguments go to pagodad (see `build/server/pagodad --help`). Ctrl-C drains
# running requests and exits.
#   bash scripts/run.sh [--http-port N] [--grpc-port N] [--host ADDR] ...
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

bash scripts/setup.sh
bash scripts/build.sh
MODEL="$(bash scripts/fetch_model.sh | tail -n1)"

exec build/server/pagodad --model "$MODEL" "$@"
