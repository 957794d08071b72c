#!/usr/bin/env bash
# The quick load test: a small flash sale (3,000 fans, 600 seats) through the gateway with
# goose, then the invariant checker over Postgres, Redis, RabbitMQ and the SMTP sink; fails on
# any violation. Uses the debug binaries the test run built (like 10-stack-smoke.sh), takes
# well under two minutes on 2 cores, and leaves its reports in .run/loadtest/ (or
# $RUN_DIR/loadtest).
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"
start=$SECONDS
BUILD_PROFILE=dev infra/dev up
BUILD_PROFILE=dev infra/dev loadtest --no-up --quick
echo "quick load test: $((SECONDS - start)) s"
