"""What the console's overview shows: the accountability report now and at each of the last
twelve month-ends, open discrepancies by depot and severity, and the audit chain's state (head,
last verification run, last signed checkpoint). Scope is the services' own: the report and the
discrepancy query decide what an actor may read."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from threading import Lock

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db.models import AuditVerification, Holder, Movement
from ..domain.actors import Actor
from ..settings import Settings
from . import audit_log, audit_verifications, checkpoints, discrepancies, reports
from .checkpoints import Checkpoint

SEVERITY_ORDER = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class ChainState:
    head_seq: int
    head_hash: str
    last_verification: AuditVerification | None
    checkpoint: Checkpoint | None
    checkpoint_at: datetime | None


def month_ends(now: datetime, count: int = 12) -> list[datetime]:
    """The last `count` month-ends before `now`, oldest first (the first instant of each month)."""
    year, month = now.year, now.month
    ends = []
    for _ in range(count):
        ends.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(ends))


# The books as they stood at a past instant never change (everything is by recorded time), so a
# month-end report is computed once per scope and kept. Bounded: twelve months times a few scopes.
_HISTORY: dict[tuple[str, datetime, str, frozenset[str]], reports.Report] = {}
_HISTORY_LOCK = Lock()
_HISTORY_MAX = 2_000


def history(
    session: Session, actor: Actor, settings: Settings, current: reports.Report
) -> list[reports.Report]:
    """The accountability report at each of the last twelve month-ends, oldest first, then
    `current` (the report now). Before the first movement the books were empty: those month-ends
    are the current report's depots with nothing on them, without asking the ledger."""
    first = session.scalar(select(func.min(Movement.recorded_at)))
    found = []
    for end in month_ends(current.as_of):
        if first is None or end < first:
            empty = [reports.DepotAccount(account.depot) for account in current.depots]
            found.append(reports.Report(end, empty, reports.DepotAccount("TOTAL")))
            continue
        key = (settings.database_url, end, str(actor.role), actor.depots)
        with _HISTORY_LOCK:
            report = _HISTORY.get(key)
        if report is None:
            report = reports.accountability(session, actor, settings, None, end)
            with _HISTORY_LOCK:
                if len(_HISTORY) >= _HISTORY_MAX:
                    _HISTORY.clear()
                _HISTORY[key] = report
        found.append(report)
    return [*found, current]


def open_by_severity(session: Session, actor: Actor) -> dict[str, dict[str, int]]:
    """Open and investigating discrepancies the actor may read: depot code → severity → count
    (depot "—" for those not tied to a depot)."""
    scoped = discrepancies.discrepancies_query(session, actor).subquery()
    rows = session.execute(
        select(Holder.code, scoped.c.severity, func.count())
        .select_from(scoped)
        .outerjoin(Holder, Holder.id == scoped.c.depot_id)
        .where(scoped.c.status != "resolved")
        .group_by(Holder.code, scoped.c.severity)
    )
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SEVERITY_ORDER, 0))
    for code, severity, n in rows:
        counts[code or "—"][severity] = int(n)
    return dict(sorted(counts.items()))


def chain_state(session: Session) -> ChainState:
    seq, digest = audit_log.head(session)
    last = audit_verifications.latest(session)
    latest = checkpoints.latest(session)
    at = datetime.fromisoformat(latest.at.replace("Z", "+00:00")) if latest else None
    return ChainState(seq, digest, last, latest, at)
