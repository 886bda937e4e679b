"""Events for monitors, written to the outbox in the transaction that caused them; the worker
delivers them as webhooks and the alert feed reads them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from .unit_of_work import UnitOfWork, jsonable


def publish(
    uow: UnitOfWork,
    event_type: str,
    data: dict[str, Any],
    *,
    depot: str | None = None,
    kind: str | None = None,
    severity: str | None = None,
) -> None:
    """Queue `event_type` (e.g. "discrepancy.opened") with its `data`; filters use the rest.
    `run_write` inserts the queued rows of `outbox_events` after the audit record (see there)."""
    uow.events.append(
        {
            "id": uuid.uuid4(),
            "type": event_type,
            "occurred_at": uow.now,
            "depot": depot,
            "kind": kind,
            "severity": severity,
            "payload": json.dumps(jsonable(data), separators=(",", ":")),
            "dispatched": False,
        }
    )
