"""Keyset pagination: `?limit=&after=<cursor>`, answered as `{"items": [...], "next": cursor|null}`.
The cursor is the last item's sort key, opaque to clients."""

from __future__ import annotations

import base64
import binascii
import json
from functools import cache
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ..services.errors import Invalid


class PageArgs(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = fields.String(metadata={"description": "the `next` cursor of the previous page"})


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as error:
        raise Invalid("not a cursor this API gave out", field="after") from error


def keyset_page(
    session: Session, stmt: Select[Any], key: InstrumentedAttribute[Any], args: dict[str, Any]
) -> dict[str, Any]:
    """One page of `stmt`'s entities ordered by the unique column `key`."""
    limit: int = args["limit"]
    if args.get("after"):
        stmt = stmt.where(key > decode_cursor(args["after"]))
    rows = list(session.scalars(stmt.order_by(key).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    last = getattr(rows[-1], key.key) if rows and more else None
    return {"items": rows, "next": encode_cursor(_plain(last)) if last is not None else None}


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | str) else str(value)


@cache
def page_of(item_schema: type[Schema]) -> type[Schema]:
    """The list envelope for `item_schema`, made once per item schema (OpenAPI names it)."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    return type(
        name,
        (Schema,),
        {
            "items": fields.List(fields.Nested(item_schema)),
            "next": fields.String(allow_none=True),
        },
    )
