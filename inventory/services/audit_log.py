"""Appending to and reading the audit log. Every write use case appends exactly one record, in its
own transaction, through `append` (called by the unit of work just before commit)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import LargeBinary, Table, bindparam, func, insert, select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db.engine import commit_with
from ..db.models import AuditHead, AuditRecord
from ..db.types import UTCDateTime
from ..domain.actors import Actor
from ..domain.audit_chain import (
    FORMAT,
    GENESIS_HASH,
    Pin,
    Verdict,
    canonical_parts,
    chain_hash,
    verify_chain,
)

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
    client_request_id: str | None = None,
) -> int:
    """Append one record and return its seq. Takes the chain head's row lock, so call it last.

    The hashed bytes also name the exact credential (`token_id`; None for the server's own
    operator) and the X-Request-ID the client sent, if any, beside the server's `request_id`."""
    columns, before, after = _record_parts(
        actor=actor,
        request_id=request_id,
        now=now,
        action=action,
        subject=subject,
        changes=changes,
        client_request_id=client_request_id,
    )
    if session.get_bind().dialect.name == "postgresql":
        return _append_in_one_statement(session, columns, before, after)
    seq, prev_hash = session.execute(
        update(_HEAD)
        .where(_HEAD.c.id == 1)
        .values(seq=_HEAD.c.seq + 1)
        .returning(_HEAD.c.seq, _HEAD.c.hash)
    ).one()
    body = before + str(seq).encode("ascii") + after
    digest = chain_hash(prev_hash, body)
    session.execute(
        insert(_RECORDS).values(
            {**columns, "seq": seq, "body": body, "prev_hash": prev_hash, "hash": digest}
        )
    )
    session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(hash=digest))
    return int(seq)


def append_and_commit(session: Session, **record: Any) -> int:
    """`append` (the same keywords), then commit the session's transaction; the record's seq.

    On PostgreSQL the append and the COMMIT reach the server together (`commit_with`). The chain
    head's lock, which every write queues on, is then held only while the server runs the two,
    not also while this thread waits for its turn at the interpreter between them: with several
    request threads per process, that wait was most of the time the lock was held."""
    if session.get_bind().dialect.name != "postgresql":
        seq = append(session, **record)
        session.commit()
        return seq
    columns, before, after = _record_parts(**record)
    sql = _driver_sql(session.get_bind().dialect)
    (seq,) = commit_with(session, sql, {**columns, "before": before, "after": after})
    return int(seq)


def _record_parts(
    *,
    actor: Actor,
    request_id: str,
    now: datetime,
    action: str,
    subject: str,
    changes: dict[str, Any],
    client_request_id: str | None = None,
) -> tuple[dict[str, Any], bytes, bytes]:
    """The record's indexed columns and its hashed body before and after its seq."""
    indexed = {
        "recorded_at": timestamp(now),
        "actor": actor.name,
        "role": str(actor.role),
        "action": action,
        "subject": subject,
        "request_id": request_id,
    }
    credential = {
        "token_id": str(actor.token_id) if actor.token_id else None,
        "client_request_id": client_request_id,
    }
    before, after = canonical_parts({**indexed, **credential, "changes": changes})
    return {**indexed, "recorded_at": now}, before, after


# One round trip instead of three: the head's lock is then held for as short a time as the
# commit allows. The function (migration 0013) puts in the seq it assigns and computes the same
# SHA-256 as `chain_hash`; being PL/pgSQL, its statement is planned once per connection.
_APPEND = text(
    "SELECT audit_append(:before, :after, :recorded_at, :actor, :role, :action, :subject,"
    " :request_id)"
).bindparams(
    bindparam("before", type_=LargeBinary()),
    bindparam("after", type_=LargeBinary()),
    bindparam("recorded_at", type_=UTCDateTime()),
)


@functools.cache
def _driver_sql(dialect: Dialect) -> str:
    """`_APPEND` as the driver takes it, for `commit_with` (UTC-aware times and bytes pass as
    they are on PostgreSQL, so no bind processing is lost)."""
    return str(_APPEND.compile(dialect=dialect))


def _append_in_one_statement(
    session: Session, columns: dict[str, Any], before: bytes, after: bytes
) -> int:
    parameters = {**columns, "before": before, "after": after}
    seq = session.connection().execute(_APPEND, parameters).scalar_one()
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
    """The chain head: the last seq appended and its hash."""
    seq, digest = session.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)).one()
    return int(seq), digest


def length(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(_RECORDS)) or 0)


def record_hash(session: Session, seq: int) -> str | None:
    """The stored hash of record `seq`, or None if there is no such record."""
    return session.scalar(select(_RECORDS.c.hash).where(_RECORDS.c.seq == seq))


def read_snapshot(session: Session) -> None:
    """End the session's transaction and begin a read that sees the log at one moment, so records
    committed during a long walk cannot look like records beyond the head."""
    session.rollback()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    # SQLite in WAL mode: a read transaction already sees one snapshot from its first read.


def stream(
    session: Session, *, after: int = 0, upto: int | None = None, batch: int = 10_000
) -> Generator[_Row, None, None]:
    """Records with `after` < seq <= `upto`, in seq order, read in batches so a long log never
    sits in memory at once."""
    columns = [_RECORDS.c[name] for name in _Row.__slots__]
    stmt = select(*columns).where(_RECORDS.c.seq > after)
    if upto is not None:
        stmt = stmt.where(_RECORDS.c.seq <= upto)
    result = session.execute(stmt.order_by(_RECORDS.c.seq).execution_options(yield_per=batch))
    try:
        for row in result:
            yield _Row(*row)
    finally:
        result.close()  # a walk that stops at a bad record must not leave a server cursor open


def verify(
    session: Session,
    progress: Callable[[int], None] | None = None,
    pins: Iterable[Pin] = (),
) -> Verdict:
    """Walk the whole chain as the session's transaction sees it (begin it with `read_snapshot`),
    holding it to the chain head and to `pins`; `progress` is told how many records were read."""
    head_seq, head_hash = head(session)
    pins = list(pins)
    start, held = _walk_from(session, (0, GENESIS_HASH), None, pins, progress)
    with closing(stream(session, after=start[0])) as records:
        counted = records if progress is None else _counting(records, progress)
        return verify_chain(counted, head_seq, head_hash, pins=pins, after=start, held=held)


def verify_segment(session: Session, after: tuple[int, str], upto: tuple[int, str]) -> Verdict:
    """Verify that the records after `after` (seq, hash) lead, link by link, to `upto`. Records
    appended after `upto` are not read, so concurrent writers do not disturb the walk."""
    start, held = _walk_from(session, after, upto[0], [], None)
    with closing(stream(session, after=start[0], upto=upto[0])) as records:
        return verify_chain(records, *upto, after=start, held=held)


def _walk_from(
    session: Session,
    after: tuple[int, str],
    upto: int | None,
    pins: list[Pin],
    progress: Callable[[int], None] | None,
) -> tuple[tuple[int, str], int]:
    """Where `verify_chain` must start walking record by record, and the last pin held before it.

    On PostgreSQL that is past every record `_sound_through` proved sound in SQL, up to the first
    pin they do not satisfy; elsewhere it is `after`. Only the walk names what is wrong, so a
    verdict reads the same on both databases and whichever way it was reached."""
    if session.get_bind().dialect.name != "postgresql":
        return after, after[0]
    proven = _sound_through(session, after, upto, progress)
    held = sorted((pin for pin in pins if after[0] < pin.seq <= proven[0]), key=lambda p: p.seq)
    stored = {after[0]: after[1]}
    if held:
        wanted = {pin.seq for pin in held} | {pin.seq - 1 for pin in held}
        rows = session.execute(
            select(_RECORDS.c.seq, _RECORDS.c.hash).where(_RECORDS.c.seq.in_(wanted))
        )
        stored.update((seq, digest) for seq, digest in rows)
    last_held = after[0]
    for pin in held:
        if pin.problem is not None or stored.get(pin.seq) != pin.hash:
            return (pin.seq - 1, stored[pin.seq - 1]), last_held
        last_held = pin.seq
    return proven, last_held


# Every check of `verify_chain` but the pins and the head, on a range of records at once. A record
# is sound only if it passes all of them, and a NULL anywhere counts as unsound, so the SQL can
# only be stricter than the walk.
#
# The copied columns are held to the body without parsing it as a document (jsonb parsing and
# containment were most of the statement's time): the body must be exactly
#     opening ‖ changes [‖ ,"client_request_id": ‖ client] ‖ middle [‖ ,"token_id": ‖ token] ‖ }
# where `opening` ({"action":…,"actor":…,"changes": after the format line) and `middle`
# (,"recorded_at":… through …"subject":…) are written here from the columns, with to_json's
# escaping, and each of the values the columns do not hold (changes, client, token) is one valid
# JSON value on its own. Then the body is one JSON object with exactly those keys, each once, and
# its copied fields are the columns: a value that is complete by itself ends where the next key
# begins, so no key can hide in it or after it. That is the layout `canonical_parts` writes (keys
# sorted; bodies from before client_request_id and token_id lack them); a body laid out any other
# way is left to the walk. A free value that is not UTF-8 JSON (or a prev_hash, equal to an unsound
# record's hash, that is not hex) makes the statement fail, and the walk then takes the batch.
_SOUNDNESS = text(
    """
WITH linked AS (
    SELECT seq, :after + row_number() OVER w AS expected,
        coalesce(lag(hash) OVER w, :after_hash) AS previous_hash, prev_hash, hash, body,
        :format || convert_to('{"action":' || to_json(action) || ',"actor":' || to_json(actor)
            || ',"changes":', 'UTF8') AS opening,
        convert_to(',"recorded_at":"' || to_char(recorded_at AT TIME ZONE 'UTC',
                'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
            || '","request_id":' || to_json(request_id) || ',"role":' || to_json(role)
            || ',"seq":' || seq || ',"subject":' || to_json(subject), 'UTF8') AS middle
    FROM audit_records
    WHERE seq > :after AND seq <= :upto
    WINDOW w AS (ORDER BY seq)
), opened AS (
    SELECT expected, seq, previous_hash, prev_hash, hash, body, middle,
        CASE WHEN substring(body FOR length(opening)) = opening
            THEN substring(body FROM length(opening) + 1) END AS rest
    FROM linked
    OFFSET 0
), located AS (
    SELECT expected, seq, previous_hash, prev_hash, hash, body, rest,
        length(middle) AS middle_length, nullif(position(middle IN rest), 0) AS middle_at,
        position(:client_key IN rest) AS client_at
    FROM opened
    OFFSET 0
), cut AS (
    SELECT expected, seq, previous_hash, prev_hash, hash, body,
        substring(rest FOR CASE WHEN 0 < client_at AND client_at < middle_at
            THEN client_at ELSE middle_at END - 1) AS changes,
        CASE WHEN 0 < client_at AND client_at < middle_at THEN substring(rest
            FROM client_at + length(:client_key) FOR middle_at - client_at - length(:client_key))
            END AS client,
        substring(rest FROM middle_at + middle_length) AS tail
    FROM located
    OFFSET 0
), judged AS (
    SELECT expected, CASE WHEN seq = expected
        AND prev_hash = previous_hash
        AND hash = CASE WHEN prev_hash = previous_hash
            THEN encode(sha256(decode(prev_hash, 'hex') || body), 'hex') END
        AND (tail = :closing OR (length(tail) > length(:token_key || :closing)
            AND substring(tail FOR length(:token_key)) = :token_key
            AND substring(tail FROM length(tail)) = :closing))
        THEN convert_from(changes, 'UTF8')::json IS NOT NULL
            AND (client IS NULL OR convert_from(client, 'UTF8')::json IS NOT NULL)
            AND (tail = :closing OR convert_from(substring(tail FROM length(:token_key) + 1
                FOR length(tail) - length(:token_key || :closing)), 'UTF8')::json IS NOT NULL)
        ELSE false END AS sound
    FROM cut
)
SELECT count(*), min(expected) FILTER (WHERE NOT sound) FROM judged
"""
).bindparams(
    *(
        bindparam(name, value=value, type_=LargeBinary())
        for name, value in (
            ("format", FORMAT),
            ("client_key", b',"client_request_id":'),
            ("token_key", b',"token_id":'),
            ("closing", b"}"),
        )
    )
)


def _sound_through(
    session: Session,
    after: tuple[int, str],
    upto: int | None,
    progress: Callable[[int], None] | None,
    batch: int = 50_000,
    workers: int = 2,
) -> tuple[int, str]:
    """The last record (seq, hash) through which the records after `after` are proven sound in
    SQL. Batches are judged `workers` at a time on connections that share the session's snapshot
    (hashing is CPU-bound in the database, which then uses more than one core); `progress` is
    told how many records each batch proved. The records are cut into a multiple of `workers`
    equal batches of at most `batch`, so no worker is left with a short last batch while the
    other idles."""
    last = upto if upto is not None else session.scalar(select(func.max(_RECORDS.c.seq))) or 0
    rounds = -(-(last - after[0]) // (batch * workers))
    size = -(-(last - after[0]) // (rounds * workers)) if rounds > 0 else batch
    starts = range(after[0], last, size)
    if not starts:
        return after
    snapshot = str(session.scalar(text("SELECT pg_export_snapshot()")))
    if not _SNAPSHOT_ID.match(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    engine = session.get_bind().engine

    def judge(start: int) -> int:
        """The last seq of the batch after `start` proven sound."""
        end = min(start + size, last)
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            start_hash = after[1] if start == after[0] else conn.scalar(_hash_at, {"seq": start})
            try:
                count, first_unsound = conn.execute(
                    _SOUNDNESS, {"after": start, "after_hash": start_hash, "upto": end}
                ).one()
            except DBAPIError:  # bytes the database cannot read as JSON: the walk will name them
                return start
        return start + count if first_unsound is None else first_unsound - 1

    through = after[0]
    with ThreadPoolExecutor(workers) as pool:
        judged = [pool.submit(judge, start) for start in starts]
        for start, future in zip(starts, judged, strict=True):
            through = future.result()
            if progress is not None:
                progress(through - start)
            if through < min(start + size, last):
                for rest in judged:
                    rest.cancel()
                break
    if through == after[0]:
        return after
    return through, str(session.scalar(_hash_at, {"seq": through}))


_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+-[0-9]+$")
_hash_at = select(_RECORDS.c.hash).where(_RECORDS.c.seq == bindparam("seq"))


def _counting(
    rows: Iterator[_Row], progress: Callable[[int], None], every: int = 10_000
) -> Iterator[_Row]:
    unreported = 0
    for row in rows:
        unreported += 1
        if unreported == every:
            progress(unreported)
            unreported = 0
        yield row
    if unreported:
        progress(unreported)  # the last, partial batch
