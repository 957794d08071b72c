#!/usr/bin/env bash
# The browser UI in real Chromium: a fan's whole journey through the waiting room to a
# confirmed ticket and its PDF, a seat taken in one browser turning sold in another, kind
# errors (seat just taken, hold expired, sold out), a queued booking's confirmation learnt by
# push (its page's reads counted, polling only without the socket), and screenshots of each fan
# page at 375×812 and 1280×800 in .run/screenshots/. Runs after 10-stack-smoke.sh, which leaves
# the stack up at :8080 (brought up again here when it is not). A second stack takes RUN_DIR,
# GATEWAY_PORT, TICKETING_API_ADDR and DATABASE_URL (booking.test.mjs locks an event's row).
#
# Installs what it needs when missing: Chromium with apt-get, playwright-core (pinned in
# infra/tests/browser/package-lock.json) with `npm ci`.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"
export ROOT

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ ! -x /usr/bin/chromium ]]; then
    echo "==> installing chromium"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null ||
        { as_root apt-get update >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
if ! command -v node >/dev/null 2>&1; then
    echo "==> installing nodejs"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm >/dev/null
fi

BROWSER_DIR="$ROOT/infra/tests/browser"
# npm ci when node_modules is missing or older than the lock file.
if [[ ! -d $BROWSER_DIR/node_modules/playwright-core || $BROWSER_DIR/package-lock.json -nt $BROWSER_DIR/node_modules/.package-lock.json ]]; then
    echo "==> npm ci (infra/tests/browser)"
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:${GATEWAY_PORT:-8080}/api/healthz; then
    BUILD_PROFILE=${BUILD_PROFILE:-dev} infra/dev up
fi

# The fan pages (run.mjs), then the organizer and admin pages (*.test.mjs), one file at a time.
exec node --test --test-concurrency=1 --test-reporter=spec "$BROWSER_DIR/run.mjs" "$BROWSER_DIR"/*.test.mjs
