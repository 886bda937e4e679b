"""Subscriptions, the URL policy, signing, the delivery schedule (with a moved clock and a fake
endpoint, in-process) and the alert feed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from standardwebhooks import Webhook

from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import AuditRecord, Delivery, OutboxEvent
from inventory.domain.actors import operator
from inventory.services import delivery, outbox, subscriptions, webhook_urls
from inventory.services.delivery import Answer
from inventory.services.unit_of_work import Context, UnitOfWork, run_write
from inventory.settings import Settings
from inventory.worker import Worker

from .conftest import Api, make_settings, unique
from .ledger_helpers import World, ago, make_world

PUBLIC = "https://93.184.215.14/stockpile-hook"  # never contacted: these tests fake the endpoint


def subscribe(api: Api, token: str | None = None, **body: Any) -> Any:
    # A fresh URL each time: one token may not subscribe the same URL to the same events twice.
    url = f"{PUBLIC}?{unique('hook')}"
    return api.post(
        "/api/v1/subscriptions",
        json={"url": url, "events": ["discrepancy.opened"], **body},
        token=token,
    )


def test_a_monitor_subscribes_and_sees_the_secret_only_once(api: Api, app: Flask) -> None:
    monitor = api.token_for("monitor")
    created = subscribe(api, monitor, severities=["critical"])
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (
        body["secret"].startswith("whsec_") and len(subscriptions.secret_key(body["secret"])) == 32
    )
    Webhook(body["secret"])  # the standard library of receivers accepts it
    assert body["events"] == ["discrepancy.opened"] and body["severities"] == ["critical"]
    assert body["depots"] is None and body["disabled_at"] is None

    shown = api.get(f"/api/v1/subscriptions/{body['id']}", token=monitor).get_json()
    assert "secret" not in shown and shown["url"].startswith(PUBLIC)
    listed = api.get("/api/v1/subscriptions", query_string={"limit": 1000}).get_json()["items"]
    assert body["id"] in [s["id"] for s in listed] and all("secret" not in s for s in listed)
    session = app.extensions["inventory.sessions"]()
    try:
        record = session.scalars(
            select(AuditRecord).where(AuditRecord.subject == f"subscription:{body['id']}")
        ).one()
        assert record.action == "subscription.create"
        assert body["secret"].removeprefix("whsec_").encode() not in record.body
        assert PUBLIC.encode() in record.body
    finally:
        session.close()


@pytest.mark.parametrize("role", ["clerk", "auditor"])
def test_only_monitors_and_admins_manage_subscriptions(api: Api, depot: str, role: str) -> None:
    token = api.token_for(role, [depot] if role == "clerk" else None)
    assert subscribe(api, token).status_code == 403
    assert api.get("/api/v1/subscriptions", token=token).status_code == 403


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://93.184.215.14/x", "http:// or https://"),
        ("https://user:secret@93.184.215.14/x", "credentials"),
        ("http://127.0.0.1:8080/x", "loopback"),
        ("http://10.1.2.3/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/x", "loopback"),
        ("https:///x", "no host"),
    ],
)
def test_webhook_urls_must_be_public_http(api: Api, url: str, says: str) -> None:
    refused = subscribe(api, url=url)
    assert refused.status_code == 422
    assert says in refused.get_json()["errors"]["url"][0]


def test_a_host_name_is_judged_by_what_it_resolves_to(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {"hooks.monitor.example": ["93.184.215.14"], "intranet.example": ["192.168.1.20"]}
    monkeypatch.setattr(webhook_urls, "resolve_host", lambda host: names.get(host, []))
    assert subscribe(api, url="https://hooks.monitor.example/in").status_code == 201
    private = subscribe(api, url="https://intranet.example/in").get_json()
    assert "resolves to 192.168.1.20" in private["errors"]["url"][0]
    unknown = subscribe(api, url="https://nowhere.example/in").get_json()
    assert "does not resolve" in unknown["errors"]["url"][0]
    allowed = webhook_urls.url_problem("http://127.0.0.1:9/x", allow_private=True)
    assert allowed is None


def test_filters_are_checked(api: Api, depot: str) -> None:
    assert subscribe(api, events=["discrepancy.open"]).status_code == 422
    assert subscribe(api, events=[]).status_code == 422
    missing = subscribe(api, depots=[depot, "D-NOWHERE"]).get_json()
    assert missing["errors"]["depots"] == ["unknown depot D-NOWHERE"]
    assert subscribe(api, kinds=["stolen"]).status_code == 422
    assert subscribe(api, depots=[depot], kinds=["count_missing"]).status_code == 201


def test_unsubscribing_disables_and_is_idempotent(api: Api) -> None:
    created = subscribe(api).get_json()
    first = api.delete(f"/api/v1/subscriptions/{created['id']}")
    assert first.status_code == 200 and first.get_json()["disabled_at"]
    again = api.delete(f"/api/v1/subscriptions/{created['id']}").get_json()
    assert again["disabled_at"] == first.get_json()["disabled_at"]
    assert api.delete(f"/api/v1/subscriptions/{uuid.uuid4()}").status_code == 404


def test_the_signature_is_standard_webhooks() -> None:
    secret = subscriptions.new_secret()
    now = datetime.now(UTC)
    body = delivery.webhook_body("discrepancy.opened", now, '{"kind":"count_missing"}')
    headers = delivery.signed_headers(secret, "evt-1", now, body)
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "discrepancy.opened" and payload["data"] == {"kind": "count_missing"}
    with pytest.raises(Exception, match="signature"):
        Webhook(subscriptions.new_secret()).verify(body, headers)


def test_the_default_schedule_retries_for_more_than_a_day() -> None:
    backoff = Settings().webhook_backoff
    assert sum(backoff, timedelta()) >= timedelta(hours=24)
    assert list(backoff) == sorted(backoff)


@dataclass
class FakeEndpoint:
    """Answers `mine` with the scripted statuses (then 200); every other URL with 200."""

    mine: str
    script: list[int]
    calls: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, url: str, body: bytes, headers: dict[str, str], _s: Settings) -> Answer:
        if url != self.mine:
            return Answer(200, None, 1)
        self.calls.append(headers)
        status = self.script.pop(0) if self.script else 200
        return Answer(status, None if status < 300 else f"HTTP {status}", 3)


def lose(world: World, serial: str) -> None:
    body = {
        "kind": "loss",
        "from": f"depot:{world.depot}",
        "occurred_at": ago(minutes=1),
        "case_ref": unique("CASE"),
        "lines": [{"serial": serial}],
    }
    assert world.api.post("/api/v1/movements", json=body).status_code == 201


def test_failures_back_off_then_give_up_and_disable_the_subscription(api: Api, app: Flask) -> None:
    world = make_world(api)
    serial = unique("SN")
    assert world.receive([serial]).status_code == 201
    url = f"{PUBLIC}/{unique('flaky')}"
    created = subscribe(api, url=url, depots=[world.depot]).get_json()
    lose(world, serial)
    backoff = (timedelta(seconds=10), timedelta(minutes=1))
    settings: Settings = replace(app.extensions["inventory.settings"], webhook_backoff=backoff)
    endpoint = FakeEndpoint(url, [500, 502, 503])
    clock = [datetime.now(UTC)]
    session = app.extensions["inventory.sessions"]()
    worker = Worker(settings, session=session, clock=lambda: clock[0], post=endpoint)
    try:
        while delivery.fan_out(session, clock[0]):
            pass
        worker.deliver_due(1000)
        worker.deliver_due(1000)  # the retry is not due yet
        assert len(endpoint.calls) == 1
        clock[0] += backoff[0] * 1.25 + timedelta(seconds=1)
        worker.deliver_due(1000)
        clock[0] += backoff[1] * 1.25 + timedelta(seconds=1)
        worker.deliver_due(1000)
        clock[0] += timedelta(days=2)
        worker.deliver_due(1000)
    finally:
        session.close()

    assert len(endpoint.calls) == 3 and len({c["webhook-id"] for c in endpoint.calls}) == 1
    page = api.get(f"/api/v1/subscriptions/{created['id']}/deliveries").get_json()
    (failed,) = page["items"]
    assert failed["status"] == "failed" and failed["attempt_count"] == 3
    assert [a["status_code"] for a in failed["attempts"]] == [500, 502, 503]
    assert failed["event_id"] == endpoint.calls[0]["webhook-id"]
    shown = api.get(f"/api/v1/subscriptions/{created['id']}").get_json()
    assert shown["disabled_at"] and "failed 3 attempts (last: HTTP 503)" in shown["disabled_reason"]


def test_two_workers_never_claim_the_same_delivery(
    api: Api, app: Flask, backend: str, database_url: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite runs one worker; BEGIN IMMEDIATE serialises its claims")
    world = make_world(api)
    serials = [unique("SN"), unique("SN")]
    assert world.receive(serials).status_code == 201
    url = f"{PUBLIC}/{unique('shared')}"
    subscribe(api, url=url, depots=[world.depot])
    first = app.extensions["inventory.sessions"]()
    for serial in serials:
        lose(world, serial)
    while delivery.fan_out(first, datetime.now(UTC)):
        pass
    engine = make_engine(database_url, connect_args={"options": "-c lock_timeout=5000"})
    second = make_session_factory(engine)()
    try:
        mine = [
            d
            for d in first.scalars(select(Delivery).where(Delivery.status == "pending"))
            if subscriptions.get(first, d.subscription_id).url == url
        ]
        assert len(mine) == 2
        first.rollback()
        # The first worker is mid-claim on our earlier delivery: the second skips it, unblocked.
        first.scalars(select(Delivery).where(Delivery.id == mine[0].id).with_for_update()).one()
        claim = delivery.claim(second, datetime.now(UTC) + timedelta(days=3), timedelta(minutes=1))
        assert claim is not None and claim.delivery_id != mine[0].id
    finally:
        first.rollback()
        first.close()
        second.close()
        engine.dispose()


def test_the_alert_feed_pages_by_cursor(api: Api) -> None:
    world = make_world(api)
    serials = [unique("SN"), unique("SN")]
    assert world.receive(serials).status_code == 201
    monitor = api.token_for("monitor")  # following the feed: oldest first
    start = api.get(
        "/api/v1/alerts", query_string={"order": "asc", "limit": 1000}, token=monitor
    ).get_json()
    cursor = start["next"]
    while True:  # catch up with everything earlier tests published
        page = api.get(
            "/api/v1/alerts",
            query_string={"order": "asc", "after": cursor, "limit": 1000},
            token=monitor,
        ).get_json()
        if not page["items"]:
            break
        cursor = page["next"]
    for serial in serials:
        lose(world, serial)
    first = api.get(
        "/api/v1/alerts", query_string={"order": "asc", "after": cursor, "limit": 1}, token=monitor
    ).get_json()
    second = api.get(
        "/api/v1/alerts",
        query_string={"order": "asc", "after": first["next"], "limit": 5},
        token=monitor,
    ).get_json()
    events = first["items"] + second["items"]
    assert [e["type"] for e in events] == ["discrepancy.opened"] * 2
    assert [e["data"]["kind"] for e in events] == ["reported_loss"] * 2
    assert {e["data"]["depot"] for e in events} == {world.depot}
    assert second["next"] and set(events[0]) == {"id", "type", "timestamp", "data"}
    after_all = api.get(
        "/api/v1/alerts", query_string={"order": "asc", "after": second["next"]}, token=monitor
    ).get_json()
    assert after_all == {"items": [], "next": second["next"]}
    clerk = api.token_for("clerk", [world.depot])
    assert api.get("/api/v1/alerts", token=clerk).status_code == 403
    assert api.get("/api/v1/alerts", query_string={"after": "bm90LWEtY3Vyc29y"}).status_code == 422


def test_the_feed_orders_events_as_they_commit(
    backend: str, fresh_database_url: str, tmp_path: Path
) -> None:
    """A reader who saw a later event must never be handed an earlier seq afterwards: an event
    takes its seq under the chain head's lock, held to commit, however early the use case
    published and flushed it."""
    if backend != "postgresql":
        pytest.skip("SQLite's BEGIN IMMEDIATE lets one writer at a time in: seqs commit in order")
    engine = make_engine(fresh_database_url)
    sessions = make_session_factory(engine)
    context = Context(actor=operator("tests"), settings=make_settings(fresh_database_url, tmp_path))
    published, go_on = threading.Event(), threading.Event()

    def slow(uow: UnitOfWork) -> None:
        outbox.publish(uow, "discrepancy.opened", {"n": "slow"})
        uow.session.flush()  # as use cases do before their audit record
        published.set()
        assert go_on.wait(30)
        uow.record("test.slow", "test:slow", {})

    def quick(uow: UnitOfWork) -> None:
        outbox.publish(uow, "discrepancy.opened", {"n": "quick"})
        uow.record("test.quick", "test:quick", {})

    def run(use_case: Callable[[UnitOfWork], None]) -> None:
        session = sessions()
        try:
            run_write(session, context, use_case, lambda _result, _uow: None)
        finally:
            session.close()

    first = threading.Thread(target=run, args=(slow,))
    first.start()
    try:
        assert published.wait(30)
        run(quick)  # commits while the slow request is still open
    finally:
        go_on.set()
        first.join(30)
    session = sessions()
    try:
        order = [e.payload for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))]
    finally:
        session.close()
        engine.dispose()
    assert order == ['{"n":"quick"}', '{"n":"slow"}']
