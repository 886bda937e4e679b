"""Every table, imported here so Alembic and the tests see the whole schema."""

from .audit import AuditCheckpoint, AuditHead, AuditRecord
from .console import AuditVerification, ConsoleSession
from .idempotency import IdempotentResponse
from .ledger import (
    HolderWeaponCount,
    InStoreFreshness,
    Lot,
    LotHolding,
    Movement,
    MovementLine,
    Weapon,
    WeaponHolding,
)
from .oversight import (
    Delivery,
    DeliveryAttempt,
    Discrepancy,
    DiscrepancyEvent,
    EndUseVerification,
    OutboxEvent,
    Stocktake,
    StocktakeCount,
    Subscription,
    Transfer,
    VerificationResult,
    WeaponVerification,
)
from .reference import Holder, ItemType
from .tokens import Token, TokenDepot
from .transparency import LogCheckpoint, LogCosignature, LogHash, LogWitness

__all__ = [
    "Delivery",
    "DeliveryAttempt",
    "Discrepancy",
    "DiscrepancyEvent",
    "EndUseVerification",
    "OutboxEvent",
    "Stocktake",
    "StocktakeCount",
    "Subscription",
    "Transfer",
    "VerificationResult",
    "WeaponVerification",
    "AuditCheckpoint",
    "AuditHead",
    "AuditRecord",
    "AuditVerification",
    "ConsoleSession",
    "Holder",
    "HolderWeaponCount",
    "IdempotentResponse",
    "InStoreFreshness",
    "ItemType",
    "Lot",
    "LotHolding",
    "LogCheckpoint",
    "LogCosignature",
    "LogHash",
    "LogWitness",
    "Movement",
    "MovementLine",
    "Token",
    "TokenDepot",
    "Weapon",
    "WeaponHolding",
]
