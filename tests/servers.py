"""Real servers for end-to-end tests: `inventory serve` (granian) started as a subprocess on a
free port against a given database, spoken to over plain HTTP, and stopped or killed with -9.

    with Server(database_url, tmp_path, workers=4) as server:
        token = issue_token(database_url, "admin")
        reply = server.request("GET", "/api/v1/depots", token=token)
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from inventory.db.engine import make_engine, make_session_factory
from inventory.domain.actors import operator
from inventory.services import tokens
from inventory.services.unit_of_work import Context, run_write
from inventory.settings import Settings

INVENTORY = Path(sys.executable).parent / "inventory"
SOURCE = Path(__file__).resolve().parents[1]  # the server runs the same code as the tests


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Server:
    """One server with `workers` processes, in its own process group so a kill takes all."""

    database_url: str
    instance_dir: Path
    workers: int = 4
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def metrics_dir(self) -> Path:
        """Where the server's processes write their Prometheus counters."""
        return self.instance_dir / f"metrics-{self.port}"

    @property
    def log_path(self) -> Path:
        return self.instance_dir / f"gunicorn-{self.port}.log"

    def start(self, timeout: float = 30) -> Server:
        """Start serving and return once `/healthz` answers 200."""
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")])
            ),
            "INVENTORY_DATABASE_URL": self.database_url,
            "INVENTORY_INSTANCE_DIR": str(self.instance_dir),
            "INVENTORY_SIGNING_KEY": str(self.instance_dir / "audit-signing-key.pem"),
            "INVENTORY_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }
        self.metrics_dir.mkdir(exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(INVENTORY), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
                + ["--workers", str(self.workers)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log()}")
            try:
                if self.request("GET", "/healthz", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer within {timeout}s:\n{self.log()}")

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Reply:
        """One request on a fresh connection (gunicorn's sync workers do not keep connections)."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def stop(self, timeout: float = 30) -> None:
        """Shut down gracefully (SIGTERM: workers finish their requests)."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """kill -9 the master and every worker at once, as a power cut would."""
        self._signal(signal.SIGKILL, 30)

    def _signal(self, signum: int, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            return
        self.process.wait(timeout)
        if signum == signal.SIGKILL:
            _wait_for_group_to_die(self.process.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _wait_for_group_to_die(pgid: int, timeout: float = 10) -> None:
    """Workers get the SIGKILL too; wait until none of them is still running (zombies left to
    init hold no database connection)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _live_members(pgid):
        time.sleep(0.05)


def _live_members(pgid: int) -> list[int]:
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...; comm may hold spaces, so split after its ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            live.append(int(stat.parent.name))
    return live


def issue_token(database_url: str, role: str, depots: list[str] | None = None) -> str:
    """A bearer token written straight into the database, as `inventory tokens create` does."""
    engine = make_engine(database_url)
    session = make_session_factory(engine)()
    try:
        outcome = run_write(
            session,
            Context(actor=operator("tests"), settings=Settings(database_url=database_url)),
            lambda uow: tokens.create_token(uow, f"{role} for e2e", role, depots or []),
            lambda issued, _uow: issued.secret,
        )
        return str(outcome.body)
    finally:
        session.close()
        engine.dispose()
