"""Heavy reads on a PostgreSQL hot standby (INVENTORY_READ_DATABASE_URL), without losing
read-your-writes.

Before a heavy read uses the standby it asks the primary how far its WAL is flushed
(`pg_current_wal_flush_lsn()`, one round trip that touches no table) and waits, bounded by
Settings.read_replica_wait, until the standby has replayed that far (`pg_last_wal_replay_lsn()`).
Every write that committed before the read began (the client's own included, in whichever worker
process it ran) is then visible on the standby. If the standby has not caught up in time, or
cannot be reached, the read runs on the primary: slower, never stale."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

POLL_SECONDS = 0.005


def primary_lsn(primary: Engine) -> str:
    """The primary's WAL flush position now (every committed write is at or before it)."""
    with primary.connect() as connection:
        lsn = connection.scalar(text("SELECT pg_current_wal_flush_lsn()::text"))
    return str(lsn)


def caught_up(standby: Session, lsn: str, wait: timedelta) -> bool:
    """Wait until `standby` has replayed the WAL up to `lsn`; False after `wait`. A server that is
    not in recovery (the read URL names a primary) has nothing to replay: True at once."""
    deadline = time.monotonic() + wait.total_seconds()
    query = text(
        "SELECT pg_last_wal_replay_lsn() IS NULL"
        " OR pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"
    )
    while True:
        # Each poll is its own statement; READ COMMITTED then lets the read's next statement see
        # everything replayed so far.
        if standby.scalar(query, {"lsn": lsn}):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def standby_session(primary: Engine, standby: Session, wait: timedelta) -> Session | None:
    """`standby` once it has replayed every write committed so far; None (use the primary) if it
    lags more than `wait` or cannot be reached."""
    try:
        lsn = primary_lsn(primary)
        if caught_up(standby, lsn, wait):
            return standby
        log.warning(
            "read replica more than %s s behind the primary; reading from the primary",
            wait.total_seconds(),
        )
    except DBAPIError as error:
        log.warning("read replica unavailable (%s); reading from the primary", error.orig)
    standby.close()
    return None
