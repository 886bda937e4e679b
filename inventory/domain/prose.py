"""How a summary a person reads names things: one format for a weapon, one for a moment.

A weapon is named by its marking, item type first: "weapon AKM KOVAR ARMS WORKS KA94-01009", so
that two summaries about one weapon read alike whichever use case wrote them. A moment is given to
the minute, in UTC ("2026-12-02 14:05 UTC"): a reader of a discrepancy needs the day and the hour,
not microseconds; the exact times stay in the record's fields."""

from __future__ import annotations

from datetime import UTC, datetime


def weapon_label(item_type: str | None, manufacturer: str | None, serial: str) -> str:
    """'weapon AKM KOVAR ARMS WORKS KA94-01009' (parts the caller does not know are left out)."""
    return " ".join(part for part in ("weapon", item_type, manufacturer, serial) if part)


def lot_label(item_type: str, lot_number: str) -> str:
    """'lot 7.62x54R K-93-0120'."""
    return f"lot {item_type} {lot_number}"


def moment(value: datetime) -> str:
    """'2026-12-02 14:05 UTC' (a naive time is taken as UTC, as the database stores it)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
