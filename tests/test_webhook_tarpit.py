"""End to end: a tarpit endpoint (answers one header line a second, never finishing) beside a
healthy receiver, with the real `inventory worker`. The healthy one gets every alert within a
few seconds; the tarpit's attempts end at the total deadline and are recorded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from . import test_alerts_worker as e2e
from .conftest import unique
from .test_alerts_worker import Receiver, Stack, Workers, deliveries, new_depot, verified, wait_for

# The end-to-end fixtures (a real API, workers, a receiver), for this module's own stack.
stack, receiver, workers = e2e.stack, e2e.receiver, e2e.workers

TIMEOUT = 4.0  # the stack's INVENTORY_WEBHOOK_TIMEOUT


@pytest.fixture
def tarpit() -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                n = 0
                while not stop.wait(1.0):
                    n += 1
                    conn.sendall(f"X-Drip-{n}: a\r\n".encode())
            except OSError:
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/tarpit"
    stop.set()
    listener.close()


def test_a_tarpit_does_not_hold_a_healthy_receivers_alerts(
    stack: Stack, receiver: Receiver, workers: Workers, tarpit: str
) -> None:
    depot = new_depot(stack)
    serials = [unique("SN") for _ in range(3)]
    depot.receive(serials)
    stuck = depot.subscribe(tarpit)
    path = f"/hook/{unique('healthy')}"
    healthy = depot.subscribe(receiver.url(path))
    workers.start()
    time.sleep(1)  # the worker is up

    began = time.monotonic()
    for serial in serials:
        depot.lose(serial)
    arrived = wait_for("three alerts at the healthy receiver", lambda: len(receiver.at(path)) >= 3)
    took = time.monotonic() - began
    # Queued behind the tarpit one at a time this took 3 x 4 s or more.
    assert arrived and took < 2 * TIMEOUT, took
    assert {verified(healthy, r)["data"]["depot"] for r in receiver.at(path)} == {depot.code}

    def timed_out() -> list[dict[str, object]]:
        return [
            a
            for d in deliveries(stack, stuck)
            for a in d["attempts"]
            if "timed out" in str(a["error"])
        ]

    attempts = wait_for("the tarpit's attempt to be recorded", timed_out)
    # the whole attempt is bounded, though every read got a byte within 1 s
    assert all(TIMEOUT * 1000 * 0.9 <= int(str(a["duration_ms"])) < TIMEOUT * 1000 * 1.5
               for a in attempts), attempts
