"""What every request must be before any view reads it: a JSON body the API can read whole
(valid JSON, nested at most `MAX_DEPTH` deep, integers of at most `MAX_INT_DIGITS` digits, no
NaN or Infinity), and no NUL character or lone surrogate in any string of the body, the query,
the path or the Idempotency-Key. Such strings cannot be stored (PostgreSQL refuses NUL, UTF-8
cannot carry a lone surrogate) and are never what a person typed.

A body that is not JSON, or nested too deep to read, is a 400; a readable body with a bad value
is a 422 naming its top-level field (the detail gives the whole path). Each field's own schema
then bounds what the value means: quantities, years, limits."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Response, request

from ..services.errors import Invalid
from .problems import problem

MAX_DEPTH = 64
MAX_INT_DIGITS = 40  # far beyond any count, year or limit; each field bounds its own range
FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def has_forbidden_characters(text: str) -> bool:
    """A NUL or a lone surrogate (a surrogate pair decodes to one character, never to these)."""
    return FORBIDDEN.search(text) is not None


class NotJSON(ValueError):
    """The body is not JSON this API reads; answered 400."""


class _HugeInteger:
    """An integer literal longer than `MAX_INT_DIGITS`, kept so the walk can name its field."""

    def __init__(self, digits: str) -> None:
        self.digits = digits


def _integer(text: str) -> int | _HugeInteger:
    return _HugeInteger(text) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _refuse_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON")


def parse_body(data: bytes) -> Any:
    """The body as JSON; `NotJSON` (400) or `Invalid` (422 naming the field) if it is not one
    this API reads."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_int=_integer, parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise NotJSON(f"the body is not UTF-8: {error.reason} at byte {error.start}") from error
    except RecursionError as error:
        raise NotJSON(f"the body is nested deeper than {MAX_DEPTH} levels") from error
    except json.JSONDecodeError as error:
        where = f"at character {error.pos}"
        raise NotJSON(f"the body is not valid JSON: {error.msg} {where}") from error
    check_value(value)
    return value


def check_value(value: Any) -> None:
    """Walk a parsed body (without recursion) for depth, huge integers and bad characters."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            where = path if len(path) <= 80 else path[:80] + "..."
            raise NotJSON(f"the body is nested deeper than {MAX_DEPTH} levels (at {where})")
        if isinstance(item, dict):
            for key, child in item.items():
                if has_forbidden_characters(key):
                    _invalid(path, "a key contains a NUL character or a lone surrogate")
                stack.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if has_forbidden_characters(item):
                _invalid(path, "contains a NUL character or a lone surrogate")
        elif isinstance(item, _HugeInteger):
            _invalid(path, f"an integer of {len(item.digits.lstrip('-'))} digits is out of range")


def _invalid(path: str, message: str) -> None:
    field = re.split(r"[.\[]", path, maxsplit=1)[0] if path else "_schema"
    detail = f"{path}: {message}" if path else message
    raise Invalid(detail, errors={field: [detail]})


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def check_request() -> Response | None:
    """Refuse a request whose strings or body no view could safely read (see the module)."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and has_forbidden_characters(value):
            raise Invalid("contains a NUL character or a lone surrogate", field=name)
    for name, value in request.args.items(multi=True):
        if has_forbidden_characters(name) or has_forbidden_characters(value):
            raise Invalid("contains a NUL character or a lone surrogate", field=name)
    key = request.headers.get("Idempotency-Key")
    if key is not None and has_forbidden_characters(key):
        raise Invalid("contains a NUL character or a lone surrogate", field="Idempotency-Key")
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and _is_json(request.mimetype):
        data = request.get_data(cache=True)
        if data:
            try:
                parse_body(data)
            except NotJSON as error:
                return problem(400, "Bad request", str(error))
    return None


def init_app(app: Flask) -> None:
    app.before_request(check_request)
