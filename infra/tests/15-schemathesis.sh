#!/usr/bin/env bash
# The hostile-input sweep (issue 13): schemathesis over every operation of the gateway's
# GET /api/openapi.json (the ticketing API, the waiting room and the notifier's /ws), called as
# a fan, an organizer and the admin, with real ids in the path parameters. Fails on any 5xx, on
# any answer the document does not describe (status, content type, headers, body), on invalid
# input that is accepted, and on a 4xx answer that changed Postgres. Deterministic (fixed seed,
# fixed number of cases per operation); about two minutes on 2 cores with the debug binaries.
#
# Runs after 10-stack-smoke.sh, which leaves the stack up (brought up again here when it is
# not). Installs what it needs when missing: schemathesis and psycopg, pinned, into a venv at
# .run/venv-schemathesis (python3-venv with apt-get when python3 cannot make one).
# Reports (JUnit) in .run/schemathesis/ (or $RUN_DIR/schemathesis).
#
#   infra/tests/schemathesis/setup.py          accounts, a venue, events, a hold, a booking
#   infra/tests/schemathesis/schemathesis.toml seed, cases per operation, checks, real ids
#   infra/tests/schemathesis/hooks.py          role tokens, the no-state-change-on-4xx check
#   infra/tests/schemathesis/fingerprint.py    the Postgres fingerprint that check compares
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"
# The stack's environment (addresses, DATABASE_URL, admin), as `infra/dev` sees it.
# shellcheck source=../dev
source "$ROOT/infra/dev"
load_env
start=$SECONDS

SCHEMATHESIS_VERSION=4.32.5
PSYCOPG_VERSION=3.2.10
VENV="$ROOT/.run/venv-schemathesis"
SWEEP_DIR="$ROOT/infra/tests/schemathesis"
REPORT_DIR="$RUN/schemathesis"

installed() {
    [[ $("$VENV/bin/st" --version 2>/dev/null) == *" $SCHEMATHESIS_VERSION" ]] &&
        "$VENV/bin/python" -c "import psycopg, sys; sys.exit(psycopg.__version__ != '$PSYCOPG_VERSION')" 2>/dev/null
}
if ! installed; then
    say "installing schemathesis $SCHEMATHESIS_VERSION and psycopg $PSYCOPG_VERSION into ${VENV#"$ROOT"/}"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's python3 makes venvs only with python3-venv (no ensurepip without it).
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "psycopg[binary]==$PSYCOPG_VERSION"
    installed || die "schemathesis $SCHEMATHESIS_VERSION did not install into $VENV"
fi

GATEWAY=$(gateway_url)
if ! curl -fsS -o /dev/null --max-time 5 "$GATEWAY/api/healthz"; then
    BUILD_PROFILE=${BUILD_PROFILE:-dev} "$ROOT/infra/dev" up
fi

export SWEEP_GATEWAY_URL=$GATEWAY
export SWEEP_API_URL="http://$(local_addr "$TICKETING_API_ADDR")"
export SWEEP_DATABASE_URL=$DATABASE_URL
export SWEEP_RUN_ID=${SWEEP_RUN_ID:-$(date +%s)}
say "setting up accounts, a venue, events, a hold and a booking"
eval "$("$VENV/bin/python" "$SWEEP_DIR/setup.py")"
say "waiting for Postgres to be quiet at rest"
"$VENV/bin/python" "$SWEEP_DIR/fingerprint.py"

mkdir -p "$REPORT_DIR"
export SCHEMATHESIS_HOOKS="$SWEEP_DIR/hooks.py"
st=(timeout "${SWEEP_TIMEOUT:-240}" "$VENV/bin/st" --config-file "$SWEEP_DIR/schemathesis.toml"
    run "$GATEWAY/api/openapi.json" --no-color --report junit)
# A deeper sweep by hand: SWEEP_MAX_EXAMPLES=200 SWEEP_TIMEOUT=3600 infra/tests/15-schemathesis.sh
if [[ -n ${SWEEP_MAX_EXAMPLES:-} ]]; then st+=(--max-examples "$SWEEP_MAX_EXAMPLES"); fi
# Register and login straight to ticketing-api's port, each request with an X-Forwarded-For of
# its own (TRUST_FORWARDED_FOR is on in the dev stack): through the gateway they would all come
# from this machine's one address and the per-IP limit (20 a minute) would answer most of them
# 429, and leave the next stages' log-ins waiting for it.
AUTH_PATHS='^/api/auth/(register|login)$'
rc=0
say "schemathesis: every operation through the gateway ($GATEWAY), except register and login"
"${st[@]}" --exclude-path-regex "$AUTH_PATHS" \
    --report-junit-path "$REPORT_DIR/gateway.xml" || rc=$?
say "schemathesis: register and login, straight to ticketing-api ($SWEEP_API_URL)"
SWEEP_SPOOF_FORWARDED_FOR=1 "${st[@]}" --url "$SWEEP_API_URL" --include-path-regex "$AUTH_PATHS" \
    --report-junit-path "$REPORT_DIR/auth.xml" || rc=$?
((rc == 0)) || die "the hostile-input sweep failed (reports in ${REPORT_DIR#"$ROOT"/})"
echo "hostile-input sweep: $((SECONDS - start)) s"
