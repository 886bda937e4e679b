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
    except SQLAlchemyError:
        log.exception("health check: database unreachable")
        return problem(503, "Service unavailable", "the database is unreachable")
    return jsonify(status="ok")
