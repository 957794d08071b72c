"""A cheap fingerprint of the committed state of the stack's Postgres database (see hooks.py).

Per table: the number of rows and the sum of their `xmin`. Run as a script, it waits until the
fingerprint is quiet at rest (no background writer still busy), or fails naming the tables
that keep changing.
"""

import os
import sys
import time

import psycopg

# Tables the services write in the background, after a request that succeeded earlier:
# the relay marks outbox rows published, the notifier records sent mail.
BACKGROUND_TABLES = {"outbox", "email_deliveries", "_sqlx_migrations"}
# The waiting room's audit of a pre-queue shuffled at its sale's opening.
ROW_FILTERS = {"audit_log": "WHERE action <> 'queue.shuffle'"}


class Fingerprint:
    def __init__(self, url):
        self.db = psycopg.connect(url, autocommit=True)
        tables = [
            name
            for (name,) in self.db.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
            if name not in BACKGROUND_TABLES
        ]
        self.query = " UNION ALL ".join(
            f"SELECT '{name}', count(*), coalesce(sum(xmin::text::bigint), 0) FROM {name} {ROW_FILTERS.get(name, '')}"
            for name in tables
        )

    def take(self):
        return {name: (rows, xmins) for name, rows, xmins in self.db.execute(self.query)}


def wait_quiet(url, quiet_for=3.0, give_up_after=30.0):
    fingerprint = Fingerprint(url)
    started = time.monotonic()
    last, since = fingerprint.take(), time.monotonic()
    while True:
        time.sleep(0.5)
        now = fingerprint.take()
        if now != last:
            changed = sorted(n for n in now.keys() | last.keys() if now.get(n) != last.get(n))
            print(f"    not quiet yet: {', '.join(changed)} changed", flush=True)
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            print(f"    Postgres quiet at rest for {quiet_for:.0f} s ({len(now)} tables fingerprinted)")
            return
        if time.monotonic() - started > give_up_after:
            sys.exit(f"Postgres never stayed quiet for {quiet_for:.0f} s: the no-state-change check would be flaky")


if __name__ == "__main__":
    wait_quiet(os.environ["SWEEP_DATABASE_URL"])
