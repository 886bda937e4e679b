"""Cursors round-trip with the type of the key they were made from, and anything the API did not
give out is refused naming `after` (no database needed: the keys' column types decide)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from inventory.api.pagination import decode_cursor, encode_cursor
from inventory.db.models import AuditRecord, Holder, Movement, MovementLine, Weapon
from inventory.services.errors import Invalid

PATH = "/api/v1/things"
DATETIME_KEY = AuditRecord.recorded_at  # no list pages by a time yet; the type is what matters


@pytest.fixture
def on_a_list() -> Iterator[None]:
    with Flask(__name__).test_request_context(PATH):
        yield


def forged(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), st.sampled_from(["asc", "desc"]))
def test_an_integer_key_round_trips(seq: int, order: str) -> None:
    with Flask(__name__).test_request_context(PATH):
        cursor = encode_cursor([AuditRecord.seq], [seq], order)
        assert decode_cursor([AuditRecord.seq], cursor, order) == [seq]


@given(st.uuids())
def test_a_uuid_key_round_trips(value: uuid.UUID) -> None:
    with Flask(__name__).test_request_context(PATH):
        cursor = encode_cursor([Weapon.id], [value])
        [decoded] = decode_cursor([Weapon.id], cursor)
        assert decoded == value and isinstance(decoded, uuid.UUID)


@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=64))
def test_a_text_key_round_trips(code: str) -> None:
    with Flask(__name__).test_request_context(PATH):
        assert decode_cursor([Holder.code], encode_cursor([Holder.code], [code])) == [code]


@given(
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_a_datetime_key_round_trips(naive: datetime, minutes: int) -> None:
    when = naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    with Flask(__name__).test_request_context(PATH):
        [decoded] = decode_cursor([DATETIME_KEY], encode_cursor([DATETIME_KEY], [when]))
        assert decoded == when and decoded.utcoffset() == when.utcoffset()


def test_a_composite_key_round_trips(on_a_list: None) -> None:
    keys = [Movement.seq, MovementLine.line_no]
    assert decode_cursor(keys, encode_cursor(keys, [41, 7], "desc"), "desc") == [41, 7]


@pytest.mark.parametrize(
    ("keys", "cursor", "order"),
    [
        ([Weapon.id], forged([PATH, "asc", 5]), "asc"),  # a number where a UUID was
        ([Weapon.id], forged([PATH, "asc", "not-a-uuid"]), "asc"),
        ([Weapon.id], forged([PATH, "asc", uuid.uuid4().hex]), "asc"),  # not the form we write
        ([AuditRecord.seq], forged([PATH, "asc", "12"]), "asc"),  # text where a seq was
        ([AuditRecord.seq], forged([PATH, "asc", True]), "asc"),
        ([AuditRecord.seq], forged([PATH, "asc", 2**64]), "asc"),
        ([AuditRecord.seq], forged([PATH, "asc", 1.5]), "asc"),
        ([AuditRecord.seq], forged([PATH, "desc", 3]), "asc"),  # made for the other order
        ([AuditRecord.seq], forged(["/api/v1/other", "asc", 3]), "asc"),  # another list
        ([AuditRecord.seq], forged([PATH, "asc"]), "asc"),  # no key
        ([AuditRecord.seq], forged([PATH, "asc", 3, 4]), "asc"),  # a key too many
        ([Movement.seq, MovementLine.line_no], forged([PATH, "asc", 3]), "asc"),
        ([Holder.code], forged([PATH, "asc", "D\x00"]), "asc"),
        ([Holder.code], forged([PATH, "asc", "x" * 201]), "asc"),
        ([DATETIME_KEY], forged([PATH, "asc", "2026-01-01T00:00:00"]), "asc"),  # naive
        ([DATETIME_KEY], forged([PATH, "asc", "0001-01-01T00:00:00+14:00"]), "asc"),
        ([AuditRecord.seq], forged({"a": 1}), "asc"),
        ([AuditRecord.seq], forged(None), "asc"),
        ([AuditRecord.seq], "%%%", "asc"),
        ([AuditRecord.seq], base64.urlsafe_b64encode(b"\xff\xfe").decode(), "asc"),
        ([AuditRecord.seq], base64.urlsafe_b64encode(b"[" * 100_000).decode(), "asc"),
    ],
)
def test_a_cursor_the_api_did_not_give_out_is_refused_naming_after(
    on_a_list: None, keys: list[Any], cursor: str, order: str
) -> None:
    with pytest.raises(Invalid) as refused:
        decode_cursor(keys, cursor, order)
    assert refused.value.errors is not None and "after" in refused.value.errors


def test_cursors_are_text_safe_in_a_url(on_a_list: None) -> None:
    cursor = encode_cursor([Weapon.id, AuditRecord.seq], [uuid.uuid4(), 2**62], "desc")
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
