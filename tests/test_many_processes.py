"""Two API servers and two workers on one PostgreSQL database while receipts, issues that fall
overdue, losses and sightings flow through both servers: every event reaches every subscription
it matches exactly once per webhook-id, each sweep finding is opened once, and no checkpoint is
signed for a head whose only news is the previous checkpoint."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import AuditCheckpoint, Delivery, Discrepancy, OutboxEvent, Subscription
from inventory.services.checkpoints import init_key
from inventory.services.subscriptions import Filters
from inventory.settings import Settings

from .conftest import create_database, drop_database, unique
from .servers import SOURCE, Server, issue_token
from .test_alerts_worker import INVENTORY, start_receiver, stop, wait_for

ROUNDS = 4  # per client thread; 4 threads


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend != "postgresql":
        pytest.skip("several processes sharing one database is the PostgreSQL deployment")
    url = create_database(backend, tmp_path)
    yield url
    drop_database(url)


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def test_two_servers_and_two_workers_share_one_database(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "audit-signing-key.pem"
    init_key(Settings(database_url=database, signing_key_path=key))  # one key for both workers
    monkeypatch.setenv("INVENTORY_WEBHOOK_ALLOW_PRIVATE", "1")
    receiver = start_receiver()
    servers = [Server(database, tmp_path / f"api-{n}", workers=1) for n in range(2)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for server in servers:
            server.start()
        token = issue_token(database, "admin")

        def call(n: int, path: str, body: Any) -> Any:
            reply = servers[n % 2].request("POST", path, token=token, body=body)
            assert reply.status == 201, (path, reply.status, reply.body[:500])
            return reply.json()

        depots, unit, supplier, rifle = (
            [unique("D"), unique("D")],
            unique("U"),
            unique("S"),
            unique("R"),
        )
        for code in depots:
            call(0, "/api/v1/depots", {"code": code, "name": code})
        call(1, "/api/v1/units", {"code": unit, "name": unit, "depot": depots[0]})
        call(
            0,
            "/api/v1/parties",
            {"code": supplier, "name": "s", "country": "XX", "kind": "supplier"},
        )
        call(1, "/api/v1/item-types", {"code": rifle, "category": "weapon", "name": "r"})
        subscribed = {
            "all": call(
                0,
                "/api/v1/subscriptions",
                {"url": receiver.url("/all"), "events": ["discrepancy.opened"]},
            ),
            "first-depot": call(
                1,
                "/api/v1/subscriptions",
                {
                    "url": receiver.url("/first-depot"),
                    "events": ["discrepancy.opened"],
                    "depots": [depots[0]],
                },
            ),
            "checkpoints": call(
                0,
                "/api/v1/subscriptions",
                {"url": receiver.url("/checkpoints"), "events": ["audit.checkpoint"]},
            ),
        }

        env = {
            **os.environ,
            "PYTHONPATH": str(SOURCE),
            "INVENTORY_DATABASE_URL": database,
            "INVENTORY_SIGNING_KEY": str(key),
            "INVENTORY_LOG_LEVEL": "WARNING",
            "INVENTORY_WORKER_POLL": "0.1",
            "INVENTORY_SWEEP_INTERVAL": "0.5",
            "INVENTORY_CHECKPOINT_INTERVAL": "0.5",
        }
        for n in range(2):
            with (tmp_path / f"worker-{n}.log").open("ab") as log:
                workers.append(
                    subprocess.Popen(
                        [str(INVENTORY), "worker"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

        overdue: list[str] = []
        failures: list[BaseException] = []

        def client(c: int) -> None:
            try:
                depot = depots[c % 2]
                for r in range(ROUNDS):
                    n = c + r
                    serials = [unique("SN") for _ in range(3)]
                    call(
                        n,
                        "/api/v1/movements",
                        {
                            "kind": "receipt",
                            "from": f"party:{supplier}",
                            "to": f"depot:{depot}",
                            "occurred_at": ago(hours=1),
                            "lines": [
                                {"weapon": {"serial": s, "manufacturer": "M", "item_type": rifle}}
                                for s in serials
                            ],
                        },
                    )
                    if depot == depots[0]:
                        call(
                            n + 1,
                            "/api/v1/movements",
                            {
                                "kind": "issue",
                                "from": f"depot:{depot}",
                                "to": f"unit:{unit}",
                                "occurred_at": ago(minutes=1),
                                "due_back_at": ago(seconds=-1),
                                "lines": [{"serial": serials[0]}],
                            },
                        )
                        overdue.append(serials[0])
                    call(
                        n,
                        "/api/v1/movements",
                        {
                            "kind": "loss",
                            "from": f"depot:{depot}",
                            "occurred_at": ago(seconds=5),
                            "case_ref": unique("CASE"),
                            "lines": [{"serial": serials[1]}],
                        },
                    )
                    call(
                        n + 1,
                        "/api/v1/sightings",
                        {
                            "serial": unique("UNKNOWN"),
                            "observed_at": ago(minutes=1),
                            "place": "market",
                            "circumstances": "photographed",
                        },
                    )
            except BaseException as error:  # reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not failures, failures

        engine = make_engine(database)
        session = make_session_factory(engine)()
        try:

            def count(query: Any) -> int:
                value = session.scalar(query)
                session.rollback()
                return int(value or 0)

            wait_for(
                "the sweep to find every overdue return",
                lambda: (
                    count(
                        select(func.count())
                        .select_from(Discrepancy)
                        .where(Discrepancy.kind == "return_overdue")
                    )
                    >= len(overdue)
                ),
                timeout=60,
            )
            wait_for(
                "every event fanned out and delivered",
                lambda: (
                    count(
                        select(func.count())
                        .select_from(OutboxEvent)
                        .where(OutboxEvent.dispatched.is_(False))
                    )
                    == 0
                    and count(
                        select(func.count())
                        .select_from(Delivery)
                        .where(Delivery.status == "pending")
                    )
                    == 0
                ),
                timeout=60,
            )
            for worker in workers:
                assert stop(worker, signal.SIGTERM) == 0

            events = list(session.scalars(select(OutboxEvent)))
            for path, created in subscribed.items():
                subscription = session.get_one(Subscription, uuid.UUID(created["id"]))
                filters = Filters.of(subscription)
                expected = {
                    str(e.id)
                    for e in events
                    if e.occurred_at >= subscription.created_at and filters.matches(e)
                }
                got = collections.Counter(r.headers["webhook-id"] for r in receiver.at(f"/{path}"))
                assert set(got) == expected, path
                assert all(n == 1 for n in got.values()), (path, got.most_common(3))
            assert subscribed and len(receiver.at("/all")) >= ROUNDS * 4 * 2

            duplicates = session.execute(
                select(Discrepancy.kind, Discrepancy.subject_key, func.count())
                .group_by(Discrepancy.kind, Discrepancy.subject_key)
                .having(func.count() > 1)
            ).all()
            assert duplicates == []
            assert count(
                select(func.count())
                .select_from(Discrepancy)
                .where(Discrepancy.kind == "return_overdue")
            ) == len(overdue)

            seqs = list(session.scalars(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)))
            assert seqs, "no checkpoint was signed"
            # each checkpoint covers something besides the previous checkpoint's own record
            assert all(b > a + 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs
            checkpoint_ids = [
                json.loads(r.body)["data"]["seq"] for r in receiver.at("/checkpoints")
            ]
            assert sorted(checkpoint_ids) == seqs
        finally:
            session.close()
            engine.dispose()
    finally:
        for worker in workers:
            stop(worker, signal.SIGKILL)
        for server in servers:
            server.stop()
        receiver.server.shutdown()
        receiver.server.server_close()
