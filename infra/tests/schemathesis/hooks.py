"""Schemathesis hooks of the hostile-input sweep (infra/tests/15-schemathesis.sh).

- `RoleTokens`: every operation that declares the `bearer` scheme is called as the role it is
  meant for (admin for /api/admin/..., the organizer for venues, event changes, dashboards and
  check-in, the fan otherwise), with the tokens setup.py made.
- `before_call`: takes a fingerprint of Postgres before each request (and, for the run straight
  to ticketing-api's port, gives each request its own X-Forwarded-For: see the stage).
- `no_state_change_on_4xx`: a request answered with 4xx must have changed nothing: the
  fingerprint after the answer must equal the one before it.

The fingerprint is, per table, the number of rows and the sum of their `xmin` (the id of the
transaction that wrote each row version): an insert changes the count, a delete too, and an
update gives the row a new xmin, so any committed write to a table changes its pair, while
reads and rolled-back writes change nothing. It is taken over the stack's own database, so
other databases on the same server (other stacks, `cargo test`) do not disturb it, unlike a
cluster-wide counter such as `pg_snapshot_xmax(pg_current_snapshot())`.

What it leaves out, because the services write it in the background, after a request that
succeeded earlier: `outbox` (the worker's relay marks rows published), `email_deliveries` (the
notifier), `_sqlx_migrations`, and the waiting room's `queue.shuffle` rows of `audit_log` (a
pre-queue shuffled at its sale's opening). Redis is not compared (holds are all-or-nothing
Lua scripts with their own tests). The stage first checks that the fingerprint is quiet at rest.
Requests run one at a time (workers = 1), so a change between two fingerprints is the request's.
"""

import os
import sys

import schemathesis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fingerprint import Fingerprint  # noqa: E402

TOKENS = {
    "admin": os.environ["SWEEP_ADMIN_TOKEN"],
    "organizer": os.environ["SWEEP_ORGANIZER_TOKEN"],
    "fan": os.environ["SWEEP_FAN_TOKEN"],
}

def role_for(operation):
    """Who an operation is for: /api/admin/... the admin's; venues, event changes, the
    organizer's views and check-in the organizer's (event paths with `{id}` are the
    organizer's, those with `{event_id}` the fans'); everything else the fan's."""
    path, method = operation.path, operation.method.upper()
    if path.startswith("/api/admin/"):
        return "admin"
    if (
        path.startswith(("/api/venues", "/api/organizer/events", "/api/events/{id}/"))
        or path == "/api/checkin"
        or (path == "/api/events" and method == "POST")
        or (path == "/api/events/{id}" and method in ("PATCH", "DELETE"))
    ):
        return "organizer"
    return "fan"


def declares_bearer(operation):
    raw = getattr(operation.definition, "raw", None) or {}
    return any("bearer" in requirement for requirement in raw.get("security") or [])


@schemathesis.auth(refresh_interval=None)
class RoleTokens:
    def get(self, case, context):
        if not declares_bearer(context.operation):
            return None
        return TOKENS[role_for(context.operation)]

    def set(self, case, token, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


FINGERPRINT = Fingerprint(os.environ["SWEEP_DATABASE_URL"])
# The one 4xx that changes state by design: presenting a spent refresh token answers 401
# `refresh_token_reused` and revokes every refresh token of that login (theft detection).
EXPECTED_CHANGES = {("POST", "/api/auth/refresh", 401, "refresh_token_reused"): {"refresh_tokens"}}
SPOOF_FORWARDED_FOR = os.environ.get("SWEEP_SPOOF_FORWARDED_FOR") == "1"
state = {"before": None, "requests": 0}


@schemathesis.hook
def before_call(context, case, kwargs):
    state["requests"] += 1
    if SPOOF_FORWARDED_FOR:
        # Every request its own client address, so the per-IP limit on register and login
        # (20 a minute) does not turn the sweep of those two into a sweep of the 429.
        n = state["requests"]
        case.headers = {**(case.headers or {}), "X-Forwarded-For": f"10.14.{n // 250 % 250}.{n % 250 + 1}"}
    state["before"] = FINGERPRINT.take()


def error_code(response):
    try:
        return response.json().get("error")
    except Exception:
        return None


@schemathesis.check
def no_state_change_on_4xx(ctx, response, case):
    """A request answered with 4xx changed nothing in Postgres."""
    before = state["before"]
    if before is None or not 400 <= response.status_code < 500:
        return None
    after = FINGERPRINT.take()
    changed = sorted(name for name in after.keys() | before.keys() if after.get(name) != before.get(name))
    if changed and set(changed) <= EXPECTED_CHANGES.get(
        (case.operation.method.upper(), case.operation.path, response.status_code, error_code(response)), set()
    ):
        return None
    if changed:
        raise AssertionError(
            f"answered {response.status_code} but changed Postgres: {', '.join(changed)} "
            f"(rows, sum of xmin) before {[before.get(n) for n in changed]}, after {[after.get(n) for n in changed]}"
        )
    return None
