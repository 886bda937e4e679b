"""End to end: the API (gunicorn) and `inventory worker` as real processes against a fresh
database, and a webhook receiver on loopback. A missing weapon reaches the receiver as a signed
`discrepancy.opened` that the `standardwebhooks` package verifies; failures are retried with the
same webhook-id; a worker killed with SIGKILL mid-delivery loses nothing.

Every wait is bounded, and every process is stopped (or killed) when its test ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from .conftest import create_database, drop_database, unique

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = Path(sys.executable).parent / "inventory"
WAIT = 30.0  # seconds: the longest any step may take before the test fails


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, condition: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- the webhook receiver ---------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers each path by its script (statuses, or "hang" until released),
    then 200."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, list[int | str]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body))
                script = receiver.scripts.get(self.path, [])
                action = script.pop(0) if script else 200
            if action == "hang":
                receiver.release.wait(WAIT)
                action = 200
            self.send_response(int(action))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, *_args: Any) -> None:
            pass  # the worker we killed hung up on a hanging request: expected

    server = Server(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


# --- the processes ----------------------------------------------------------------------------


@dataclass
class Stack:
    database_url: str
    workdir: Path
    port: int = 0
    app: subprocess.Popen[bytes] | None = None
    token: str = ""

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),  # this checkout's code, whichever is installed
            "INVENTORY_DATABASE_URL": self.database_url,
            "INVENTORY_INSTANCE_DIR": str(self.workdir),
            "INVENTORY_SIGNING_KEY": str(self.workdir / "audit-signing-key.pem"),
            "INVENTORY_LOG_LEVEL": "INFO",
            "INVENTORY_WEBHOOK_ALLOW_PRIVATE": "1",
            "INVENTORY_WEBHOOK_BACKOFF": "0.3,0.3,0.3",
            "INVENTORY_WEBHOOK_TIMEOUT": "4",
            "INVENTORY_WEBHOOK_LEASE": "5",
            "INVENTORY_WORKER_POLL": "0.1",
        }

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [str(INVENTORY), *args],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        assert status in (200, 201), (method, path, status, answer)
        return answer


def stop(process: subprocess.Popen[bytes] | None, signum: int = signal.SIGTERM) -> int | None:
    if process is None:
        return None
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            return process.wait(WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(WAIT)
    return process.returncode


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"e2e-{backend}")
    url = create_database(backend, workdir)
    stack = Stack(url, workdir)
    try:
        created = subprocess.run(
            [str(INVENTORY), "tokens", "create", "--name", "e2e", "--role", "admin", "--json"],
            env=stack.env(),
            capture_output=True,
            timeout=WAIT,
            check=True,
        )
        stack.token = json.loads(created.stdout)["token"]
        stack.port = free_port()
        stack.app = stack.spawn(
            "app", "serve", "--host", "127.0.0.1", "--port", str(stack.port), "--workers", "2"
        )

        def healthy() -> bool:
            assert stack.app is not None and stack.app.poll() is None, stack.log("app")
            try:
                return stack.call("GET", "/healthz")[0] == 200
            except OSError:
                return False

        wait_for("the API to answer /healthz", healthy)
        yield stack
    finally:
        stop(stack.app)
        drop_database(url)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = start_receiver()
    yield receiver
    receiver.release.set()
    receiver.server.shutdown()
    receiver.server.server_close()


@dataclass
class Workers:
    stack: Stack
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        """A new `inventory worker`, logging to worker-<pid>.log."""
        name = f"worker-{unique('W')}"
        process = self.stack.spawn(name, "worker")
        self.running.append(process)
        self.names[process.pid] = name
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return self.stack.log(self.names[process.pid])

    names: dict[int, str] = field(default_factory=dict)


@pytest.fixture
def workers(stack: Stack) -> Iterator[Workers]:
    pool = Workers(stack)
    yield pool
    for process in pool.running:
        stop(process, signal.SIGKILL)


# --- the world and what goes wrong in it --------------------------------------------------------


@dataclass
class Depot:
    """A depot of its own per test, so each test's subscription sees only its own events."""

    stack: Stack
    code: str
    rifle: str
    maker: str
    supplier: str

    def receive(self, serials: list[str]) -> None:
        self.stack.ok(
            "POST",
            "/api/v1/movements",
            {
                "kind": "receipt",
                "from": f"party:{self.supplier}",
                "to": f"depot:{self.code}",
                "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "document_ref": unique("GRN"),
                "lines": [
                    {"weapon": {"serial": s, "manufacturer": self.maker, "item_type": self.rifle}}
                    for s in serials
                ],
            },
        )

    def lose(self, serial: str) -> str:
        self.stack.ok(
            "POST",
            "/api/v1/movements",
            {
                "kind": "loss",
                "from": f"depot:{self.code}",
                "occurred_at": datetime.now(UTC).isoformat(),
                "case_ref": unique("CASE"),
                "lines": [{"serial": serial, "manufacturer": self.maker}],
            },
        )
        return "reported_loss"

    def stocktake_missing(self, present: str) -> str:
        """Count `present` only and close: every other weapon here is missing."""
        stocktake = self.stack.ok("POST", "/api/v1/stocktakes", {"depot": self.code})
        lines = [{"serial": present, "manufacturer": self.maker}]
        self.stack.ok("POST", f"/api/v1/stocktakes/{stocktake['id']}/counts", {"lines": lines})
        self.stack.ok("POST", f"/api/v1/stocktakes/{stocktake['id']}/close")
        return "count_missing"

    def subscribe(self, url: str, **filters: Any) -> dict[str, Any]:
        body = {"url": url, "events": ["discrepancy.opened"], "depots": [self.code], **filters}
        subscription: dict[str, Any] = self.stack.ok("POST", "/api/v1/subscriptions", body)
        return subscription


def new_depot(stack: Stack) -> Depot:
    code, rifle, supplier = unique("D"), unique("AKM"), unique("SUP")
    stack.ok("POST", "/api/v1/depots", {"code": code, "name": code})
    stack.ok(
        "POST",
        "/api/v1/parties",
        {"code": supplier, "name": "Arsenal", "country": "XX", "kind": "supplier"},
    )
    stack.ok("POST", "/api/v1/item-types", {"code": rifle, "category": "weapon", "name": "AKM"})
    return Depot(stack, code, rifle, unique("ARSENAL"), supplier)


def has_stocktakes(stack: Stack) -> bool:
    status, spec = stack.call("GET", "/api/v1/openapi.json")
    return status == 200 and "/api/v1/stocktakes/{stocktake_id}/close" in spec["paths"]


def deliveries(stack: Stack, subscription: dict[str, Any]) -> list[dict[str, Any]]:
    page = stack.ok("GET", f"/api/v1/subscriptions/{subscription['id']}/deliveries")
    items: list[dict[str, Any]] = page["items"]
    return items


def verified(subscription: dict[str, Any], request: Received) -> Any:
    return Webhook(subscription["secret"]).verify(request.body, request.headers)


# --- the tests --------------------------------------------------------------------------------


def test_a_missing_weapon_reaches_the_monitor_as_a_signed_webhook(
    stack: Stack, receiver: Receiver, workers: Workers
) -> None:
    depot = new_depot(stack)
    present, missing = unique("SN"), unique("SN")
    depot.receive([present, missing])
    path = f"/hook/{unique('signed')}"
    subscription = depot.subscribe(receiver.url(path))
    workers.start()

    expected_kind = (
        depot.stocktake_missing(present) if has_stocktakes(stack) else depot.lose(missing)
    )

    requests = wait_for(f"a webhook at {path}", lambda: receiver.at(path))
    event = verified(subscription, requests[0])
    assert event["type"] == "discrepancy.opened"
    assert event["data"]["kind"] == expected_kind and event["data"]["depot"] == depot.code
    assert event["data"]["severity"] == "critical"
    # The same event, under the same id, in the feed for monitors without an endpoint.
    feed = stack.ok("GET", "/api/v1/alerts?limit=1000")["items"]
    assert {"id": requests[0].headers["webhook-id"], **event} in feed
    tampered = requests[0].body.replace(depot.code.encode(), b"D-ELSEWHERE")
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(subscription["secret"]).verify(tampered, requests[0].headers)
    delivered = wait_for("the delivery to be recorded", lambda: deliveries(stack, subscription))
    assert delivered[0]["status"] == "delivered"
    assert [a["status_code"] for a in delivered[0]["attempts"]] == [200]


def test_a_failing_receiver_gets_the_same_webhook_id_until_it_succeeds(
    stack: Stack, receiver: Receiver, workers: Workers
) -> None:
    depot = new_depot(stack)
    serial = unique("SN")
    depot.receive([serial])
    path = f"/hook/{unique('flaky')}"
    receiver.scripts[path] = [500, 503]
    subscription = depot.subscribe(receiver.url(path))
    workers.start()

    depot.lose(serial)

    requests = wait_for("three attempts", lambda: len(receiver.at(path)) >= 3 and receiver.at(path))
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert all(verified(subscription, r)["data"]["kind"] == "reported_loss" for r in requests)

    def settled() -> list[dict[str, Any]] | None:
        found = deliveries(stack, subscription)
        return found if found and found[0]["status"] != "pending" else None

    delivered = wait_for("the delivery to settle", settled)
    assert delivered[0]["status"] == "delivered" and delivered[0]["attempt_count"] == 3
    assert [a["status_code"] for a in delivered[0]["attempts"]] == [500, 503, 200]
    assert delivered[0]["event_id"] == requests[0].headers["webhook-id"]


def test_a_worker_killed_mid_delivery_loses_nothing(
    stack: Stack, receiver: Receiver, workers: Workers
) -> None:
    depot = new_depot(stack)
    serial = unique("SN")
    depot.receive([serial])
    path = f"/hook/{unique('killed')}"
    receiver.scripts[path] = ["hang"]
    subscription = depot.subscribe(receiver.url(path))
    first = workers.start()

    depot.lose(serial)

    wait_for("the first worker to start delivering", lambda: receiver.at(path))
    assert stop(first, signal.SIGKILL) == -signal.SIGKILL
    workers.start()

    requests = wait_for(
        "the retry after the lease", lambda: receiver.at(path)[1:] and receiver.at(path)
    )
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
    verified(subscription, requests[1])
    delivered = wait_for(
        "the delivery to be recorded",
        lambda: [d for d in deliveries(stack, subscription) if d["status"] == "delivered"],
    )
    # The killed attempt never got an answer to record; the claim still counted it.
    assert delivered[0]["attempt_count"] == 2
    assert [a["status_code"] for a in delivered[0]["attempts"]] == [200]


def test_410_gone_unsubscribes_at_once(stack: Stack, receiver: Receiver, workers: Workers) -> None:
    depot = new_depot(stack)
    serials = [unique("SN"), unique("SN")]
    depot.receive(serials)
    path = f"/hook/{unique('gone')}"
    receiver.scripts[path] = [410]
    subscription = depot.subscribe(receiver.url(path))
    workers.start()

    depot.lose(serials[0])

    def disabled() -> Any:
        found = stack.ok("GET", f"/api/v1/subscriptions/{subscription['id']}")
        return found if found["disabled_at"] else None

    assert "410" in wait_for("the subscription to be disabled", disabled)["disabled_reason"]
    depot.lose(serials[1])
    time.sleep(1)  # the worker polls every 0.1 s: nothing more may arrive
    assert len(receiver.at(path)) == 1
    assert [d["status"] for d in deliveries(stack, subscription)] == ["failed"]


def test_sigterm_stops_the_worker_cleanly(stack: Stack, workers: Workers) -> None:
    worker = workers.start()
    wait_for("the worker to start", lambda: "worker started" in workers.log(worker))
    assert stop(worker, signal.SIGTERM) == 0, workers.log(worker)
    assert "worker stopped" in workers.log(worker)


def test_compose_runs_the_worker_as_the_app_role_with_the_signing_key() -> None:
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker, api = services["worker"], services["api"]
    assert worker["command"] == "inventory worker"
    assert worker["environment"]["INVENTORY_DATABASE_URL"].startswith(
        "postgresql+psycopg://inventory_app:"
    )
    assert (
        worker["environment"]["INVENTORY_SIGNING_KEY"]
        == (api["environment"]["INVENTORY_SIGNING_KEY"])
    )
    assert set(worker["volumes"]) == set(api["volumes"])
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
