"""Webhooks one bad endpoint cannot stall: the URL rule's IPv6 disguises of refused IPv4
addresses, one resolution per delivery (no DNS rebinding), a total deadline per attempt, the
circuit breaker, and a worker loop that never waits on an endpoint. The end-to-end run with a
tarpit beside a healthy receiver is in tests/test_webhook_tarpit.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

from inventory.services import delivery, webhook_urls
from inventory.services.delivery import Answer
from inventory.settings import Settings
from inventory.worker import Worker

from .conftest import Api, unique
from .ledger_helpers import make_world
from .test_subscriptions import PUBLIC, lose, subscribe


@pytest.mark.parametrize(
    ("address", "embeds"),
    [
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 (RFC 6052 well-known prefix)
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4
        ("2002:a9fe:a9fe::1", "169.254.169.254"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo, client 127.0.0.1
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
        ("::7f00:1", "127.0.0.1"),  # IPv4-compatible (deprecated)
    ],
)
def test_ipv6_forms_of_refused_ipv4_addresses_are_refused(address: str, embeds: str) -> None:
    problem = webhook_urls.url_problem(f"http://[{address}]/hook", allow_private=False)
    assert problem is not None and embeds in problem, problem


def test_the_local_use_nat64_prefix_is_refused_whole() -> None:
    problem = webhook_urls.url_problem("http://[64:ff9b:1::5db8:d70e]/", allow_private=False)
    assert problem is not None and "64:ff9b:1::/48" in problem


@pytest.mark.parametrize("address", ["64:ff9b::5db8:d70e", "2002:5db8:d70e::1"])
def test_ipv6_forms_of_public_ipv4_addresses_pass(address: str) -> None:
    assert webhook_urls.url_problem(f"http://[{address}]/", allow_private=False) is None


def test_a_host_name_disguising_loopback_as_nat64_is_refused(api: Api, monkeypatch: Any) -> None:
    monkeypatch.setattr(webhook_urls, "resolve_host", lambda host: ["64:ff9b::7f00:1"])
    refused = subscribe(api, url="https://sneaky.example/in")
    assert refused.status_code == 422
    assert "IPv6 form of 127.0.0.1" in refused.get_json()["errors"]["url"][0]
    assert subscribe(api, url="http://[2002:7f00:1::]/in").status_code == 422


# --- the HTTP client ---------------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[int]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_delivery_resolves_once_and_connects_to_the_vetted_address(
    recorder: int, monkeypatch: Any
) -> None:
    answers = iter([["127.0.0.1"], ["192.0.2.1"]])  # a rebinding resolver: a second look differs
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return next(answers)

    monkeypatch.setattr(webhook_urls, "resolve_host", resolve)
    settings = Settings(webhook_allow_private=True, webhook_timeout=5)
    url = f"http://hooks.monitor.example:{recorder}/in?x=1"
    answer = delivery.post_webhook(url, b"{}", {"webhook-id": "e1"}, settings)
    assert answer.status_code == 204 and answer.ok, answer
    assert asked == ["hooks.monitor.example"]
    (seen,) = Recorder.seen
    assert seen["host"] == f"hooks.monitor.example:{recorder}" and seen["path"] == "/in?x=1"
    assert seen["webhook-id"] == "e1"


def test_a_delivery_tries_each_vetted_address_in_turn(recorder: int, monkeypatch: Any) -> None:
    # nothing listens on ::1 at the recorder's port (it is bound to 127.0.0.1 only)
    monkeypatch.setattr(webhook_urls, "resolve_host", lambda host: ["::1", "127.0.0.1"])
    settings = Settings(webhook_allow_private=True, webhook_timeout=5)
    url = f"http://dual.monitor.example:{recorder}/in"
    answer = delivery.post_webhook(url, b"{}", {}, settings)
    assert answer.status_code == 204, answer
    assert len(Recorder.seen) == 1


def test_a_delivery_is_vetted_again_against_a_fresh_resolution(monkeypatch: Any) -> None:
    monkeypatch.setattr(webhook_urls, "resolve_host", lambda host: ["64:ff9b::7f00:1"])
    answer = delivery.post_webhook("https://rebound.example/in", b"{}", {}, Settings())
    assert answer.status_code is None and answer.error is not None
    assert answer.error.startswith("not sent:") and "127.0.0.1" in answer.error


@pytest.fixture
def tarpit() -> Iterator[int]:
    """Accepts, reads the request, then sends a response one header line every 0.2 s, for
    ever: each read is quick, the answer never ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                n = 0
                while not stop.wait(0.2):
                    n += 1
                    conn.sendall(f"X-Drip-{n}: a\r\n".encode())
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()


def test_the_deadline_is_for_the_whole_attempt_not_each_read(tarpit: int) -> None:
    settings = Settings(webhook_allow_private=True, webhook_timeout=1.0)
    began = time.monotonic()
    answer = delivery.post_webhook(f"http://127.0.0.1:{tarpit}/", b"{}", {}, settings)
    took = time.monotonic() - began
    assert answer.status_code is None and answer.error is not None
    assert "timed out" in answer.error
    assert 0.9 < took < 3.0, took  # 1 s, with room for a loaded machine; not 0.2 s per read


# --- the worker --------------------------------------------------------------------------------


class Endpoints:
    """Fails every URL in `failing` (after a pause, if `hold` is set), answers 200 elsewhere."""

    def __init__(self, failing: set[str], hold: threading.Event | None = None) -> None:
        self.failing, self.hold = failing, hold
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, url: str, _body: bytes, _headers: dict[str, str], _s: Settings) -> Answer:
        with self.lock:
            self.calls.append(url)
        if url in self.failing:
            if self.hold is not None:
                self.hold.wait(10)
            return Answer(None, "timed out: no full answer within 10 s", 10_000)
        return Answer(200, None, 1)

    def to(self, url: str) -> int:
        with self.lock:
            return self.calls.count(url)


def test_a_failing_endpoint_opens_its_circuit_and_a_success_closes_it(
    api: Api, app: Flask
) -> None:
    world = make_world(api)
    serials = [unique("SN") for _ in range(6)]
    assert world.receive(serials).status_code == 201
    dead, alive = f"{PUBLIC}/{unique('dead')}", f"{PUBLIC}/{unique('alive')}"
    created = subscribe(api, url=dead, depots=[world.depot]).get_json()
    subscribe(api, url=alive, depots=[world.depot])
    for serial in serials:
        lose(world, serial)
    settings: Settings = replace(
        app.extensions["inventory.settings"],
        webhook_backoff=(timedelta(seconds=30), timedelta(minutes=5), timedelta(minutes=5)),
    )
    endpoints = Endpoints({dead})
    clock = [datetime.now(UTC)]
    session = app.extensions["inventory.sessions"]()
    worker = Worker(settings, session=session, clock=lambda: clock[0], post=endpoints)
    try:
        while delivery.fan_out(session, clock[0]):
            pass
        # One attempt at a time per subscription; after 3 failures in a row its circuit opens
        # and its other 3 deliveries wait, while the healthy subscription gets all 6.
        worker.deliver_due(1000)
        assert endpoints.to(alive) == 6 and endpoints.to(dead) == 3
        shown = api.get(f"/api/v1/subscriptions/{created['id']}").get_json()
        assert shown["consecutive_failures"] == 3 and shown["paused_until"]
        clock[0] += timedelta(seconds=15)  # the first retries are due, the circuit still open
        worker.deliver_due(1000)
        assert endpoints.to(dead) == 3
        endpoints.failing.clear()
        clock[0] += timedelta(seconds=40)
        worker.deliver_due(1000)  # half-open: one probe, then the rest
        assert endpoints.to(dead) == 3 + 6
        shown = api.get(f"/api/v1/subscriptions/{created['id']}").get_json()
        assert shown["consecutive_failures"] == 0 and shown["paused_until"] is None
    finally:
        session.close()


def test_the_worker_loop_never_waits_on_an_endpoint(api: Api, app: Flask) -> None:
    world = make_world(api)
    serials = [unique("SN"), unique("SN")]
    assert world.receive(serials).status_code == 201
    slow = f"{PUBLIC}/{unique('slow')}"
    subscribe(api, url=slow, depots=[world.depot])
    lose(world, serials[0])
    hold = threading.Event()
    endpoints = Endpoints({slow}, hold)
    session = app.extensions["inventory.sessions"]()
    worker = Worker(app.extensions["inventory.settings"], session=session, post=endpoints)
    try:
        began = time.monotonic()
        for _ in range(5):  # passes go on (fan-out, sweep, checkpoint) while the POST hangs
            worker.run_pass()
        assert time.monotonic() - began < 8 and endpoints.to(slow) == 1
        assert len(worker.in_flight) == 1
    finally:
        hold.set()
        worker.finish_in_flight()
        worker.pool.shutdown()
        session.close()
