#!/usr/bin/env bash
# APP_ENV=production: `infra/dev up` refuses the dev stack's own settings before it installs,
# generates or starts anything, naming each one and what to set instead; each check is exact
# (a production environment that fixes all but one is refused for that one alone). Fast: no
# stack is started. Runs in a throwaway RUN_DIR with a clean environment and ports of its own.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PORTS=(GATEWAY_PORT=19580 WAITING_ROOM_ADDR=127.0.0.1:19581 TICKETING_API_ADDR=127.0.0.1:19582
    NOTIFIER_ADDR=127.0.0.1:19583 WORKER_ADDR=127.0.0.1:19584 SINK_PORT=19525)

# infra/dev up with nothing of this shell's environment but PATH, HOME and "$@".
dev_up() {
    env -i PATH="$PATH" HOME="${HOME:-/root}" CI=true RUN_DIR="$TMP/run" "${PORTS[@]}" "$@" \
        "$ROOT/infra/dev" up --no-build >"$TMP/out" 2>"$TMP/err"
}

started_nothing() {
    local what
    [[ ! -e $TMP/run/env ]] || fail "it wrote $TMP/run/env"
    for what in pids logs keys nginx mail; do
        [[ ! -e $TMP/run/$what ]] || fail "it created $TMP/run/$what ($(ls -A "$TMP/run/$what" | head -3))"
    done
    for port in 19580 19581 19582 19583 19584 19525; do
        if timeout 1 bash -c ": >/dev/tcp/127.0.0.1/$port" 2>/dev/null; then fail "something listens on :$port"; fi
    done
}

echo "==> APP_ENV=production with the dev defaults: refused, every dev setting named"
if dev_up APP_ENV=production; then fail "up succeeded: $(cat "$TMP/out")"; fi
grep -q "APP_ENV=production, but the environment still has the dev stack's settings; nothing was started" "$TMP/err" ||
    fail "no refusal message: $(cat "$TMP/err")"
for setting in KEYS_DIR= ADMIN_PASSWORD AMQP_URL COOKIE_SECURE=false DATABASE_URL "SMTP_HOST=127.0.0.1 SMTP_PORT=19525"; do
    grep -q -- "  - $setting" "$TMP/err" || fail "$setting is not named: $(cat "$TMP/err")"
done
grep -q "set COOKIE_SECURE=true" "$TMP/err" || fail "no advice for COOKIE_SECURE"
if grep -q "admin-pass-123" "$TMP/err"; then fail "the message prints the admin password"; fi
started_nothing

# Everything a production environment sets, with the keys of its own.
mkdir -p "$TMP/keys"
PROD=(APP_ENV=production KEYS_DIR="$TMP/keys" ADMIN_PASSWORD=a-long-random-password-of-ours
    AMQP_URL=amqp://tickets:s3cret@127.0.0.1:5672/%2f COOKIE_SECURE=true
    DATABASE_URL=postgres://tickets:s3cret@127.0.0.1:5432/ticketing
    SMTP_HOST=smtp.example.com SMTP_PORT=587 SMTP_TLS=starttls)

echo "==> all but one fixed: refused for that one alone"
for broken in COOKIE_SECURE=false ADMIN_PASSWORD=admin-pass-123 AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
    AMQP_URL=amqp://127.0.0.1:5672/%2f DATABASE_URL=postgres://postgres@127.0.0.1:5432/ticketing \
    KEYS_DIR=/srv/ticketing/.run/keys TICKETING_API_ADDR=0.0.0.0:19582; do
    if dev_up "${PROD[@]}" TRUST_FORWARDED_FOR=true "$broken"; then fail "$broken: up succeeded"; fi
    count=$(grep -c '^  - ' "$TMP/err" || true)
    [[ $count == 1 ]] || fail "$broken: $count problems named, expected 1: $(cat "$TMP/err")"
    grep -q "^  - ${broken%%=*}" "$TMP/err" || grep -q "TRUST_FORWARDED_FOR=true while ${broken%%=*}" "$TMP/err" ||
        fail "$broken: not the one named: $(cat "$TMP/err")"
    started_nothing
done

echo "==> the checks alone (infra/dev sourced): a clean production environment has no problem"
problems=$(env -i PATH="$PATH" HOME="${HOME:-/root}" RUN_DIR="$TMP/run" "${PORTS[@]}" "${PROD[@]}" TRUST_FORWARDED_FOR=true \
    bash -c 'source "$1"; load_env; production_problems' _ "$ROOT/infra/dev")
[[ -z $problems ]] || fail "a clean production environment has problems: $problems"
# PGPASSWORD instead of a password in the URL, and a bogus APP_ENV.
problems=$(env -i PATH="$PATH" HOME="${HOME:-/root}" RUN_DIR="$TMP/run" "${PORTS[@]}" "${PROD[@]}" \
    DATABASE_URL=postgres://tickets@db:5432/ticketing PGPASSWORD=s3cret \
    bash -c 'source "$1"; load_env; production_problems' _ "$ROOT/infra/dev")
[[ -z $problems ]] || fail "PGPASSWORD is a password: $problems"
if dev_up APP_ENV=prod; then fail "APP_ENV=prod accepted"; fi
grep -q "APP_ENV is development or production" "$TMP/err" || fail "bogus APP_ENV: $(cat "$TMP/err")"
started_nothing
echo "ok: APP_ENV=production refuses the dev settings and starts nothing"
