"""Console sign-ins and audit-chain verification runs: what the browser pages keep on the server."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, BigIntPK
from ..types import UTCDateTime


class ConsoleSession(Base):
    """A signed-in browser. Only a SHA-256 of the cookie's session id is kept, so a copy of the
    database signs nobody in; the token it was opened with decides who acts (and its revocation
    ends the session)."""

    __tablename__ = "console_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tokens.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditVerification(Base):
    """One walk of the audit chain and its verdict, so the console can say when it last ran."""

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    head_seq: Mapped[int] = mapped_column(BigInteger)
    first_bad_seq: Mapped[int | None] = mapped_column(BigInteger)
    problem: Mapped[str | None] = mapped_column(String(1000))
    actor: Mapped[str] = mapped_column(String(200))
