"""Each walk of the audit chain, kept with its verdict, so that the console (and anyone reading
the books) can say when the chain was last verified and what was found."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.engine import begin_write
from ..db.models import AuditVerification
from ..domain.actors import Actor
from ..domain.audit_chain import Verdict
from ..settings import Settings
from . import checkpoints


def record(session: Session, verdict: Verdict, actor: Actor, now: datetime) -> AuditVerification:
    """Keep `verdict` as the latest verification run (its own short write transaction)."""
    run = AuditVerification(
        at=now,
        ok=verdict.ok,
        head_seq=verdict.head_seq,
        first_bad_seq=verdict.first_bad_seq,
        problem=(verdict.reason or "")[:1000] or None,
        actor=actor.name,
    )
    session.rollback()
    begin_write(session)
    session.add(run)
    session.commit()
    return run


def verify_and_record(
    session: Session, settings: Settings, actor: Actor, now: datetime
) -> AuditVerification:
    """Walk the audit chain now and keep the verdict."""
    return record(session, checkpoints.verify(session, settings), actor, now)


def latest(session: Session) -> AuditVerification | None:
    return session.scalar(select(AuditVerification).order_by(AuditVerification.id.desc()).limit(1))
