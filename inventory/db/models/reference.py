"""Reference data: holders (the ledger's accounts) and the item catalogue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..base import Base, BigIntPK
from ..types import UTCDateTime

HOLDER_KINDS = ("depot", "unit", "party", "transit", "lost", "expended", "destroyed")
PARTY_KINDS = ("supplier", "recipient", "manufacturer", "other")
ITEM_CATEGORIES = ("weapon", "ammunition")


class Holder(Base):
    """Anything that can hold stock. Depots, units and parties are entered by admins; the system
    holders (one transit account per transfer, lost, expended, destroyed) are made by the app."""

    __tablename__ = "holders"
    __table_args__ = (
        UniqueConstraint("kind", "code"),
        CheckConstraint(f"kind IN {HOLDER_KINDS!r}", name="kind"),
        CheckConstraint(f"party_kind IS NULL OR party_kind IN {PARTY_KINDS!r}", name="party_kind"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(64))
    party_kind: Mapped[str | None] = mapped_column(String(16))
    home_depot_id: Mapped[int | None] = mapped_column(ForeignKey("holders.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    home_depot: Mapped[Holder | None] = relationship(remote_side=[id], lazy="joined")

    @property
    def ref(self) -> str:
        """The holder as the API writes it: `kind:code`."""
        return f"{self.kind}:{self.code}"


class ItemType(Base):
    __tablename__ = "item_types"
    __table_args__ = (CheckConstraint(f"category IN {ITEM_CATEGORIES!r}", name="category"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    category: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    calibre: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
