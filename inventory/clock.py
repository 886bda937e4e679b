"""Timezone-aware "now"; the one place the service reads the wall clock."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
