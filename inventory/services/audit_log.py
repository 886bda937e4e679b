"""Appending to and reading the audit log. Every write use case appends exactly one record, in its
own transaction, through `append` (called by the unit of work just before commit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from ..db.models import AuditHead, AuditRecord
from ..domain.actors import Actor
from ..domain.audit_chain import Verdict, canonical_bytes, chain_hash, verify_chain

_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
_RECORDS: Table = AuditRecord.__table__  # type: ignore[assignment]


def timestamp(moment: datetime) -> str:
    """The one text form of a time inside hashed bytes."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def append(
    session: Session,
    *,
    actor: Actor,
    request_id: str,
    now: datetime,
    action: str,
    subject: str,
    changes: dict[str, Any],
) -> int:
    """Append one record and return its seq. Takes the chain head's row lock, so call it last."""
    seq, prev_hash = session.execute(
        update(_HEAD)
        .where(_HEAD.c.id == 1)
        .values(seq=_HEAD.c.seq + 1)
        .returning(_HEAD.c.seq, _HEAD.c.hash)
    ).one()
    indexed = {
        "seq": seq,
        "recorded_at": timestamp(now),
        "actor": actor.name,
        "role": str(actor.role),
        "action": action,
        "subject": subject,
        "request_id": request_id,
    }
    body = canonical_bytes({**indexed, "changes": changes})
    digest = chain_hash(prev_hash, body)
    session.execute(
        insert(_RECORDS).values(
            {**indexed, "recorded_at": now, "body": body, "prev_hash": prev_hash, "hash": digest}
        )
    )
    session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(hash=digest))
    return int(seq)


@dataclass(slots=True)
class _Row:
    seq: int
    body: bytes
    prev_hash: str
    hash: str
    actor: str
    role: str
    action: str
    subject: str
    request_id: str
    recorded_at: datetime

    def indexed_fields(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "subject": self.subject,
            "request_id": self.request_id,
            "recorded_at": timestamp(self.recorded_at),
        }


def head(session: Session) -> tuple[int, str]:
    seq, digest = session.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)).one()
    return int(seq), digest


def length(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(_RECORDS)) or 0)


def stream(session: Session, batch: int = 10_000) -> Iterator[_Row]:
    """Every record in seq order, read in batches so a long log never sits in memory at once."""
    columns = [_RECORDS.c[name] for name in _Row.__slots__]
    result = session.execute(
        select(*columns).order_by(_RECORDS.c.seq).execution_options(yield_per=batch)
    )
    for row in result:
        yield _Row(*row)


def verify(session: Session, progress: Callable[[int], None] | None = None) -> Verdict:
    """Walk the whole chain; `progress` is told how many records have been read so far."""
    head_seq, head_hash = head(session)
    records: Iterator[_Row] = stream(session)
    if progress is not None:
        records = _counting(records, progress)
    return verify_chain(records, head_seq, head_hash)


def _counting(rows: Iterator[_Row], progress: Callable[[int], None]) -> Iterator[_Row]:
    for count, row in enumerate(rows, start=1):
        if count % 10_000 == 0:
            progress(10_000)
        yield row
