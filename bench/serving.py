"""Which server should `inventory serve` run? Every candidate is started at once against one scratch
PostgreSQL database, each on its own loopback port, and the three measurements run round-robin
over them, round after round, so a loaded machine weighs on all of them alike:

  slowloris   50 sockets that send one header line every 2 s; meanwhile /healthz is asked in a
              loop for `--window` seconds (each with a 5 s limit): p50, p99, max, failures
  big         a 10,000-line receipt in flight; meanwhile GET /api/v1/depots every 0.2 s:
              the slowest answer, minus the idle answer measured just before
  wrk         `wrk -t2 -c8 -d<n>s` on GET /api/v1/depots: requests per second

    .venv/bin/python bench/serving.py --rounds 3            # all candidates
    .venv/bin/python bench/serving.py --only sync,granian   # some

Prints one table per measurement (median over rounds) and the ratio to today's `sync` model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402
from scratch import scratch_database  # noqa: E402

BIN = Path(sys.executable).parent
APP = "inventory:create_app()"
HOOKS = ["--config", "python:inventory.gunicorn_hooks"]

CANDIDATES: dict[str, list[str]] = {
    # gunicorn as `inventory serve` ran it before this issue: 2 sync workers
    "sync": [str(BIN / "gunicorn"), "--workers", "2", *HOOKS, APP],
    "gthread8": [str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "8", *HOOKS, APP],
    "gthread32": [
        str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "32", *HOOKS, APP
    ],
    "granian": [
        str(BIN / "granian"), "--interface", "wsgi", "--workers", "2", "--blocking-threads", "8",
        "--factory", "inventory:create_app",
    ],
    "granian2": [
        str(BIN / "granian"), "--interface", "wsgi", "--workers", "2", "--blocking-threads", "2",
        "--factory", "inventory:create_app",
    ],
    "granian4": [
        str(BIN / "granian"), "--interface", "wsgi", "--workers", "2", "--blocking-threads", "4",
        "--factory", "inventory:create_app",
    ],
    # needs `pip install waitress` (not a dependency)
    "waitress": [str(BIN / "waitress-serve"), "--threads", "8", "--call", "inventory:create_app"],
    # what `inventory serve` runs now (its defaults)
    "serve": [str(BIN / "inventory"), "serve"],
}


def _bind(name: str, port: int) -> list[str]:
    if name.startswith(("sync", "gthread")):
        return ["--bind", f"127.0.0.1:{port}"]
    if name.startswith("granian"):
        return ["--host", "127.0.0.1", "--port", str(port)]
    if name == "waitress":
        return ["--listen", f"127.0.0.1:{port}"]
    return ["--host", "127.0.0.1", "--port", str(port)]


@dataclass
class Candidate:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Any = None
    results: dict[str, list[float]] = field(default_factory=dict)

    def start(self, url: str) -> None:
        env = {**os.environ, "INVENTORY_DATABASE_URL": url, "INVENTORY_LOG_LEVEL": "WARNING"}
        command = CANDIDATES[self.name]
        self.log = tempfile.NamedTemporaryFile(prefix=f"serving-{self.name}-", suffix=".log")
        self.process = subprocess.Popen(
            [*command[:-1], *_bind(self.name, self.port), command[-1]]
            if self.name != "serve"
            else [*command, *_bind(self.name, self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if load.request(self.port, "GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start: {Path(self.log.name).read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()

    def add(self, key: str, value: float) -> None:
        self.results.setdefault(key, []).append(value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed_get(port: int, path: str, token: str | None = None, limit: float = 5.0) -> float:
    """Seconds for one GET on a fresh connection; `limit` plus one if it failed or timed out."""
    headers = f"Authorization: Bearer {token}\r\n" if token else ""
    began = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        if not data.startswith(b"HTTP/1.1 200") and not data.startswith(b"HTTP/1.0 200"):
            return limit + 1
    except OSError:
        return limit + 1
    return time.perf_counter() - began


def slowloris(port: int, sockets: int, window: float) -> dict[str, float]:
    """`sockets` connections that never finish their headers, and /healthz asked meanwhile."""
    stop = threading.Event()
    opened: list[socket.socket] = []
    for _ in range(sockets):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            opened.append(sock)
        except OSError:
            pass

    def drip() -> None:
        n = 0
        while not stop.wait(2):
            n += 1
            for sock in opened:
                try:
                    sock.sendall(f"X-Drip-{n}: a\r\n".encode())
                except OSError:
                    pass

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    time.sleep(1)
    latencies = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        latencies.append(timed_get(port, "/healthz"))
        time.sleep(0.05)
    stop.set()
    dripper.join()
    for sock in opened:
        sock.close()
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max": latencies[-1],
        "failed": float(sum(1 for x in latencies if x > 5)),
    }


def slow_bodies(port: int, token: str, sockets: int, window: float) -> dict[str, float]:
    """`sockets` POSTs whose headers arrive at once and whose body drips a byte every 2 s (the
    view is reached, then waits on the body); /healthz asked meanwhile."""
    stop = threading.Event()
    opened: list[socket.socket] = []
    for _ in range(sockets):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(
                f"POST /api/v1/movements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
                "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[".encode()
            )
            opened.append(sock)
        except OSError:
            pass

    def drip() -> None:
        while not stop.wait(2):
            for sock in opened:
                try:
                    sock.sendall(b" ")
                except OSError:
                    pass

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    time.sleep(1)
    latencies = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        latencies.append(timed_get(port, "/healthz"))
        time.sleep(0.05)
    stop.set()
    dripper.join()
    for sock in opened:
        sock.close()
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "failed": float(sum(1 for x in latencies if x > 5)),
    }


def big_receipt(port: int, token: str, lines: int, parallel: int = 1) -> dict[str, float]:
    """GET /api/v1/depots every 0.2 s while `parallel` receipts of `lines` lines are posted."""
    idle = statistics.median(timed_get(port, "/api/v1/depots", token) for _ in range(5))
    outcomes: list[dict[str, Any]] = [{} for _ in range(parallel)]

    def post(outcome: dict[str, Any]) -> None:
        tag = uuid.uuid4().hex[:8]
        body = {
            "kind": "receipt",
            "from": "party:SUP",
            "to": "depot:D00",
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            "lines": [
                {"weapon": {"serial": f"R{tag}-{n}", "manufacturer": "M", "item_type": "AKM"}}
                for n in range(lines)
            ],
        }
        outcome["status"], _body, outcome["seconds"] = load.request(
            port, "POST", "/api/v1/movements", body, token
        )

    posters = [threading.Thread(target=post, args=(o,)) for o in outcomes]
    for poster in posters:
        poster.start()
    time.sleep(0.5)  # the bodies are sent and the server is working on them
    during = []
    while any(poster.is_alive() for poster in posters):
        during.append(timed_get(port, "/api/v1/depots", token, limit=30))
        time.sleep(0.2)
    for poster in posters:
        poster.join()
    if any(outcome.get("status") != 201 for outcome in outcomes):
        raise RuntimeError(f"receipt failed: {outcomes}")
    return {
        "receipt_s": max(outcome["seconds"] for outcome in outcomes),
        "idle_get": idle,
        "worst_get": max(during) if during else idle,
        "delay": (max(during) if during else idle) - idle,
        "gets": float(len(during)),
    }


def wrk(port: int, token: str, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "-H", f"Authorization: Bearer {token}",
         f"http://127.0.0.1:{port}/api/v1/depots"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "non2xx": float(errors.group(1)) if errors else 0.0}


def setup(url: str) -> str:
    from inventory.db.engine import make_engine, make_session_factory
    from inventory.domain.actors import operator
    from inventory.services import reference, tokens
    from inventory.services.unit_of_work import Context, run_write
    from inventory.settings import Settings

    engine = make_engine(url)
    session = make_session_factory(engine)()
    context = Context(actor=operator("bench"), settings=Settings(database_url=url))

    def write(use_case: Any) -> Any:
        return run_write(session, context, use_case, lambda result, _uow: result).body

    write(lambda uow: reference.create_party(uow, "SUP", "Supplier", "XX", "supplier"))
    write(lambda uow: reference.create_item_type(uow, code="AKM", category="weapon", name="AKM"))
    for d in range(20):
        write(lambda uow, d=d: reference.create_depot(uow, code=f"D{d:02d}", name=f"Depot {d}"))
    secret = str(write(lambda uow: tokens.create_token(uow, "bench", "admin", [])).secret)
    session.close()
    engine.dispose()
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", default=",".join(CANDIDATES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--parallel", type=int, default=1, help="big receipts at once")
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated: slowloris,slowbody,big,wrk")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    names = [n for n in args.only.split(",") if n]
    with scratch_database(args.server, "serving") as url:
        token = setup(url)
        candidates = [Candidate(name, free_port()) for name in names]
        try:
            for candidate in candidates:
                candidate.start(url)
            for candidate in candidates:
                candidate.wait_ready()
            for round_no in range(args.rounds):
                for candidate in candidates:
                    port = candidate.port
                    if "slowloris" not in skip:
                        for k, v in slowloris(port, args.sockets, args.window).items():
                            candidate.add(f"slowloris_{k}", v)
                    if "slowbody" not in skip:
                        for k, v in slow_bodies(port, token, args.sockets, args.window).items():
                            candidate.add(f"slowbody_{k}", v)
                    if "big" not in skip:
                        for k, v in big_receipt(port, token, args.lines, args.parallel).items():
                            candidate.add(f"big_{k}", v)
                    if "wrk" not in skip:
                        for k, v in wrk(port, token, args.wrk_seconds).items():
                            candidate.add(f"wrk_{k}", v)
                    print(f"round {round_no + 1} {candidate.name}: "
                          + json.dumps({k: round(v[-1], 3) for k, v in candidate.results.items()}),
                          flush=True)
        finally:
            for candidate in candidates:
                candidate.stop()
    keys = sorted({k for c in candidates for k in c.results})
    base = next((c for c in candidates if c.name == "sync"), None)
    print(f"\nmedian of {args.rounds} rounds; load {os.getloadavg()}")
    print(f"{'metric':<22}" + "".join(f"{c.name:>16}" for c in candidates))
    for key in keys:
        row = f"{key:<22}"
        for c in candidates:
            value = statistics.median(c.results.get(key, [float('nan')]))
            cell = f"{value:.3f}"
            if base is not None and c is not base and key in base.results:
                ref = statistics.median(base.results[key])
                if ref:
                    cell += f" ({value / ref:.2f}x)"
            row += f"{cell:>16}"
        print(row)


if __name__ == "__main__":
    main()
