"""Accounts and data for the hostile-input sweep (infra/tests/15-schemathesis.sh).

Makes, through the public API like any client: the dev stack's admin session; a fan with a
live hold, a confirmed booking and a place in a waiting room; an organizer (application and
the admin's approval) with a venue and two events on sale; a second fan with a pending
organizer application (the target of the admin operations, so the sweep's bans and approvals
never touch the accounts it calls with). Prints `export NAME=value` lines for the sweep's
config (schemathesis.toml) and hooks (hooks.py).

Log-ins and sign-ups are rate-limited per client IP and the gateway sets X-Forwarded-For to the
caller, so these calls go to ticketing-api's own port with an X-Forwarded-For of this run's
(TRUST_FORWARDED_FOR is on in the dev stack), as the browser tests do.
"""

import datetime
import os
import shlex
import sys
import time

import requests

GATEWAY = os.environ["SWEEP_GATEWAY_URL"]
API = os.environ["SWEEP_API_URL"]
RUN = os.environ.get("SWEEP_RUN_ID") or str(int(time.time()))
FORWARDED_FOR = f"10.13.{int(RUN) % 250}.{int(RUN) // 250 % 250 + 1}"
ADMIN = (
    os.environ.get("ADMIN_EMAIL", "admin@example.test"),
    os.environ.get("ADMIN_PASSWORD", "admin-pass-123"),
)


def call(method, url, expect, token=None, **kwargs):
    headers = kwargs.pop("headers", {})
    headers["X-Forwarded-For"] = FORWARDED_FOR
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = requests.request(method, url, headers=headers, timeout=30, **kwargs)
    if response.status_code != expect:
        sys.exit(f"setup: {method} {url} answered {response.status_code}, not {expect}: {response.text}")
    return response.json() if response.content else None


def account(role):
    email = f"sweep-{role}-{RUN}@example.test"
    password = f"sweep-{role}-pass"
    user = call("POST", f"{API}/api/auth/register", 201, json={"email": email, "password": password, "name": f"Sweep {role}"})
    return user["user"]["id"], (email, password)


def login(credentials):
    return session(credentials)[0]


def session(credentials):
    """An access token, and the refresh token of the session's cookie."""
    email, password = credentials
    response = requests.post(
        f"{API}/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": FORWARDED_FOR},
        timeout=30,
    )
    if response.status_code != 200:
        sys.exit(f"setup: login of {email} answered {response.status_code}: {response.text}")
    return response.json()["access_token"], response.cookies.get("refresh_token")


def rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    admin = login(ADMIN)
    fan_id, fan_credentials = account("fan")
    fan = login(fan_credentials)
    organizer_id, organizer_credentials = account("organizer")
    target_id, target_credentials = account("target")

    applicant = login(organizer_credentials)
    call("POST", f"{GATEWAY}/api/organizer/applications", 201, applicant, json={"company": "Sweep Shows", "details": "hostile-input sweep"})
    call("POST", f"{GATEWAY}/api/admin/organizers/{organizer_id}/approve", 200, admin)
    organizer = login(organizer_credentials)
    call("POST", f"{GATEWAY}/api/organizer/applications", 201, login(target_credentials), json={"company": "Target", "details": "the sweep's admin operations act on this account"})

    venue = call("POST", f"{GATEWAY}/api/venues", 201, organizer, json={
        "name": f"Sweep Hall {RUN}",
        "city": "Oslo",
        "layout": {"kind": "grid", "sections": [
            {"name": "A", "rows": 2, "seats_per_row": 10},
            {"name": "B", "rows": 2, "seats_per_row": 10},
        ]},
    })
    now = datetime.datetime.now(datetime.timezone.utc)
    event_body = {
        "venue_id": venue["id"],
        "description": "Made by the hostile-input sweep.",
        "starts_at": rfc3339(now + datetime.timedelta(days=30)),
        "sale_opens_at": rfc3339(now - datetime.timedelta(minutes=1)),
        "classes": [
            {"name": "VIP", "price": 15000, "currency": "EUR", "sections": ["A"]},
            {"name": "Normal", "price": 5000, "currency": "EUR"},
        ],
        "max_seats_per_order": 6,
        "hold_seconds": 600,
    }
    # The event the fans' operations use, and a spare one for the organizer's changes
    # (cancel, delete, demand mode), so the sweep does not take its own event off sale.
    event = call("POST", f"{GATEWAY}/api/events", 201, organizer, json={**event_body, "title": f"Sweep night {RUN}"})
    spare = call("POST", f"{GATEWAY}/api/events", 201, organizer, json={**event_body, "title": f"Sweep spare {RUN}"})

    bought = call("POST", f"{GATEWAY}/api/events/{event['id']}/holds", 201, fan, json={"class": "Normal", "quantity": 1})
    booking = call("POST", f"{GATEWAY}/api/events/{event['id']}/registrations", 201, fan, json={"hold_id": bought["hold_id"]})
    hold = call("POST", f"{GATEWAY}/api/events/{spare['id']}/holds", 201, fan, json={"class": "VIP", "quantity": 2})
    queue = call("POST", f"{GATEWAY}/api/queue/{event['id']}/join", 200, fan)
    # Sessions of their own for refresh (rotated, then reused) and for logout (ended).
    _, refresh_token = session(fan_credentials)
    _, logout_token = session(fan_credentials)

    values = {
        "SWEEP_ADMIN_TOKEN": admin,
        "SWEEP_FAN_TOKEN": fan,
        "SWEEP_FAN_ID": fan_id,
        "SWEEP_ORGANIZER_TOKEN": organizer,
        "SWEEP_TARGET_USER_ID": target_id,
        "SWEEP_VENUE_ID": venue["id"],
        "SWEEP_EVENT_ID": event["id"],
        "SWEEP_SPARE_EVENT_ID": spare["id"],
        "SWEEP_HOLD_ID": hold["hold_id"],
        "SWEEP_BOOKING_ID": booking["booking_id"],
        "SWEEP_TICKET_ID": booking["tickets"][0]["id"],
        "SWEEP_QUEUE_TOKEN": queue["queue_token"],
        "SWEEP_REFRESH_TOKEN": refresh_token,
        "SWEEP_LOGOUT_TOKEN": logout_token,
    }
    for name, value in values.items():
        print(f"export {name}={shlex.quote(str(value))}")


if __name__ == "__main__":
    main()
