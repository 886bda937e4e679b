"""The movement schema's shortcut for bare `{"weapon_id": ...}` lines gives what the line schema
gives, and leaves every other line, and every error, to the schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import ValidationError

from inventory.api.movements import LineSchema, MovementInSchema
from inventory.services.lines import WeaponRef


def movement(lines: list[Any]) -> dict[str, Any]:
    return {
        "kind": "return",
        "from": "unit:U1",
        "to": "depot:D1",
        "occurred_at": datetime(2026, 11, 1, tzinfo=UTC).isoformat(),
        "lines": lines,
    }


def test_bare_weapon_id_lines_load_as_the_line_schema_loads_them() -> None:
    lines = [{"weapon_id": str(uuid.uuid4())} for _ in range(5)]
    lines.append({"weapon_id": uuid.uuid4().hex.upper()})  # another spelling uuid accepts
    loaded = MovementInSchema().load(movement(lines))
    assert loaded.lines == LineSchema(many=True).load(lines)
    assert all(type(line) is WeaponRef for line in loaded.lines)


@pytest.mark.parametrize(
    ("bad", "errors"),
    [
        ({"weapon_id": "not-a-uuid"}, {"weapon_id": ["Not a valid UUID."]}),
        ({"weapon_id": 12}, {"weapon_id": ["Not a valid UUID."]}),
        ({"weapon_id": str(uuid.uuid4()), "colour": "red"}, {"colour": ["Unknown field."]}),
        ("weapon", {"_schema": ["Invalid input type."]}),
    ],
)
def test_a_bad_line_among_bare_ones_is_named_by_the_schema(bad: Any, errors: Any) -> None:
    lines: list[Any] = [{"weapon_id": str(uuid.uuid4())} for _ in range(3)]
    lines.insert(1, bad)
    with pytest.raises(ValidationError) as raised:
        MovementInSchema().load(movement(lines))
    assert raised.value.messages == {"lines": {1: errors}}


def test_other_lines_take_the_schema() -> None:
    lines = [
        {"weapon_id": str(uuid.uuid4())},
        {"serial": " ak 00123 ", "manufacturer": "state arsenal", "item_type": "AKM"},
    ]
    loaded = MovementInSchema().load(movement(lines))
    assert loaded.lines[1] == WeaponRef(
        serial="AK 00123", manufacturer="STATE ARSENAL", item_type="AKM"
    )
