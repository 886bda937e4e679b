"""Per-request plumbing between HTTP and the use cases: the session, the request's context, and
the one way a view runs a write (`write`), which also handles Idempotency-Key."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from marshmallow import Schema
from sqlalchemy.orm import Session, sessionmaker

from ..db import replica
from ..services.errors import Invalid
from ..services.unit_of_work import Context, IdempotencyKey, UnitOfWork, run_write
from ..settings import Settings

T = TypeVar("T")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def settings() -> Settings:
    configured: Settings = current_app.extensions["inventory.settings"]
    return configured


def db_session() -> Session:
    if "session" not in g:
        factory: sessionmaker[Session] = current_app.extensions["inventory.sessions"]
        g.session = factory()
    session: Session = g.session
    return session


def read_session() -> Session:
    """The session for a heavy read (reports, CSV exports, trace, histories, the console's pages,
    audit verify): the read replica's once it has replayed every write committed so far (the
    client's own included), else the primary's. Without INVENTORY_READ_DATABASE_URL it is
    `db_session()`. Never write through it."""
    if "read_session" not in g:
        factory: sessionmaker[Session] | None = current_app.extensions.get(
            "inventory.read_sessions"
        )
        standby = None
        if factory is not None:
            standby = replica.standby_session(
                current_app.extensions["inventory.engine"],
                factory(),
                settings().read_replica_wait,
            )
        g.read_session = standby
    session: Session = g.read_session or db_session()
    return session


def request_context() -> Context:
    from .auth import current_actor

    return Context(
        actor=current_actor(),
        request_id=g.request_id,
        settings=settings(),
        client_request_id=g.get("client_request_id"),
    )


def write(
    use_case: Callable[[UnitOfWork], T],
    schema: Schema | Callable[[T, UnitOfWork], Any],
    status: int = 201,
) -> Response:
    """Run a write use case and answer with `schema`'s dump of its result.

    With an Idempotency-Key, a replay of the same request returns the first response unchanged."""
    context = request_context()
    key = request.headers.get("Idempotency-Key")
    idempotency = None
    if key is not None:
        if not 1 <= len(key) <= 255:
            raise Invalid("Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key")
        assert context.actor.token_id is not None
        idempotency = IdempotencyKey.for_request(
            context.actor.token_id,
            key,
            request.method,
            request.path,
            request.get_json(silent=True),
        )
    present = (
        schema
        if callable(schema) and not isinstance(schema, Schema)
        else (lambda result, _uow: schema.dump(result))
    )
    outcome = run_write(
        db_session(), context, use_case, present, status=status, idempotency=idempotency
    )
    response = Response(
        json.dumps(outcome.body), status=outcome.status, mimetype="application/json"
    )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def init_app(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        # The id in logs, problems and audit records is always the server's own, so no client
        # can make two requests look like one; a well-formed client id is kept beside it.
        given = request.headers.get("X-Request-ID", "")
        g.request_id = uuid.uuid4().hex
        g.client_request_id = given if REQUEST_ID.match(given) else None

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    @app.teardown_request
    def close_session(_error: BaseException | None) -> None:
        for name in ("session", "read_session"):
            session = g.pop(name, None)
            if session is not None:
                session.close()
