"""Keyset pagination: `?limit=&after=<cursor>&order=asc|desc`, answered as
`{"items": [...], "next": cursor|null}`.

A cursor is opaque to clients. Inside it is base64url JSON `[path, order, key...]`: the list it was
made for, the order it was read in, and the last item's sort key, each key value written as JSON
can carry it (UUIDs and datetimes as text). Decoding checks every part against what this list
expects (same path and order, one value per key column, each of the column's type and in its
range), so a cursor the API did not give out, edited, from another list or of another order is a
422 naming `after`; it is never handed to the database to find out. Cursors only say where a page
starts, never what a caller may see, so they are checked rather than signed."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from flask import request
from marshmallow import Schema, fields, validate
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.types import TypeDecorator

from ..services.errors import Invalid
from .input_limits import has_forbidden_characters

MAX_CURSOR = 2000  # characters; the longest cursor the API makes is a few hundred
BIGINT = 2**63 - 1
ORDERS = ("asc", "desc")


def order_field(default: str) -> fields.String:
    """`order=asc|desc` for a list, with `default` as its documented default."""
    return fields.String(
        load_default=default,
        validate=validate.OneOf(ORDERS),
        metadata={
            "description": f"asc: oldest first; desc: newest first (default {default}). "
            "Keep the same order while following `next`"
        },
    )


class PageArgs(Schema):
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=1000),
        metadata={"description": "items per page"},
    )
    after = fields.String(
        validate=validate.Length(min=1, max=MAX_CURSOR),
        metadata={"description": "the `next` cursor of the previous page, exactly as given"},
    )


class AscendingPageArgs(PageArgs):
    """A list read oldest first unless `order=desc`."""

    order = order_field("asc")


class DescendingPageArgs(PageArgs):
    """A list read newest first unless `order=asc`."""

    order = order_field("desc")


Key = InstrumentedAttribute[Any]


def encode_cursor(keys: Sequence[Key], values: Sequence[Any], order: str = "asc") -> str:
    """The cursor for the page after the item whose sort key is `values`."""
    parts = [request.path, order, *(_plain(value) for value in values)]
    assert len(values) == len(keys)
    text = json.dumps(parts, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(keys: Sequence[Key], cursor: str, order: str = "asc") -> list[Any]:
    """The sort key a cursor carries, each value of its key column's type; `Invalid` naming
    `after` for anything this list did not give out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _not_ours() from error
    if not isinstance(parts, list) or len(parts) != 2 + len(keys):
        raise _not_ours()
    path, made_in, *values = parts
    if path != request.path:
        raise _not_ours("a cursor of another list")
    if made_in != order:
        raise _not_ours(f"a cursor made for order={made_in}, not order={order}")
    return [_typed(key, value) for key, value in zip(keys, values, strict=True)]


def _not_ours(why: str = "not a cursor this API gave out") -> Invalid:
    return Invalid(f"{why}: give `next` of the previous page unchanged", field="after")


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _typed(key: Key, value: Any) -> Any:
    """`value` as the key column's Python type, or `Invalid` if it cannot be one."""
    column_type = key.type
    if isinstance(column_type, TypeDecorator):  # e.g. UTCDateTime: its stored type says
        column_type = column_type.impl_instance
    python_type = column_type.python_type
    if python_type is int:
        if type(value) is int and -BIGINT <= value <= BIGINT:
            return value
    elif python_type is uuid.UUID:
        if type(value) is str and len(value) == 36:
            try:
                parsed = uuid.UUID(value)
            except ValueError:
                pass
            else:
                if str(parsed) == value:
                    return parsed
    elif python_type is str:
        if type(value) is str and len(value) <= 200 and not has_forbidden_characters(value):
            return value
    elif python_type is datetime:
        if type(value) is str and len(value) <= 40:
            try:
                when = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if when.tzinfo is not None and 1900 <= when.year <= 9999:
                    return when
    raise _not_ours()


def after_condition(keys: Sequence[Key], values: Sequence[Any], order: str) -> ColumnElement[bool]:
    """Rows strictly after `values` in (`keys`, `order`) order: lexicographic over the keys,
    spelled out rather than as a row-value comparison so both databases plan it the same way."""
    beyond: Callable[[Key, Any], ColumnElement[bool]] = (
        (lambda key, value: key > value) if order == "asc" else (lambda key, value: key < value)
    )
    alternatives = []
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        equal_before = [k == v for k, v in zip(keys[:i], values[:i], strict=True)]
        alternatives.append(and_(*equal_before, beyond(key, value)))
    return or_(*alternatives)


def ordering(keys: Sequence[Key], order: str) -> list[Any]:
    return [key.asc() if order == "asc" else key.desc() for key in keys]


def keyset_page(
    session: Session,
    stmt: Select[Any],
    key: Key | Sequence[Key],
    args: dict[str, Any],
    *,
    rows: bool = False,
) -> dict[str, Any]:
    """One page of `stmt`, ordered by the unique column `key` (or the unique combination of
    columns `key`), in `args["order"]` (default asc). `stmt` selects entities that have the key
    as attributes, or, with `rows=True`, rows that carry the key columns under their names."""
    keys = [key] if isinstance(key, InstrumentedAttribute) else list(key)
    limit: int = args["limit"]
    order: str = args.get("order", "asc")
    if args.get("after"):
        stmt = stmt.where(after_condition(keys, decode_cursor(keys, args["after"], order), order))
    stmt = stmt.order_by(*ordering(keys, order)).limit(limit + 1)
    found = list(session.execute(stmt) if rows else session.scalars(stmt))
    more = len(found) > limit
    found = found[:limit]
    next_cursor = None
    if found and more:
        last = found[-1]
        values = [getattr(last, k.key) for k in keys]
        next_cursor = encode_cursor(keys, values, order)
    return {"items": found, "next": next_cursor}


@cache
def page_of(item_schema: type[Schema]) -> type[Schema]:
    """The list envelope for `item_schema`, made once per item schema (OpenAPI names it)."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    return type(
        name,
        (Schema,),
        {
            "items": fields.List(fields.Nested(item_schema)),
            "next": fields.String(
                allow_none=True,
                metadata={"description": "pass as `after` for the next page; null on the last"},
            ),
        },
    )
