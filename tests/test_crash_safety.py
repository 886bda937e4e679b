"""Crash safety: kill -9 the whole server (master and workers) while a 10,000-line receipt is
being written, restart it, and find nothing half-written: none of the receipt's weapons or all of
them, the projection agreeing with the ledger, the audit chain verifying. The client then retries
blindly with the same Idempotency-Key and ends with exactly one receipt.

On PostgreSQL the kill waits until a backend of the test database holds a transaction id (it has
started writing); on SQLite, until the database's write lock is taken (a probe's BEGIN IMMEDIATE
is refused).
(A stocktake close in flight is the next thing to kill here, once it exists.)"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import Weapon
from inventory.services import audit_log, projection

from .conftest import create_database, drop_database, unique
from .ledger_helpers import ago
from .servers import Reply, Server, issue_token

LINES = 10_000


def big_receipt(party: str, depot: str, rifle: str, prefix: str) -> dict[str, Any]:
    return {
        "kind": "receipt",
        "from": f"party:{party}",
        "to": f"depot:{depot}",
        "occurred_at": ago(hours=1),
        "lines": [
            {"weapon": {"serial": f"{prefix}-{i:05d}", "manufacturer": "M", "item_type": rifle}}
            for i in range(LINES)
        ],
    }


def weapons_with(url: str, prefix: str) -> int:
    engine = make_engine(url)
    session = make_session_factory(engine)()
    try:
        count = session.scalar(
            select(func.count()).select_from(Weapon).where(Weapon.serial.like(f"{prefix}-%"))
        )
        assert projection.check(session) == []
        verdict = audit_log.verify(session)
        assert verdict.ok, verdict
        return int(count or 0)
    finally:
        session.close()
        engine.dispose()


def wait_for_a_writing_backend(url: str, timeout: float = 30) -> None:
    """Return once a backend connected to the test database has started writing."""
    parsed = make_url(url)
    engine = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                writing = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = :db AND backend_xid IS NOT NULL"
                    ),
                    {"db": parsed.database},
                ).scalar()
                if writing:
                    return
                time.sleep(0.01)
    finally:
        engine.dispose()
    raise AssertionError("no backend started writing the receipt")


def wait_for_the_sqlite_writer(url: str, timeout: float = 30) -> None:
    """Return once another connection holds the SQLite write lock (the receipt is being written)."""
    probe = sqlite3.connect(make_url(url).database or "", timeout=0, isolation_level=None)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                probe.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return  # "database is locked": the server's write transaction is open
            probe.execute("ROLLBACK")
            time.sleep(0.005)
    finally:
        probe.close()
    raise AssertionError("the server never started writing the receipt")


def test_kill_9_during_a_large_receipt_leaves_nothing_half_written(
    backend: str, tmp_path: Path
) -> None:
    url = create_database(backend, tmp_path)
    server = Server(url, tmp_path / "server", workers=2).start()
    try:
        token = issue_token(url, "admin")
        depot, party, rifle = unique("D"), unique("SUP"), unique("RIFLE")
        for path, body in (
            ("/api/v1/depots", {"code": depot, "name": "d"}),
            ("/api/v1/parties", {"code": party, "name": "p", "country": "XX", "kind": "supplier"}),
            ("/api/v1/item-types", {"code": rifle, "category": "weapon", "name": "rifle"}),
        ):
            assert server.request("POST", path, token=token, body=body).status == 201

        prefix, key = unique("CUT"), unique("KEY")
        body = big_receipt(party, depot, rifle, prefix)
        replies: list[Reply | BaseException] = []

        def send() -> None:
            try:
                replies.append(
                    server.request(
                        "POST",
                        "/api/v1/movements",
                        token=token,
                        body=body,
                        headers={"Idempotency-Key": key},
                    )
                )
            except OSError as error:  # the connection dies with the server
                replies.append(error)

        client = threading.Thread(target=send)
        client.start()
        if backend == "postgresql":
            wait_for_a_writing_backend(url)
        else:
            wait_for_the_sqlite_writer(url)
        server.kill()
        client.join(timeout=60)
        assert len(replies) == 1 and isinstance(replies[0], OSError), replies  # cut in flight

        server.start()
        assert weapons_with(url, prefix) in (0, LINES)  # all or nothing, books intact
        retried = server.request(
            "POST", "/api/v1/movements", token=token, body=body, headers={"Idempotency-Key": key}
        )
        assert retried.status == 201, retried.body[:500]
        again = server.request(
            "POST", "/api/v1/movements", token=token, body=body, headers={"Idempotency-Key": key}
        )
        assert again.status == 201 and again.json() == retried.json()
        assert weapons_with(url, prefix) == LINES
        print(f"crash safety ({backend}): killed at the first write; restarted; nothing lost")
    finally:
        server.stop()
        drop_database(url)
