"""One use case, one transaction: the ledger, its projections, the audit record and the remembered
idempotent response are committed together or not at all.

Use cases are plain functions `use_case(uow) -> result`. `run_write` opens the write transaction,
calls the use case, appends its audit record last (the chain head's lock is held only for the final
statements), stores the response under the Idempotency-Key, commits, and retries the whole use case
when the database reports a deadlock or a serialisation failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from ..clock import utcnow
from ..db.bulk import insert_rows
from ..db.engine import continue_as_write
from ..db.models import IdempotentResponse, OutboxEvent
from ..domain.actors import Actor
from ..settings import Settings
from . import audit_log
from .errors import Conflict, IdempotencyKeyReused, ServiceError

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 6
# PostgreSQL: deadlock_detected, serialization_failure; they are safe to retry from the start.
RETRYABLE_SQLSTATES = {"40P01", "40001"}
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Context:
    """What every use case knows about the request it serves."""

    actor: Actor
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # the server's own
    settings: Settings = field(default_factory=Settings)
    client_request_id: str | None = None  # the X-Request-ID the client sent, kept beside it


@dataclass
class AuditEntry:
    action: str
    subject: str
    changes: dict[str, Any]


class UnitOfWork:
    """The transaction a use case runs in, with who acts and the moment it is recorded at."""

    def __init__(self, session: Session, context: Context) -> None:
        self.session = session
        self.context = context
        self.actor = context.actor
        self.settings = context.settings
        self.now: datetime = utcnow()
        self.audit_entry: AuditEntry | None = None
        self.audit_seq: int | None = None
        self.consequences: dict[str, list[Any]] = {}
        self.events: list[dict[str, Any]] = []  # outbox_events rows; inserted last
        self.read_only = False

    def record(self, action: str, subject: str, changes: dict[str, Any]) -> None:
        """Say what this use case changed; exactly one record per state-changing request."""
        if self.audit_entry is not None:
            raise RuntimeError(f"{action}: a request appends one audit record, not two")
        self.audit_entry = AuditEntry(action, subject, jsonable(changes))

    def changed_nothing(self) -> None:
        """Declare that this run of a write use case found nothing to change: no audit record
        is appended and the transaction is rolled back."""
        self.read_only = True

    def note_consequence(self, name: str, items: list[Any]) -> None:
        """Add what the use case caused besides its own effect (e.g. discrepancies it opened)
        to its audit record."""
        if items:
            self.consequences.setdefault(name, []).extend(jsonable(items))


@dataclass(frozen=True)
class IdempotencyKey:
    token_id: uuid.UUID
    key: str
    request_sha256: str

    @classmethod
    def for_request(
        cls, token_id: uuid.UUID, key: str, method: str, path: str, body: Any
    ) -> IdempotencyKey:
        canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
        return cls(token_id, key, hashlib.sha256(canonical.encode()).hexdigest())


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A use case's response: freshly made, or replayed from an earlier request's key."""

    status: int
    body: Any
    replayed: bool = False


def run_write(
    session: Session,
    context: Context,
    use_case: Callable[[UnitOfWork], T],
    present: Callable[[T, UnitOfWork], Any],
    *,
    status: int = 200,
    idempotency: IdempotencyKey | None = None,
) -> Outcome[T]:
    """Run `use_case` in one write transaction and return its presented response."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        continue_as_write(session)  # every failed attempt below rolls back first
        try:
            if idempotency is not None and (earlier := _remembered(session, idempotency)):
                session.rollback()
                return earlier
            uow = UnitOfWork(session, context)
            result = use_case(uow)
            session.flush()
            entry = uow.audit_entry
            if entry is None and uow.read_only:
                body = present(result, uow)
                session.rollback()
                return Outcome(status, body)
            if entry is None:
                raise RuntimeError(f"{use_case.__name__} changed state without an audit record")
            record: dict[str, Any] = {
                "actor": context.actor,
                "request_id": context.request_id,
                "client_request_id": context.client_request_id,
                "now": uow.now,
                "action": entry.action,
                "subject": entry.subject,
                "changes": {**entry.changes, **uow.consequences},
            }
            if not uow.events and idempotency is None:
                # Nothing to write after the record: it goes with the COMMIT (see there).
                uow.audit_seq = audit_log.append_and_commit(session, **record)
                return Outcome(status, present(result, uow))
            uow.audit_seq = audit_log.append(session, **record)
            # Events take their feed seq only now, under the chain head's lock, which the
            # append holds until commit: feed order is then commit order, and a feed reader's
            # cursor can never pass an event that is still to commit.
            insert_rows(session, _OUTBOX, uow.events)
            body = present(result, uow)
            if idempotency is not None:
                _remember(session, idempotency, status, body, uow.now)
            session.commit()
            return Outcome(status, body)
        except IntegrityError as error:
            session.rollback()
            if idempotency is not None and (earlier := _remembered(session, idempotency)):
                session.rollback()
                return earlier  # a concurrent request with the same key committed first
            # The checks passed but a constraint did not: a concurrent request changed the books.
            log.warning("integrity error turned into a conflict: %s", error.orig)
            raise Conflict(
                "the books changed while this request was being posted (a concurrent request "
                "registered or moved the same items); read the current state and retry"
            ) from error
        except ServiceError:
            session.rollback()
            if idempotency is not None and (earlier := _remembered(session, idempotency)):
                session.rollback()
                # A duplicate that queued behind the first request's locks finds the books
                # already changed by it: it gets the first response, not a refusal.
                return earlier
            raise
        except DBAPIError as error:
            session.rollback()
            sqlstate = getattr(error.orig, "sqlstate", None)
            if sqlstate not in RETRYABLE_SQLSTATES or attempt == MAX_ATTEMPTS:
                raise
            log.warning("retrying after %s (attempt %d)", sqlstate, attempt)
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")


def _remembered(session: Session, key: IdempotencyKey) -> Outcome[Any] | None:
    stored = session.scalar(
        select(IdempotentResponse).where(
            IdempotentResponse.token_id == key.token_id, IdempotentResponse.key == key.key
        )
    )
    if stored is None:
        return None
    if stored.request_sha256 != key.request_sha256:
        detail = (
            f"Idempotency-Key {key.key!r} was already used for a different request; "
            "use a new key for a new request"
        )
        raise IdempotencyKeyReused(detail, errors={"Idempotency-Key": [detail]})
    return Outcome(stored.status, json.loads(stored.body), replayed=True)


def _remember(session: Session, key: IdempotencyKey, status: int, body: Any, now: datetime) -> None:
    session.add(
        IdempotentResponse(
            token_id=key.token_id,
            key=key.key,
            request_sha256=key.request_sha256,
            status=status,
            body=json.dumps(body, separators=(",", ":")),
            created_at=now,
        )
    )
    session.flush()


def jsonable(value: Any) -> Any:
    """Plain JSON values for the audit record: UUIDs and times as text, tuples as lists."""
    if value is None or isinstance(value, str | int | float):  # most leaves: answered first
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return audit_log.timestamp(value)
    return value
