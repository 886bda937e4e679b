"""`GET /healthz`: unauthenticated liveness that also proves the database answers."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .context import db_session
from .problems import problem

log = logging.getLogger(__name__)
blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> Response:
    try:
        db_session().execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        # One line, no stack: orchestrators probe every few seconds while the database is down.
        cause = getattr(error, "orig", None) or error
        log.warning("health check: database unreachable", extra={"error": str(cause).strip()})
        return problem(503, "Service unavailable", "the database is unreachable")
    return jsonify(status="ok")
