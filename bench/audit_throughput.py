"""How much the audit chain's serialisation point costs write throughput.

Creates depots through `run_write` from several worker processes (as gunicorn workers would), once
with the audit append and once with `audit_log.append` replaced by a stub, everything else equal,
and prints writes per second for each and their ratio. Runs on a scratch database it creates and
drops (PostgreSQL) or a scratch SQLite file.

    .venv/bin/python bench/audit_throughput.py                      # PostgreSQL at 127.0.0.1
    .venv/bin/python bench/audit_throughput.py --writes 4000 --workers 1,8,16 --rounds 3
    .venv/bin/python bench/audit_throughput.py --server sqlite       # the embedded default

Not a test: numbers depend on the machine, above all on how long the disk takes to flush a commit.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import scratch_database  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _worker(url: str, count: int, audited: bool, start: Any, results: Any) -> None:
    from inventory.db.engine import make_engine, make_session_factory
    from inventory.domain.actors import operator
    from inventory.services import reference, unit_of_work
    from inventory.services.unit_of_work import Context, run_write

    if not audited:
        # Same transaction, same use case, no chain: the append (and its head lock) is skipped.
        unit_of_work.audit_log.append = lambda *_args, **_kwargs: 0  # type: ignore[assignment]
    engine = make_engine(url)
    session = make_session_factory(engine)()
    context = Context(actor=operator("bench"))
    session.execute(text("SELECT 1"))  # connect before the clock starts
    session.rollback()
    start.wait()
    began = time.perf_counter()
    for _ in range(count):
        code = f"B-{uuid.uuid4().hex[:12].upper()}"
        use_case = functools.partial(reference.create_depot, code=code, name=code)
        run_write(session, context, use_case, lambda _made, _uow: None)
    results.put((began, time.perf_counter()))
    session.close()
    engine.dispose()


def measure(url: str, writes: int, workers: int, audited: bool) -> float:
    """Writes per second for `writes` depot creations spread over `workers` processes."""
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(workers), spawn.Queue()
    share = [writes // workers + (1 if i < writes % workers else 0) for i in range(workers)]
    processes = [
        spawn.Process(target=_worker, args=(url, n, audited, start, results)) for n in share
    ]
    for process in processes:
        process.start()
    spans = [results.get() for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a worker failed with exit code {process.exitcode}")
    return writes / (max(end for _, end in spans) - min(began for began, _ in spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL URL, or 'sqlite'")
    parser.add_argument("--writes", type=int, default=2000, help="depot creations per run")
    parser.add_argument("--workers", default="1,4,8,16", help="process counts to try")
    parser.add_argument("--rounds", type=int, default=3, help="runs per setting; median kept")
    args = parser.parse_args()
    with scratch_database(args.server) as url:
        engine = create_engine(url)
        with engine.connect() as conn:
            version = conn.exec_driver_sql(
                "SELECT sqlite_version()" if "sqlite" in url else "SHOW server_version"
            ).scalar()
            settings = (
                ""
                if "sqlite" in url
                else ", ".join(
                    f"{name}={conn.exec_driver_sql(f'SHOW {name}').scalar()}"
                    for name in ("synchronous_commit", "fsync", "wal_sync_method")
                )
            )
        engine.dispose()
        print(f"{make_url(url).get_backend_name()} {version} {settings}")
        print(f"{'workers':>7} {'with audit/s':>13} {'without/s':>10} {'ratio':>6}")
        for workers in (int(n) for n in args.workers.split(",")):
            with_audit: list[float] = []
            without: list[float] = []
            for round_ in range(args.rounds):
                # Alternate which goes first so a warming cache favours neither.
                order = [True, False] if round_ % 2 == 0 else [False, True]
                for audited in order:
                    rate = measure(url, args.writes, workers, audited)
                    (with_audit if audited else without).append(rate)
            a, b = statistics.median(with_audit), statistics.median(without)
            print(f"{workers:>7} {a:>13.0f} {b:>10.0f} {a / b:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
