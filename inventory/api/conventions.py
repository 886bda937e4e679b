"""The HTTP conventions every endpoint keeps, in one place: 415 for a body that is not JSON,
`Location` on every 201, `Accept: text/csv` as well as `?format=csv`, ETag and If-None-Match on
single-resource reads, and CORS for the browser origins INVENTORY_CORS_ORIGINS allows (none by
default)."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Request, Response, request
from werkzeug.datastructures import MultiDict

from .auth import API_PREFIX
from .context import settings
from .problems import problem

# Rule -> the URI of what its 201 created, filled from the response body and the path's values.
# Units, parties, sightings, stocktakes, count batches and checkpoints have no read of their own
# yet: their Location names them all the same (RFC 9110: the primary resource created).
LOCATIONS: dict[str, str] = {
    "/api/v1/depots": "/api/v1/depots/{code}",
    "/api/v1/units": "/api/v1/units/{code}",
    "/api/v1/parties": "/api/v1/parties/{code}",
    "/api/v1/item-types": "/api/v1/item-types/{code}",
    "/api/v1/tokens": "/api/v1/tokens/{id}",
    "/api/v1/movements": "/api/v1/movements/{id}",
    "/api/v1/transfers": "/api/v1/transfers/{id}",
    "/api/v1/transfers/<uuid:transfer_id>/receipt": "/api/v1/transfers/{transfer_id}",
    "/api/v1/verifications/<uuid:verification_id>/result": (
        "/api/v1/verifications/{verification_id}"
    ),
    "/api/v1/subscriptions": "/api/v1/subscriptions/{id}",
    "/api/v1/sightings": "/api/v1/sightings/{id}",
    "/api/v1/stocktakes": "/api/v1/stocktakes/{id}",
    "/api/v1/stocktakes/<uuid:stocktake_id>/counts": (
        "/api/v1/stocktakes/{stocktake_id}/counts/{id}"
    ),
    "/api/v1/discrepancies/<uuid:discrepancy_id>/events": (
        "/api/v1/discrepancies/{discrepancy_id}"
    ),
    "/api/v1/audit/checkpoints": "/api/v1/audit/checkpoints/{seq}",
    # A witness has no URL of its own (its name may hold '/'): the list that shows it.
    "/api/v1/log/witnesses": "/api/v1/log/witnesses",
    "/api/v1/log/cosignatures": "/api/v1/log/checkpoint?tree_size={tree_size}",
}

# Rules whose GET also answers text/csv (their `format` query argument offers csv).
CSV_RULES = {"/api/v1/discrepancies", "/api/v1/reports/accountability"}
CSV = "text/csv"
JSON = "application/json"

# What a browser may send and read across origins.
CORS_REQUEST_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match, X-Request-ID"
CORS_EXPOSED_HEADERS = "Location, ETag, Idempotent-Replayed, WWW-Authenticate, X-Request-ID"
CORS_MAX_AGE = "600"


def refuse_non_json_body(req: Request) -> Response | None:
    """415 when a request carries a body that is not JSON: a form or text sent by mistake would
    otherwise read as an empty object and fail as "missing fields", which misleads."""
    if req.method not in ("POST", "PUT", "PATCH") or not req.path.startswith(API_PREFIX):
        return None
    has_body = bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "")
    if not has_body or req.is_json:
        return None
    got = req.mimetype or "no Content-Type"
    response = problem(
        415,
        "Unsupported media type",
        f"send the body as application/json (got {got})",
        slug="unsupported-media-type",
    )
    response.headers["Accept-Post"] = JSON
    return response


def negotiate_csv(req: Request) -> None:
    """`Accept: text/csv` on a CSV-capable list chooses CSV, as `?format=csv` does; an explicit
    `format` in the query wins."""
    if req.method != "GET" or req.url_rule is None or req.url_rule.rule not in CSV_RULES:
        return
    if "format" in req.args or req.accept_mimetypes.best_match([JSON, CSV]) != CSV:
        return
    args = MultiDict(req.args)
    args["format"] = "csv"
    req.args = args


def add_location(req: Request, response: Response) -> None:
    if response.status_code != 201 or "Location" in response.headers or req.url_rule is None:
        return
    template = LOCATIONS.get(req.url_rule.rule)
    if template is None or response.mimetype != JSON:
        return
    body: Any = json.loads(response.get_data())
    values = {**(req.view_args or {}), **(body if isinstance(body, dict) else {})}
    response.headers["Location"] = template.format(**values)


def add_etag(req: Request, response: Response) -> None:
    """A strong ETag on a single resource (a path with an id), and 304 when it still matches."""
    if (
        req.method != "GET"
        or response.status_code != 200
        or not req.view_args
        or response.mimetype != JSON
        or response.direct_passthrough
    ):
        return
    response.add_etag()
    response.make_conditional(req)  # turns it into a 304 in place


def add_cors(req: Request, response: Response, allowed: tuple[str, ...]) -> None:
    origin = req.headers.get("Origin")
    if not req.path.startswith(API_PREFIX):
        return
    response.vary.add("Origin")
    if origin is None or origin.rstrip("/") not in allowed:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    if req.method == "OPTIONS" and "Access-Control-Request-Method" in req.headers:
        response.headers["Access-Control-Allow-Methods"] = response.headers.get("Allow", "")
        response.headers["Access-Control-Allow-Headers"] = CORS_REQUEST_HEADERS
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE


def init_app(app: Flask) -> None:
    """Register after auth: a request without a token gets its 401 before any 415."""

    @app.before_request
    def before() -> Response | None:
        negotiate_csv(request)
        return refuse_non_json_body(request)

    @app.after_request
    def after(response: Response) -> Response:
        add_location(request, response)
        if request.url_rule is not None and request.url_rule.rule in CSV_RULES:
            response.vary.add("Accept")
        add_etag(request, response)
        add_cors(request, response, settings().cors_origins)
        return response
