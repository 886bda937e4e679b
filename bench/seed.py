"""Datasets for `make bench`: a scratch database, a register of a million weapons written with
set-based SQL (PostgreSQL) or through the use cases (SQLite, smaller), and a long audit chain.

Weapon n has the serial AK-<n, 7 digits or more> (and on PostgreSQL the id
00000000-0000-4000-8000-<n in hex>); `weapon_ids` reads the ids of given weapons back for the load
scripts. Depot D00 holds the first
`big_depot` weapons (the stocktake's subject); the rest are spread over the other depots. Each
depot has one unit, U<nn>.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, text

from inventory.db.engine import make_engine, make_session_factory
from inventory.domain.actors import operator
from inventory.domain.audit_chain import canonical_bytes, chain_hash
from inventory.services import audit_log, reference, tokens
from inventory.services.unit_of_work import Context, UnitOfWork, run_write


@dataclass(frozen=True)
class Scale:
    weapons: int
    depots: int
    lots: int
    big_depot: int
    audit_records: int


def weapon_id(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012x}")


def depot_of_weapon(n: int, scale: Scale) -> int:
    """The depot index weapon n (1-based) is received at."""
    if n <= scale.big_depot:
        return 0
    return 1 + (n - scale.big_depot - 1) % (scale.depots - 1)


def _writer(url: str) -> tuple[Engine, Callable[[Callable[[UnitOfWork], Any]], Any]]:
    engine = make_engine(url)
    session = make_session_factory(engine)()
    context = Context(actor=operator("bench"))

    def write(use_case: Callable[[UnitOfWork], Any]) -> Any:
        return run_write(session, context, use_case, lambda result, _uow: result).body

    return engine, write


def reference_data(url: str, scale: Scale) -> str:
    """Depots, units, the supplier and item types through the use cases; returns an admin secret."""
    engine, write = _writer(url)
    write(lambda uow: reference.create_party(uow, "SUP", "Supplier", "XX", "supplier"))
    write(lambda uow: reference.create_item_type(uow, code="AKM", category="weapon", name="AKM"))
    write(
        lambda uow: reference.create_item_type(
            uow, code="762", category="ammunition", name="7.62x39"
        )
    )
    for d in range(scale.depots):
        depot, unit = f"D{d:02d}", f"U{d:02d}"
        write(functools.partial(reference.create_depot, code=depot, name=f"Depot {d}"))
        write(functools.partial(reference.create_unit, code=unit, name=f"Unit {d}", depot=depot))
    secret = write(lambda uow: tokens.create_token(uow, "bench", "admin", [])).secret
    engine.dispose()
    return str(secret)


# One receipt per depot from the supplier, a month ago; weapons and lots straight into the ledger
# and its projection, with the same ids, lines and holdings a posted receipt writes.
_PG_SEED = [
    """
    CREATE TEMP TABLE bench_depot AS
    SELECT (regexp_replace(code, '\\D', '', 'g'))::int AS d, id AS holder_id
    FROM holders WHERE kind = 'depot'
    """,
    """
    INSERT INTO movements (id, kind, from_holder_id, to_holder_id, occurred_at, recorded_at,
        actor, document_ref, late_entry)
    SELECT gen_random_uuid(), 'receipt', (SELECT id FROM holders WHERE kind = 'party'),
        holder_id, now() - interval '30 days', now() - interval '30 days', 'bench',
        'SEED-' || d, false
    FROM bench_depot ORDER BY d
    """,
    """
    CREATE TEMP TABLE bench_receipt AS
    SELECT b.d, b.holder_id, m.seq, m.id FROM bench_depot b
    JOIN movements m ON m.to_holder_id = b.holder_id AND m.kind = 'receipt'
    """,
    """
    CREATE TEMP TABLE bench_weapon AS
    SELECT n,
        ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid AS id,
        CASE WHEN n <= :big THEN 0 ELSE 1 + (n - :big - 1) % (:depots - 1) END AS d
    FROM generate_series(1, :weapons) AS n
    """,
    """
    INSERT INTO weapons (id, item_type_id, manufacturer, serial, marking_status, origin,
        year_of_manufacture, registered_by)
    SELECT w.id, (SELECT id FROM item_types WHERE code = 'AKM'), 'Kalashnikov',
        'AK-' || lpad(w.n::text, greatest(7, length(w.n::text)), '0'), 'intact', 'procured',
        1970 + w.n % 50, r.seq
    FROM bench_weapon w JOIN bench_receipt r USING (d)
    """,
    """
    INSERT INTO weapon_holdings (weapon_id, holder_id, movement_seq)
    SELECT w.id, r.holder_id, r.seq FROM bench_weapon w JOIN bench_receipt r USING (d)
    """,
    """
    INSERT INTO movement_lines (movement_seq, line_no, weapon_id, quantity, registers)
    SELECT r.seq, row_number() OVER (PARTITION BY w.d ORDER BY w.n) - 1, w.id, 1, true
    FROM bench_weapon w JOIN bench_receipt r USING (d)
    """,
    "CREATE TEMP TABLE bench_count AS SELECT d, count(*) AS weapons FROM bench_weapon GROUP BY d",
    # The report's counters (services/holder_counts.py): per depot, and all fresh since receipt.
    """
    INSERT INTO holder_weapon_counts (holder_id, lost, weapons)
    SELECT r.holder_id, false, c.weapons FROM bench_count c JOIN bench_receipt r USING (d)
    """,
    """
    INSERT INTO in_store_freshness (holder_id, fresh_since, weapons)
    SELECT r.holder_id, m.recorded_at, c.weapons FROM bench_count c JOIN bench_receipt r USING (d)
    JOIN movements m ON m.seq = r.seq
    """,
    """
    CREATE TEMP TABLE bench_lot AS
    SELECT m, ('00000000-0000-4000-9000-' || lpad(to_hex(m), 12, '0'))::uuid AS id,
        (m - 1) % :depots AS d
    FROM generate_series(1, :lots) AS m
    """,
    """
    INSERT INTO lots (id, item_type_id, lot_number, manufacturer, year_of_manufacture,
        registered_by)
    SELECT l.id, (SELECT id FROM item_types WHERE code = '762'), 'L-' || l.m, 'Factory 10',
        1990 + l.m % 30, r.seq
    FROM bench_lot l JOIN bench_receipt r USING (d)
    """,
    """
    INSERT INTO lot_holdings (lot_id, holder_id, quantity)
    SELECT l.id, r.holder_id, 10000 FROM bench_lot l JOIN bench_receipt r USING (d)
    """,
    """
    INSERT INTO movement_lines (movement_seq, line_no, lot_id, quantity, registers)
    SELECT r.seq,
        coalesce(c.weapons, 0) + row_number() OVER (PARTITION BY l.d ORDER BY l.m) - 1,
        l.id, 10000, true
    FROM bench_lot l JOIN bench_receipt r USING (d)
    LEFT JOIN bench_count c USING (d)
    """,
]


# The big tables' indexes other than primary keys (and the unique constraints they back).
_SECONDARY_INDEXES = """
SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
    c.conname
FROM pg_index i
LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'u'
WHERE i.indrelid IN ('weapons'::regclass, 'weapon_holdings'::regclass,
    'movement_lines'::regclass)
    AND NOT i.indisprimary
ORDER BY 1, 2
"""


def seed_postgres(url: str, scale: Scale) -> dict[str, float]:
    """Write the register with set-based SQL and append one audit record per receipt through
    `audit_log.append`; returns seconds per phase."""
    timings: dict[str, float] = {}
    began = time.perf_counter()
    engine = make_engine(url)
    session = make_session_factory(engine)()
    params = {
        "big": scale.big_depot,
        "depots": scale.depots,
        "weapons": scale.weapons,
        "lots": scale.lots,
    }
    # A bulk load as pg_restore does it: no per-row foreign-key triggers (the rows are made from
    # the same ids; check_consistency holds them to the ledger) and the secondary indexes built
    # once after the load instead of row by row (notes/20-counters.md has the figures).
    session.execute(text("SET LOCAL session_replication_role = replica"))
    session.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
    indexes = session.execute(text(_SECONDARY_INDEXES)).all()
    for table, index, _, constraint in indexes:
        if constraint:
            session.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}"))
        else:
            session.execute(text(f"DROP INDEX {index}"))
    for statement in _PG_SEED:
        session.execute(text(statement), params)
    for table, index, definition, constraint in indexes:
        session.execute(text(definition))
        if constraint:
            session.execute(
                text(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} UNIQUE USING INDEX {index}")
            )
    session.execute(text("SET LOCAL session_replication_role = origin"))
    receipts = session.execute(
        text(
            "SELECT r.d, r.id, "
            "(SELECT count(*) FROM movement_lines l WHERE l.movement_seq = r.seq) "
            "FROM bench_receipt r ORDER BY r.d"
        )
    ).all()
    now = session.scalar(text("SELECT now() - interval '30 days'"))
    for d, movement_id, lines in receipts:
        audit_log.append(
            session,
            actor=operator("bench"),
            request_id=uuid.uuid4().hex,
            now=now,
            action="movement.receipt",
            subject=f"movement:{movement_id}",
            changes={"depot": f"D{d:02d}", "lines": lines, "seeded": "set-based SQL"},
        )
    session.commit()
    timings["ledger_rows_s"] = time.perf_counter() - began
    began = time.perf_counter()
    session.execute(text("ANALYZE"))
    session.commit()
    timings["analyze_s"] = time.perf_counter() - began
    session.close()
    engine.dispose()
    return timings


def seed_sqlite(url: str, scale: Scale) -> dict[str, float]:
    """The register through `post_movement` (receipts of up to 10,000 lines); ids are random."""
    from inventory.domain.movements import Kind
    from inventory.services import ledger
    from inventory.services.ledger import MovementRequest
    from inventory.services.lines import LotRegistration, WeaponRegistration

    began = time.perf_counter()
    engine, write = _writer(url)
    by_depot: dict[int, list[int]] = {}
    for n in range(1, scale.weapons + 1):
        by_depot.setdefault(depot_of_weapon(n, scale), []).append(n)
    for d in range(scale.depots):
        lines: list[Any] = [
            WeaponRegistration(
                "Kalashnikov", "AKM", f"AK-{n:07d}", year_of_manufacture=1970 + n % 50
            )
            for n in by_depot.get(d, [])
        ]
        lines += [
            LotRegistration(f"L-{m}", "762", quantity=10000, manufacturer="Factory 10")
            for m in range(1, scale.lots + 1)
            if (m - 1) % scale.depots == d
        ]
        for start in range(0, len(lines), 10_000):
            chunk = lines[start : start + 10_000]

            def receive(uow: UnitOfWork, chunk: list[Any] = chunk, d: int = d) -> Any:
                request = MovementRequest(
                    Kind.RECEIPT,
                    uow.now - timedelta(days=30),
                    chunk,
                    "party:SUP",
                    f"depot:D{d:02d}",
                )
                return ledger.post_movement(uow, request)

            write(receive)
    engine.dispose()
    return {"ledger_rows_s": time.perf_counter() - began}


def synthetic_audit(url: str, count: int) -> float:
    """Append `count` records to the chain with the real hash chain, in one COPY (PostgreSQL) or
    executemany (SQLite): the history a register accumulates, for measuring `verify`."""
    began = time.perf_counter()
    engine = make_engine(url)
    with engine.begin() as conn:
        head_seq, head_hash = conn.execute(text("SELECT seq, hash FROM audit_head")).one()
    moment = datetime.now(UTC) - timedelta(days=29)
    stamp = audit_log.timestamp(moment)
    rows = []
    prev = head_hash
    for seq in range(head_seq + 1, head_seq + count + 1):
        fields = {
            "actor": "bench",
            "role": "admin",
            "action": "movement.issue",
            "subject": f"movement:{uuid.UUID(int=seq)}",
            "request_id": f"{seq:032x}",
            "recorded_at": stamp,
        }
        body = canonical_bytes({**fields, "seq": seq, "changes": {"lines": 1, "seeded": True}})
        digest = chain_hash(prev, body)
        rows.append((seq, fields, body, prev, digest))
        prev = digest
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            columns = (
                "seq, recorded_at, actor, role, action, subject, request_id, body, prev_hash, hash"
            )
            with cursor.copy(f"COPY audit_records ({columns}) FROM STDIN") as copy:
                for seq, f, body, prev_hash, digest in rows:
                    copy.write_row(
                        (
                            seq,
                            moment,
                            f["actor"],
                            f["role"],
                            f["action"],
                            f["subject"],
                            f["request_id"],
                            body,
                            prev_hash,
                            digest,
                        )
                    )
            cursor.execute("UPDATE audit_head SET seq = %s, hash = %s", (head_seq + count, prev))
            raw.commit()
        finally:
            raw.close()
    else:
        from inventory.services.audit_log import _RECORDS

        with engine.begin() as conn:
            conn.execute(
                _RECORDS.insert(),
                [
                    {
                        "seq": seq,
                        "recorded_at": moment,
                        **{k: v for k, v in f.items() if k != "recorded_at"},
                        "body": body,
                        "prev_hash": prev_hash,
                        "hash": digest,
                    }
                    for seq, f, body, prev_hash, digest in rows
                ],
            )
            conn.execute(
                text("UPDATE audit_head SET seq = :s, hash = :h"),
                {"s": head_seq + count, "h": prev},
            )
    engine.dispose()
    return time.perf_counter() - began


def weapon_ids(url: str, numbers: list[int]) -> dict[int, str]:
    """The ids of weapons AK-<n> for the given n."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT serial, id FROM weapons WHERE serial IN :serials").bindparams(
                bindparam("serials", expanding=True)
            ),
            {"serials": [f"AK-{n:07d}" for n in numbers]},
        ).all()
    engine.dispose()
    return {int(serial[3:]): str(uuid.UUID(str(i))) for serial, i in rows}
