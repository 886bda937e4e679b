"""The transparency log over the audit records: stored Merkle subtree hashes, signed tree heads
(C2SP tlog-checkpoint notes), the witnesses admins registered and the cosignatures they sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base
from ..types import UTCDateTime


class LogHash(Base):
    """One complete-subtree hash at its position in the append-only sequence of
    `domain.merkle.stored_hash_index`; the tree of size n is the first stored_hash_count(n)."""

    __tablename__ = "log_hashes"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogCheckpoint(Base):
    """A signed tree head: the note text exactly as signed (body, blank line, signature line)."""

    __tablename__ = "log_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LogWitness(Base):
    """A witness key an admin registered, as a C2SP note verifier key (type 0x04, cosignature)."""

    __tablename__ = "log_witnesses"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    vkey: Mapped[str] = mapped_column(String(400))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_by: Mapped[str] = mapped_column(String(200))


class LogCosignature(Base):
    """A witness's C2SP tlog-cosignature line on a stored checkpoint, checked before storing."""

    __tablename__ = "log_cosignatures"

    tree_size: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("log_checkpoints.tree_size"), primary_key=True
    )
    witness: Mapped[str] = mapped_column(
        String(200), ForeignKey("log_witnesses.name"), primary_key=True
    )
    timestamp: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[str] = mapped_column(String(400))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
