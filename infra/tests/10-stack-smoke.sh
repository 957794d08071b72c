#!/usr/bin/env bash
# End to end: the README's `infra/dev up` from this checkout, then the critical path walked
# through the gateway: every service healthy and ready; a fan signs up, logs in, refreshes,
# reads /api/me and joins a waiting room; then a whole high-demand sale (queue, admission,
# hold, 202, the worker's confirmation, the notifier's ticket mail in the SMTP sink). Uses the
# debug binaries the test run already built, so it adds seconds, not a release build. Leaves
# the stack running, as `up` does.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"
BUILD_PROFILE=dev infra/dev up
MAIL_DIR=${MAIL_DIR:-$ROOT/.run/mail} "$ROOT/target/debug/loadtest" smoke
