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

    def may_act_in(self, depot_code: str) -> bool:
        """Whether this actor may record movements that leave or enter `depot_code`."""
        return self.role is Role.ADMIN or (self.role is Role.CLERK and depot_code in self.depots)

    def may_read_depot(self, depot_code: str) -> bool:
        """Clerks see only their depots; every other role reads everything."""
        return self.role is not Role.CLERK or depot_code in self.depots


def operator(name: str = "cli") -> Actor:
    """The actor for commands run on the server itself, by whoever holds its shell."""
    return Actor(name=f"operator:{name}", role=Role.ADMIN)
