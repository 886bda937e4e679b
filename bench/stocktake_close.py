"""How long a large stocktake takes: counting 100,000 serials and closing the stocktake.

Registers `--weapons` weapons in one depot (receipts of 10,000 lines), opens a stocktake, posts
the count in batches of 10,000 serials (leaving `--missing` weapons uncounted and adding
`--unknown` serials that match nothing), closes it, and prints the seconds each phase took. The
use cases are called as the API calls them (`run_write`), without HTTP and JSON. Runs on a
scratch database it creates and drops (PostgreSQL) or a scratch SQLite file.

    .venv/bin/python bench/stocktake_close.py                      # PostgreSQL at 127.0.0.1
    .venv/bin/python bench/stocktake_close.py --server sqlite      # the embedded default
    .venv/bin/python bench/stocktake_close.py --weapons 20000 --missing 1000

Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import scratch_database  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL URL, or 'sqlite'")
    parser.add_argument("--weapons", type=int, default=100_000)
    parser.add_argument("--missing", type=int, default=100)
    parser.add_argument("--unknown", type=int, default=100)
    args = parser.parse_args()
    with scratch_database(args.server) as url:
        run(url, args.weapons, args.missing, args.unknown)


def run(url: str, weapons: int, missing: int, unknown: int) -> None:
    from inventory.db.engine import make_engine, make_session_factory
    from inventory.domain.actors import operator
    from inventory.domain.movements import Kind
    from inventory.services import ledger, reference, stocktake_close, stocktakes
    from inventory.services.ledger import MovementRequest
    from inventory.services.lines import WeaponRef, WeaponRegistration
    from inventory.services.unit_of_work import Context, UnitOfWork, run_write

    engine = make_engine(url)
    session = make_session_factory(engine)()
    context = Context(actor=operator("bench"))

    def write(use_case: Callable[[UnitOfWork], Any]) -> Any:
        return run_write(session, context, use_case, lambda result, _uow: result).body

    write(lambda uow: reference.create_depot(uow, "D-BENCH", "Bench depot"))
    write(lambda uow: reference.create_party(uow, "SUP", "Supplier", "XX", "supplier"))
    write(lambda uow: reference.create_item_type(uow, code="AKM", category="weapon", name="AKM"))
    serials = [f"AK-{n:07d}" for n in range(weapons)]
    began = time.perf_counter()
    for start in range(0, weapons, BATCH):
        lines: list[Any] = [
            WeaponRegistration("ARSENAL", "AKM", s) for s in serials[start : start + BATCH]
        ]

        def receive(uow: UnitOfWork, lines: list[Any] = lines) -> Any:
            request = MovementRequest(
                Kind.RECEIPT, uow.now - timedelta(minutes=1), lines, "party:SUP", "depot:D-BENCH"
            )
            return ledger.post_movement(uow, request)

        write(receive)
    print(f"receipts of {weapons:,} weapons: {time.perf_counter() - began:.1f} s")

    stocktake = write(lambda uow: stocktakes.open_stocktake(uow, "D-BENCH")).id
    scanned = serials[missing:] + [f"NOSUCH-{uuid.uuid4().hex[:8]}" for _ in range(unknown)]
    began = time.perf_counter()
    for start in range(0, len(scanned), BATCH):
        batch = [WeaponRef(serial=s) for s in scanned[start : start + BATCH]]
        write(lambda uow, batch=batch: stocktakes.add_counts(uow, stocktake, batch))
    counting = time.perf_counter() - began
    print(f"count of {len(scanned):,} serials in batches of {BATCH:,}: {counting:.1f} s")

    began = time.perf_counter()
    result = write(lambda uow: stocktake_close.close_stocktake(uow, stocktake))
    closing = time.perf_counter() - began
    print(
        f"close: {closing:.2f} s (expected {result.expected:,}, counted {result.counted:,}, "
        f"missing {len(result.missing):,}, unexpected {len(result.unexpected):,}, "
        f"verified {result.verified:,}, discrepancies opened {len(result.discrepancies):,})"
    )
    session.close()
    engine.dispose()


if __name__ == "__main__":
    main()
