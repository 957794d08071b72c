#!/usr/bin/env bash
# Several waiting-room instances (WAITING_ROOMS / --waiting-rooms N) without starting any: the
# names, ports, pid-file markers and the gateway's upstream that infra/dev derives for them,
# and the rendered gateway config passes `nginx -t`. Sources infra/dev (which defines its
# functions without running anything) in a throwaway RUN_DIR; a second or two.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# One clean environment per case: nothing of the caller's stack leaks in.
run_case() {
    # shellcheck disable=SC2016 # the inner shell expands them
    env -i PATH="$PATH" HOME="${HOME:-/root}" CI=true RUN_DIR="$TMP/run" ROOT="$ROOT" \
        WAITING_ROOM_ADDR=127.0.0.1:19681 GATEWAY_PORT=19680 "$@" bash -c '
        set -euo pipefail
        # shellcheck source=/dev/null
        source "$ROOT/infra/dev"
        load_env
        echo "names: $(waiting_room_names | tr "\n" " ")"
        echo "addr3: $(service_addr waiting-room-3)"
        echo "marker: $(proc_marker waiting-room-3)"
        echo "more: $WAITING_ROOM_MORE_SERVERS"
        render_nginx
        sed -n "/^upstream waiting_room {/,/}/p" "$NGINX_DIR/gateway.conf"
    '
}

echo "==> WAITING_ROOMS=3: three instances, 1000 ports apart, all in the gateway's upstream"
out=$(run_case WAITING_ROOMS=3) || fail "WAITING_ROOMS=3: $out"
grep -qx 'names: waiting-room waiting-room-2 waiting-room-3 ' <<<"$out" || fail "names: $out"
grep -qx 'addr3: 127.0.0.1:21681' <<<"$out" || fail "instance 3's address: $out"
# The pid-file check looks for the one binary's path in each instance's command line.
grep -qx 'marker: /waiting-room' <<<"$out" || fail "marker: $out"
grep -q 'server 127.0.0.1:19681;' <<<"$out" || fail "instance 1 not upstream: $out"
grep -q 'server 127.0.0.1:20681; server 127.0.0.1:21681;' <<<"$out" || fail "instances 2 and 3 not upstream: $out"

echo "==> default: one instance, one server"
out=$(run_case) || fail "default: $out"
grep -qx 'names: waiting-room ' <<<"$out" || fail "names: $out"
[[ $(grep -c 'server ' <<<"$out") == 1 ]] || fail "more than one server: $out"

echo "==> an explicit WAITING_ROOM_UPSTREAM (compose's way) stays the one server"
out=$(run_case WAITING_ROOMS=2 WAITING_ROOM_UPSTREAM=10.0.0.7:8081 2>&1) || fail "explicit upstream: $out"
grep -q 'server 10.0.0.7:8081;' <<<"$out" || fail "not the explicit upstream: $out"
[[ $(grep -c '^ *server ' <<<"$out") == 1 ]] || fail "more than one server: $out"

echo "==> nonsense counts are refused"
for bad in 0 x -1 60; do
    if out=$(run_case WAITING_ROOMS=$bad 2>&1); then fail "WAITING_ROOMS=$bad accepted: $out"; fi
    grep -q 'WAITING_ROOMS' <<<"$out" || fail "WAITING_ROOMS=$bad: no reason given: $out"
done
echo "ok: waiting-room instances"
