"""Oversight records: discrepancies and their events, transfers and end-use verifications,
stocktakes and their counts, when each weapon was last physically verified, and the outbox of
events for monitors with its subscriptions and deliveries."""

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
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...domain.discrepancies import DiscrepancyKind
from ..base import Base, BigIntPK
from ..types import UTCDateTime
from .reference import Holder

DISCREPANCY_STATUSES = ("open", "investigating", "resolved")
DISCREPANCY_KINDS = tuple(str(kind) for kind in DiscrepancyKind)
SEVERITIES = ("low", "medium", "high", "critical")
TRANSFER_STATUSES = ("in_transit", "received", "received_with_discrepancy", "cancelled")
_UNRESOLVED = text("status <> 'resolved'")


class Discrepancy(Base):
    """Something unaccounted for. At most one unresolved discrepancy per kind and subject."""

    __tablename__ = "discrepancies"
    __table_args__ = (
        Index(
            "uq_discrepancies_unresolved_subject",
            "kind",
            "subject_key",
            unique=True,
            postgresql_where=_UNRESOLVED,
            sqlite_where=_UNRESOLVED,
        ),
        Index(None, "status", "seq"),
        Index(None, "depot_id", "seq"),
        Index(None, "kind", "seq"),
        CheckConstraint(f"status IN {DISCREPANCY_STATUSES!r}", name="status"),
        CheckConstraint(f"severity IN {SEVERITIES!r}", name="severity"),
        # On SQLite migration 0010 checks this by triggers (see append_only.check_values).
        CheckConstraint(f"kind IN {DISCREPANCY_KINDS!r}", name="kind"),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # What the discrepancy is about, as one comparable key, e.g. "weapon:<id>", "lot:<id>@<holder>".
    subject_key: Mapped[str] = mapped_column(String(200))
    depot_id: Mapped[int | None] = mapped_column(ForeignKey("holders.id"))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("holders.id"))
    weapon_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("weapons.id"), index=True)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("lots.id"))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transfers.id"))
    stocktake_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("stocktakes.id"))
    verification_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("end_use_verifications.id")
    )
    movement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("movements.id"))
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    summary: Mapped[str] = mapped_column(String(1000))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    depot: Mapped[Holder | None] = relationship(foreign_keys=[depot_id], lazy="joined")
    holder: Mapped[Holder | None] = relationship(foreign_keys=[holder_id], lazy="joined")


class DiscrepancyEvent(Base):
    """Append-only: opened, note, investigate, resolve; who, and for resolve which movement."""

    __tablename__ = "discrepancy_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    discrepancy_seq: Mapped[int] = mapped_column(ForeignKey("discrepancies.seq"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(4000))
    movement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("movements.id"))


class Transfer(Base):
    """A two-phase transfer: dispatched into its own transit holder, then received (or
    cancelled). What was dispatched is the dispatch movement's lines: the manifest."""

    __tablename__ = "transfers"
    __table_args__ = (
        Index(None, "status", "expected_by"),
        CheckConstraint(f"status IN {TRANSFER_STATUSES!r}", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    from_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    to_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    transit_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    expected_by: Mapped[datetime] = mapped_column(UTCDateTime())
    document_ref: Mapped[str | None] = mapped_column(String(200))
    end_user_ref: Mapped[str | None] = mapped_column(String(200))
    dispatched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dispatch_movement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("movements.id"))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    receipt_movement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("movements.id"))
    delivery_verification_ref: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))

    from_holder: Mapped[Holder] = relationship(foreign_keys=[from_holder_id], lazy="joined")
    to_holder: Mapped[Holder] = relationship(foreign_keys=[to_holder_id], lazy="joined")
    transit_holder: Mapped[Holder] = relationship(foreign_keys=[transit_holder_id], lazy="joined")


class EndUseVerification(Base):
    """A scheduled post-delivery serial check of a transfer to an outside party."""

    __tablename__ = "end_use_verifications"
    __table_args__ = (Index(None, "done_at", "due_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    transfer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("transfers.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 = the initial check, then yearly
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(4000))


class VerificationResult(Base):
    __tablename__ = "verification_results"

    verification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("end_use_verifications.id"), primary_key=True
    )
    weapon_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("weapons.id"), primary_key=True)
    seen: Mapped[bool] = mapped_column(Boolean)


class Stocktake(Base):
    __tablename__ = "stocktakes"
    __table_args__ = (CheckConstraint("status IN ('open', 'closed')", name="status"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    depot_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[str] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(200))

    depot: Mapped[Holder] = relationship(lazy="joined")


class StocktakeCount(Base):
    """One counted line: a scanned weapon (resolved, or only its marking if unknown) or a lot
    quantity. Repeated batches append; a weapon counted twice counts once."""

    __tablename__ = "stocktake_counts"
    __table_args__ = (
        Index(None, "stocktake_id", "weapon_id"),
        Index(None, "stocktake_id", "lot_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    stocktake_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stocktakes.id"))
    weapon_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("weapons.id"))
    serial: Mapped[str | None] = mapped_column(String(100))
    manufacturer: Mapped[str | None] = mapped_column(String(100))
    item_type: Mapped[str | None] = mapped_column(String(64))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("lots.id"))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    counted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WeaponVerification(Base):
    """Projection: when each weapon was last physically counted, and by which stocktake.

    No foreign keys (migration 0012 says why): a stocktake close writes a depot's worth of these
    at once, and PostgreSQL checks a foreign key row by row."""

    __tablename__ = "weapon_verifications"

    weapon_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    stocktake_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class OutboxEvent(Base):
    """An event for monitors, written in the transaction that caused it. `id` is the stable
    webhook-id; `seq` orders the alert feed."""

    __tablename__ = "outbox_events"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    depot: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(40))
    severity: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)  # the JSON `data` of the webhook body
    # The worker fans each event out to matching subscriptions once, then marks it dispatched.
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # The HMAC key must be usable to sign, so it cannot be stored hashed like a token.
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[str] = mapped_column(Text)  # JSON list; filters below are JSON lists or null
    depots: Mapped[str | None] = mapped_column(Text)
    kinds: Mapped[str | None] = mapped_column(Text)
    severities: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    # The token that made it: a monitor sees and deletes only its own (None: made before 0010).
    token_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    # The circuit breaker (services/delivery.py): failed attempts in a row, across deliveries, and
    # until when none of this subscription's deliveries is tried.
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(Base):
    """One event to one subscription, retried until delivered or given up."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "subscription_id", "id"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id"))
    event_seq: Mapped[int] = mapped_column(ForeignKey("outbox_events.seq"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(1000))
    duration_ms: Mapped[int] = mapped_column(Integer)
