"""The custody ledger: weapons and lots (what is held), movements and their lines (the immutable
journal), and the current-holdings projection (with its weapon counts) kept in the same
transaction as each movement."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..base import Base, BigIntPK
from ..types import UTCDateTime
from .reference import Holder, ItemType

MARKING_STATUSES = ("intact", "altered", "obliterated", "re-marked")
ORIGINS = ("procured", "donated", "captured", "recovered")
MOVEMENT_KINDS = (
    "receipt",
    "issue",
    "return",
    "loss",
    "recovery",
    "expenditure",
    "destruction",
    "reversal",
    "dispatch",
    "receive",
    "cancel",
)


class Weapon(Base):
    """One physical serialised item. Identity is (manufacturer, item type, serial as marked)."""

    __tablename__ = "weapons"
    __table_args__ = (
        UniqueConstraint("manufacturer", "item_type_id", "serial"),
        Index(None, "serial"),
        CheckConstraint(f"marking_status IN {MARKING_STATUSES!r}", name="marking_status"),
        CheckConstraint(f"origin IN {ORIGINS!r}", name="origin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    item_type_id: Mapped[int] = mapped_column(ForeignKey("item_types.id"))
    manufacturer: Mapped[str] = mapped_column(String(100))
    serial: Mapped[str] = mapped_column(String(100))
    marking_status: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    year_of_manufacture: Mapped[int | None] = mapped_column(Integer)
    country_of_manufacture: Mapped[str | None] = mapped_column(String(64))
    import_marks: Mapped[str | None] = mapped_column(String(200))
    registered_by: Mapped[int] = mapped_column(ForeignKey("movements.seq"))

    item_type: Mapped[ItemType] = relationship(lazy="joined", innerjoin=True)
    holding: Mapped[WeaponHolding] = relationship(lazy="joined", innerjoin=True, viewonly=True)


class Lot(Base):
    """One ammunition lot as marked; its rounds are held per holder in `lot_holdings`."""

    __tablename__ = "lots"
    __table_args__ = (UniqueConstraint("item_type_id", "lot_number"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    item_type_id: Mapped[int] = mapped_column(ForeignKey("item_types.id"))
    lot_number: Mapped[str] = mapped_column(String(100))
    manufacturer: Mapped[str | None] = mapped_column(String(100))
    year_of_manufacture: Mapped[int | None] = mapped_column(Integer)
    registered_by: Mapped[int] = mapped_column(ForeignKey("movements.seq"))

    item_type: Mapped[ItemType] = relationship(lazy="joined", innerjoin=True)


class Movement(Base):
    """One immutable journal entry moving its lines from one holder to another."""

    __tablename__ = "movements"
    __table_args__ = (
        Index(None, "from_holder_id", "seq"),
        Index(None, "to_holder_id", "seq"),
        Index(None, "recorded_at"),
        Index(None, "kind", "seq"),
        CheckConstraint(f"kind IN {MOVEMENT_KINDS!r}", name="kind"),
        CheckConstraint("from_holder_id <> to_holder_id", name="distinct_holders"),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    from_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"))
    to_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    document_ref: Mapped[str | None] = mapped_column(String(200))
    due_back_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    case_ref: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    certificate_ref: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(2000))
    # A movement is reversed at most once; the unique index makes a second reversal a conflict.
    reverses: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("movements.id"), unique=True)
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    late_entry: Mapped[bool] = mapped_column(Boolean, default=False)

    from_holder: Mapped[Holder] = relationship(foreign_keys=[from_holder_id], lazy="joined")
    to_holder: Mapped[Holder] = relationship(foreign_keys=[to_holder_id], lazy="joined")


class MovementLine(Base):
    """A weapon (quantity 1) or a lot quantity carried by a movement."""

    __tablename__ = "movement_lines"
    __table_args__ = (
        Index(None, "weapon_id", "movement_seq"),
        Index(None, "lot_id", "movement_seq"),
        UniqueConstraint("movement_seq", "line_no"),
        CheckConstraint("(weapon_id IS NULL) <> (lot_id IS NULL)", name="weapon_or_lot"),
        CheckConstraint("quantity > 0", name="positive_quantity"),
        CheckConstraint("weapon_id IS NULL OR quantity = 1", name="one_weapon"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    movement_seq: Mapped[int] = mapped_column(ForeignKey("movements.seq"))
    line_no: Mapped[int] = mapped_column(Integer)
    weapon_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("weapons.id"))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("lots.id"))
    quantity: Mapped[int] = mapped_column(BigInteger)
    # True when the line brought the item onto the books (a receipt or a recovered, unregistered
    # item): its source is outside the books and is not debited.
    registers: Mapped[bool] = mapped_column(Boolean)


class WeaponHolding(Base):
    """Projection: who holds each weapon now. The primary key makes "one holder" structural."""

    __tablename__ = "weapon_holdings"

    weapon_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("weapons.id"), primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    movement_seq: Mapped[int] = mapped_column(ForeignKey("movements.seq"))

    holder: Mapped[Holder] = relationship(lazy="joined", innerjoin=True)


class LotHolding(Base):
    """Projection: rounds of each lot per holder now. Never negative, by constraint."""

    __tablename__ = "lot_holdings"
    __table_args__ = (CheckConstraint("quantity >= 0", name="not_negative"),)

    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), primary_key=True, index=True)
    quantity: Mapped[int] = mapped_column(BigInteger)


class HolderWeaponCount(Base):
    """Projection summary: how many weapons each holder holds (`lost` false) and how many are in
    `lost` with a loss from it as their last movement (`lost` true)."""

    __tablename__ = "holder_weapon_counts"

    holder_id: Mapped[int] = mapped_column(
        ForeignKey("holders.id"), primary_key=True, autoincrement=False
    )
    lost: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    weapons: Mapped[int] = mapped_column(BigInteger)


class InStoreFreshness(Base):
    """Projection summary: weapons in each depot's store by the moment their verification period
    runs from (`fresh_since`: arrival in the depot or last verification, whichever is later).
    The report counts the overdue ones by a range scan below the cutoff. Rows reaching 0 are
    removed."""

    __tablename__ = "in_store_freshness"

    holder_id: Mapped[int] = mapped_column(
        ForeignKey("holders.id"), primary_key=True, autoincrement=False
    )
    fresh_since: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    weapons: Mapped[int] = mapped_column(BigInteger)
