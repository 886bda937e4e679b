"""Every table, imported here so Alembic and the tests see the whole schema."""

from .audit import AuditCheckpoint, AuditHead, AuditRecord
from .idempotency import IdempotentResponse
from .reference import Holder, ItemType
from .tokens import Token, TokenDepot

__all__ = [
    "AuditCheckpoint",
    "AuditHead",
    "AuditRecord",
    "Holder",
    "IdempotentResponse",
    "ItemType",
    "Token",
    "TokenDepot",
]
