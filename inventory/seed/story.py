"""The story steps of a seed scenario, each posted through the use case the API would call:
movements through the ledger, transfers, stocktakes and sightings through their services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from ..domain.movements import Kind
from ..services import ledger
from ..services.ledger import MovementRequest
from ..services.lines import Line, LotRef, WeaponRef
from ..services.unit_of_work import UnitOfWork
from .scenario import Scenario, ScenarioError

Post = Callable[[Callable[[UnitOfWork], Any]], Any]
LOADED_NOTE = "loaded from seed scenario {name!r} (back-dated history)"
# Fields a ledger movement step may carry, as MovementRequest names them.
_MOVEMENT_FIELDS = ("document_ref", "case_ref", "reason", "certificate_ref")


def post_step(
    session: Session, scenario: Scenario, step: dict[str, Any], post: Post, where: str
) -> str:
    """Post one step; return its one-line story (or its kind) for the load report."""
    kind = step.get("kind")
    handler = _HANDLERS.get(str(kind))
    if handler is None:
        raise ScenarioError(f"story.yaml {where}: unknown kind {kind!r}")
    handler(session, scenario, step, post, where)
    return str(step.get("story") or kind)


def lines_of(scenario: Scenario, step: dict[str, Any]) -> list[Line]:
    """The weapon and lot lines a step names, as references to registered items."""
    lines: list[Line] = [
        WeaponRef(serial=m.serial, manufacturer=m.manufacturer, item_type=m.item_type)
        for m in scenario.select(step.get("weapons", []))
    ]
    lines += [
        LotRef(
            quantity=int(lot["quantity"]),
            lot_number=lot["lot_number"],
            item_type=scenario.lot_type(lot["lot_number"]),
        )
        for lot in step.get("lots", [])
    ]
    return lines


def _movement(
    _session: Session, scenario: Scenario, step: dict[str, Any], post: Post, where: str
) -> None:
    request = MovementRequest(
        kind=Kind(step["kind"]),
        occurred_at=scenario.at(step["occurred_at"], f"{where} occurred_at"),
        lines=lines_of(scenario, step),
        source=step.get("from"),
        destination=step.get("to"),
        due_back_at=(
            scenario.at(step["due_back_at"], f"{where} due_back_at")
            if "due_back_at" in step
            else None
        ),
        note=LOADED_NOTE.format(name=scenario.name),
        **{name: step[name] for name in _MOVEMENT_FIELDS if name in step},
    )
    post(lambda uow: ledger.post_movement(uow, request))


_HANDLERS: dict[str, Callable[[Session, Scenario, dict[str, Any], Post, str], None]] = {
    str(kind): _movement
    for kind in (
        Kind.ISSUE,
        Kind.RETURN,
        Kind.LOSS,
        Kind.RECOVERY,
        Kind.EXPENDITURE,
        Kind.DESTRUCTION,
    )
}
