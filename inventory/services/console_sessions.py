"""Console sign-in: a token is exchanged for a server-side session. The browser holds a random
session id; the database holds only its SHA-256, the token it stands for, the session's CSRF token
and when it was last used. A session ends at sign-out, after `Settings.console_idle` unused, or
when its token is revoked."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..db.engine import begin_write
from ..db.models import ConsoleSession, Holder, Token, TokenDepot
from ..domain.actors import Actor, Role
from ..settings import Settings
from . import tokens
from .unit_of_work import Context, UnitOfWork, run_write

# Writing last_seen_at on every page would make each read a write; a minute's slack is harmless.
TOUCH_EVERY = timedelta(minutes=1)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    """Who a live session acts as, and the CSRF token its forms must carry."""

    actor: Actor
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    session_id: str  # goes to the browser once, in the cookie; never stored
    signed_in: SignedIn


def sign_in(db: Session, secret: str, request_id: str, settings: Settings) -> NewSession | None:
    """Open a session for the holder of `secret`, or None if the token is unknown or revoked.
    The sign-in is an audit record, attributed to the token."""
    actor = tokens.authenticate(db, secret.strip())
    db.rollback()
    if actor is None or actor.token_id is None:
        return None
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    token_id = actor.token_id

    def open_session(uow: UnitOfWork) -> None:
        # Sessions left idle are never asked for again: sweep them here rather than on reads.
        uow.session.execute(
            delete(ConsoleSession).where(
                ConsoleSession.last_seen_at < uow.now - uow.settings.console_idle
            )
        )
        uow.session.add(
            ConsoleSession(
                id_sha256=_digest(session_id),
                token_id=token_id,
                csrf_token=csrf,
                created_at=uow.now,
                last_seen_at=uow.now,
            )
        )
        uow.record("console.sign_in", f"token:{token_id}", {"name": actor.name})

    run_write(db, Context(actor, request_id, settings), open_session, _nothing)
    return NewSession(session_id, SignedIn(actor, csrf))


def _nothing(_result: None, _uow: UnitOfWork) -> None:
    return None


def resolve(db: Session, session_id: str, now: datetime, idle: timedelta) -> SignedIn | None:
    """The signed-in actor behind a cookie's session id, or None (unknown, idle too long, or its
    token revoked: then the session, and every other one of that token, is deleted)."""
    digest = _digest(session_id)
    found = db.execute(
        select(ConsoleSession, Token.name, Token.role, Token.revoked_at)
        .join(Token, Token.id == ConsoleSession.token_id)
        .where(ConsoleSession.id_sha256 == digest)
    ).first()
    if found is None:
        db.rollback()
        return None
    row, name, role, revoked_at = found
    if revoked_at is not None:
        _delete(db, ConsoleSession.token_id == row.token_id)
        return None
    if now - row.last_seen_at > idle:
        _delete(db, ConsoleSession.id_sha256 == digest)
        return None
    depots = frozenset(
        db.scalars(
            select(Holder.code)
            .join(TokenDepot, TokenDepot.holder_id == Holder.id)
            .where(TokenDepot.token_id == row.token_id)
        )
    )
    signed_in = SignedIn(Actor(name, Role(role), depots, row.token_id), row.csrf_token)
    db.rollback()
    if now - row.last_seen_at > TOUCH_EVERY:
        begin_write(db)
        db.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id_sha256 == digest)
            .values(last_seen_at=now)
        )
        db.commit()
    return signed_in


def sign_out(db: Session, context: Context, session_id: str) -> None:
    """End the session (an audit record says who signed out)."""
    digest = _digest(session_id)

    def end(uow: UnitOfWork) -> None:
        ended = uow.session.execute(
            delete(ConsoleSession).where(ConsoleSession.id_sha256 == digest)
        )
        if not ended.rowcount:  # type: ignore[attr-defined]
            uow.changed_nothing()
            return
        uow.record("console.sign_out", f"token:{context.actor.token_id}", {})

    run_write(db, context, end, _nothing)


def _delete(db: Session, condition: object) -> None:
    db.rollback()
    begin_write(db)
    db.execute(delete(ConsoleSession).where(condition))  # type: ignore[arg-type]
    db.commit()
