"""The HTTP layer: flask-smorest blueprints, one per resource, over the use cases."""

from __future__ import annotations

from flask import Flask, Response, send_from_directory
from flask.typing import ResponseReturnValue
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException

from . import (
    alerts,
    audit,
    auth,
    context,
    conventions,
    discrepancies,
    health,
    input_limits,
    log,
    movements,
    openapi,
    problems,
    reference,
    reports,
    sightings,
    stock,
    stocktakes,
    subscriptions,
    tokens,
    transfers,
    verifications,
)

DOCS_ASSETS = "/api/v1/docs/assets/"
BLUEPRINTS = [
    reference.blp,
    tokens.blp,
    movements.blp,
    stock.blp,
    transfers.blp,
    verifications.blp,
    subscriptions.blp,
    alerts.blp,
    sightings.blp,
    stocktakes.blp,
    discrepancies.blp,
    discrepancies.sweep_blp,
    reports.blp,
    audit.blp,
    log.blp,
]


def init_app(app: Flask) -> None:
    app.config.update(
        API_TITLE="Stockpile",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_ASSETS,  # served below: depots are often offline
        API_SPEC_OPTIONS={
            "info": {
                "description": "Custody ledger and audit log for state weapons and ammunition."
            },
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        },
    )
    context.init_app(app)
    auth.init_app(app)
    conventions.init_app(app)
    input_limits.init_app(app)
    app.register_blueprint(health.blp)

    @app.get(DOCS_ASSETS + "<path:filename>", endpoint="docs_assets.static")
    def docs_assets(filename: str) -> ResponseReturnValue:
        return send_from_directory(str(swagger_ui_path), filename)

    api = StockpileApi(app)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    openapi.install(api)
    problems.init_app(app)


class StockpileApi(Api):
    """flask-smorest's Api with RFC 9457 problems as the documented error body."""

    ERROR_SCHEMA = problems.ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return problems.http_error(error)
