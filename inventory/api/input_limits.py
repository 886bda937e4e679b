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
SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")  # NUL or any surrogate, paired or not


def has_forbidden_characters(text: str) -> bool:
    """A NUL or a lone surrogate (a surrogate pair decodes to one character, never to these)."""
    return FORBIDDEN.search(text) is not None


class NotJSON(ValueError):
    """The body is not JSON this API reads; answered 400."""


class _HugeInteger:
    """An integer literal longer than `MAX_INT_DIGITS`, kept so the walk can name its field."""

    def __init__(self, digits: str) -> None:
        self.digits = digits


def _refuse_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON")


def parse_body(data: bytes) -> Any:
    """The body as JSON; `NotJSON` (400) or `Invalid` (422 naming the field) if it is not one
    this API reads."""
    huge: list[_HugeInteger] = []

    def integer(text: str) -> int | _HugeInteger:
        if len(text.lstrip("-")) <= MAX_INT_DIGITS:
            return int(text)
        huge.append(_HugeInteger(text))
        return huge[-1]

    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_int=integer, parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise NotJSON(f"the body is not UTF-8: {error.reason} at byte {error.start}") from error
    except RecursionError as error:
        raise NotJSON(f"the body is nested deeper than {MAX_DEPTH} levels") from error
    except json.JSONDecodeError as error:
        where = f"at character {error.pos}"
        raise NotJSON(f"the body is not valid JSON: {error.msg} {where}") from error
    check_depth(value)
    # JSON refuses raw control characters in strings and UTF-8 cannot carry a lone surrogate, so
    # a NUL or a surrogate can only come from a \u escape: most bodies skip the walk below.
    if huge or SUSPECT_ESCAPE.search(text):
        check_values(value)
    return value


def check_depth(value: Any) -> None:
    """`NotJSON` if `value` nests containers deeper than MAX_DEPTH (read level by level)."""
    level, depth = [value] if type(value) in (dict, list) else [], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise NotJSON(f"the body is nested deeper than {MAX_DEPTH} levels")
        inner: list[Any] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                kind = type(child)
                if kind is dict or kind is list:
                    inner.append(child)
        level = inner


def check_values(value: Any) -> None:
    """`Invalid` naming the first huge integer or string with a NUL or lone surrogate."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if has_forbidden_characters(key):
                    _invalid(path, "a key contains a NUL character or a lone surrogate")
                stack.append((child, f"{path}.{key}" if path else key))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
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
