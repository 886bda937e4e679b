"""RFC 9457 problem+json for every error the API can return, 404 and 405 included. An unexpected
exception becomes a 500 problem carrying the request id; its stack goes to the log only."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, g
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from ..services.errors import ServiceError

log = logging.getLogger(__name__)
PROBLEM_TYPE_BASE = "https://stockpile.example/problems/"
PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    errors: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)


def _flatten(messages: dict[str, Any]) -> dict[str, Any]:
    """flask-smorest groups messages by location (json, query, ...); clients want them per field."""
    flat: dict[str, Any] = {}
    for location, by_field in messages.items():
        if isinstance(by_field, dict):
            flat.update(by_field)
        else:
            flat[location] = by_field
    return flat


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error response carries them."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), metadata={"description": "messages per field"})
    request_id = fields.String()


def http_error(error: HTTPException) -> Response:
    """Werkzeug's and flask-smorest's HTTP errors (400, 404, 405, 413, 422, ...) as problems."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if status == 422 and messages:
        errors = _flatten(messages)
        fields_ = ", ".join(sorted(errors))
        return problem(
            422, "Invalid input", f"invalid fields: {fields_}", slug="validation", errors=errors
        )
    if messages:
        flat = _flatten(messages).values()
        detail = "; ".join(str(m) for v in flat for m in (v if isinstance(v, list) else [v]))
    else:
        detail = data.get("message") or error.description or error.name
    response = problem(status, error.name, str(detail))
    allowed = getattr(error, "valid_methods", None)
    if status == 405 and allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def init_app(app: Flask) -> None:
    """Register the handlers; call after flask-smorest's Api so these win."""
    app.register_error_handler(HTTPException, http_error)

    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError) -> Response:
        response = problem(
            error.status, error.title, error.detail, slug=error.type_slug, errors=error.errors
        )
        response.headers.update(getattr(error, "headers", {}))
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        return problem(
            500,
            "Internal server error",
            "The server failed; quote the request_id when reporting it.",
        )
