"""Webhook isolation: deliveries per second to 20 healthy receivers while a 21st endpoint is a
tarpit (accepts, then answers one header line a second, never finishing).

A scratch PostgreSQL database; every event goes to all 21 subscriptions; the worker loop runs in
this process against loopback receivers with the real HTTP client. Run once with the pool
(Settings.webhook_concurrency, default 8) and once with one delivery at a time (what the worker
did before: every tarpit attempt held all the others for the whole timeout).

    .venv/bin/python bench/webhooks.py --events 100 --timeout 10
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import scratch_database  # noqa: E402
from sqlalchemy import text  # noqa: E402

from inventory.db.engine import make_engine, make_session_factory  # noqa: E402
from inventory.domain.actors import operator  # noqa: E402
from inventory.services import outbox, subscriptions  # noqa: E402
from inventory.services.unit_of_work import Context, run_write  # noqa: E402
from inventory.settings import Settings  # noqa: E402
from inventory.worker import Worker  # noqa: E402

HEALTHY = 20


class Healthy(BaseHTTPRequestHandler):
    arrivals: list[float] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with Healthy.lock:
            Healthy.arrivals.append(time.monotonic())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def tarpit() -> tuple[int, threading.Event]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                n = 0
                while not stop.wait(1):
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
    return int(listener.getsockname()[1]), stop


def run(
    server: str, events: int, concurrency: int, timeout: float, limit: float
) -> dict[str, float]:
    Healthy.arrivals = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    pit_port, pit_stop = tarpit()
    with scratch_database(server, "webhooks") as url:
        settings = Settings(
            database_url=url,
            webhook_allow_private=True,
            webhook_timeout=timeout,
            webhook_concurrency=concurrency,
            log_level="WARNING",
        )
        engine = make_engine(url)
        session = make_session_factory(engine)()
        context = Context(actor=operator("bench"), settings=settings)

        def write(use_case: Any) -> Any:
            def recorded(uow: Any) -> Any:
                result = use_case(uow)
                if uow.audit_entry is None:
                    uow.record("bench.setup", "bench", {})
                return result

            return run_write(session, context, recorded, lambda r, _u: r).body

        port = receiver.server_address[1]
        write(lambda uow: subscriptions.create_subscription(
            uow, f"http://127.0.0.1:{pit_port}/tarpit", ["transfer.received"]))
        for n in range(HEALTHY):
            write(lambda uow, n=n: subscriptions.create_subscription(
                uow, f"http://127.0.0.1:{port}/h{n}", ["transfer.received"]))
        for n in range(events):
            write(lambda uow, n=n: outbox.publish(uow, "transfer.received", {"n": n}))
        worker = Worker(replace(settings), session=session)
        began = time.monotonic()
        expected = events * HEALTHY
        while len(Healthy.arrivals) < expected and time.monotonic() - began < limit:
            if not worker.run_pass():
                worker.settle(wait_for=0.05)
        took = time.monotonic() - began
        got = len(Healthy.arrivals)
        gaps = [b - a for a, b in zip(Healthy.arrivals, Healthy.arrivals[1:], strict=False)]
        worker.stopping.set()
        pit_stop.set()
        worker.finish_in_flight()
        failed_healthy = session.execute(
            text(
                "SELECT a.error, count(*) FROM delivery_attempts a "
                "JOIN deliveries d ON d.id = a.delivery_id "
                "JOIN subscriptions s ON s.id = d.subscription_id "
                "WHERE s.url NOT LIKE '%/tarpit' AND a.error IS NOT NULL GROUP BY a.error"
            )
        ).all()
        session.rollback()
        worker.pool.shutdown()
        session.close()
        engine.dispose()
    receiver.shutdown()
    receiver.server_close()
    return {
        "delivered": got,
        "expected": expected,
        "seconds": round(took, 2),
        "per_second": round(got / took, 1),
        "longest_gap_s": round(max(gaps), 2) if gaps else 0.0,
        "median_gap_ms": round(statistics.median(gaps) * 1000, 2) if gaps else 0.0,
        "healthy_failures": [tuple(row) for row in failed_healthy],  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=10.0, help="webhook_timeout, seconds")
    parser.add_argument("--limit", type=float, default=120.0, help="give up after, seconds")
    args = parser.parse_args()
    for concurrency in (Settings().webhook_concurrency, 1):
        result = run(args.server, args.events, concurrency, args.timeout, args.limit)
        print(f"concurrency {concurrency}: {result}", flush=True)


if __name__ == "__main__":
    main()
