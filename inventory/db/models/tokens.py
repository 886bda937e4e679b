"""API tokens: only a SHA-256 of the secret is kept, so a copy of the database grants nothing."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..base import Base
from ..types import UTCDateTime
from .reference import Holder

ROLES = ("admin", "clerk", "auditor", "monitor")


class Token(Base):
    __tablename__ = "tokens"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        # Names say who holds a credential: two live tokens may not share one.
        Index(
            "uq_tokens_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    depots: Mapped[list[Holder]] = relationship(secondary="token_depots", lazy="selectin")

    @property
    def depot_codes(self) -> list[str]:
        return sorted(depot.code for depot in self.depots)


class TokenDepot(Base):
    __tablename__ = "token_depots"

    token_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tokens.id"), primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), primary_key=True)
