"""Checks that what the application may still update agrees with what it appended: each
discrepancy's status with its events, and each active token's role and depots with the audit
record that issued it. `inventory ledger rebuild --check` runs these beside the ledger's."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import AuditRecord, Discrepancy, DiscrepancyEvent, Holder, Token, TokenDepot
from ..domain.audit_chain import decode
from ..domain.discrepancies import status_after


@dataclass(frozen=True)
class Mismatch:
    subject: str
    appended: object  # what the events / audit records say
    stored: object  # what the row says


def check(session: Session) -> list[Mismatch]:
    return discrepancies_against_events(session) + tokens_against_audit(session)


def discrepancies_against_events(session: Session) -> list[Mismatch]:
    """Discrepancies whose status or resolved_at is not what their events lead to."""
    actions: dict[int, list[str]] = defaultdict(list)
    resolved_at: dict[int, object] = {}
    for seq, action, at in session.execute(
        select(DiscrepancyEvent.discrepancy_seq, DiscrepancyEvent.action, DiscrepancyEvent.at)
        .order_by(DiscrepancyEvent.discrepancy_seq, DiscrepancyEvent.id)
        .execution_options(yield_per=10_000)
    ):
        actions[seq].append(action)
        if action == "resolve":
            resolved_at[seq] = at
    found: list[Mismatch] = []
    for seq, id_, status, resolved in session.execute(
        select(Discrepancy.seq, Discrepancy.id, Discrepancy.status, Discrepancy.resolved_at)
        .order_by(Discrepancy.seq)
        .execution_options(yield_per=10_000)
    ):
        expected = status_after(actions.get(seq, []))
        expected_at = resolved_at.get(seq) if expected == "resolved" else None
        if (expected, expected_at) != (status, resolved):
            found.append(
                Mismatch(
                    f"discrepancy {id_}",
                    f"{expected or 'impossible events'} (resolved_at {expected_at})",
                    f"{status} (resolved_at {resolved})",
                )
            )
    return found


def tokens_against_audit(session: Session) -> list[Mismatch]:
    """Active tokens whose name, role or depots differ from their `token.create` audit record
    (or that have none): a credential changed or made outside the application."""
    issued: dict[str, dict[str, object]] = {}
    for subject, body in session.execute(
        select(AuditRecord.subject, AuditRecord.body).where(AuditRecord.action == "token.create")
    ):
        decoded = decode(body)
        if decoded is not None and isinstance(decoded.get("changes"), dict):
            issued[subject] = decoded["changes"]
    depots: dict[object, list[str]] = defaultdict(list)
    for token_id, code in session.execute(
        select(TokenDepot.token_id, Holder.code).join(Holder, Holder.id == TokenDepot.holder_id)
    ):
        depots[token_id].append(code)
    found: list[Mismatch] = []
    for token_id, name, role in session.execute(
        select(Token.id, Token.name, Token.role).where(Token.revoked_at.is_(None))
    ):
        stored = {"name": name, "role": role, "depots": sorted(depots[token_id])}
        record = issued.get(f"token:{token_id}")
        appended = (
            None
            if record is None
            else {
                "name": record.get("name"),
                "role": record.get("role"),
                "depots": sorted(record.get("depots") or []),  # type: ignore[call-overload]
            }
        )
        if appended != stored:
            found.append(
                Mismatch(
                    f"token {token_id}",
                    json.dumps(appended, sort_keys=True) if appended else "no token.create record",
                    json.dumps(stored, sort_keys=True),
                )
            )
    return found
