"""Who is acting, and what their role and depot scope allow. Pure rules: no Flask, no database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    CLERK = "clerk"
    AUDITOR = "auditor"
    MONITOR = "monitor"


@dataclass(frozen=True)
class Actor:
    """The named token holder behind a request (or an operator at the CLI)."""

    name: str
    role: Role
    depots: frozenset[str] = field(default_factory=frozenset)
    token_id: uuid.UUID | None = None


def operator(name: str = "cli") -> Actor:
    """The actor for commands run on the server itself, by whoever holds its shell."""
    return Actor(name=f"operator:{name}", role=Role.ADMIN)
