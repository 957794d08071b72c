#!/usr/bin/env bash
# Demo data for `infra/dev up`: an approved organizer, a fan, a venue and an event on sale now,
# made through the gateway like any client. Idempotent. `infra/dev up` runs it with the
# loadtest binary of the build profile it used.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
exec "${LOADTEST_BIN:-$ROOT/target/release/loadtest}" \
    --base-url "http://127.0.0.1:${GATEWAY_PORT:-8080}" demo
