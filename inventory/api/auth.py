"""Bearer-token authentication for /api/v1 and the per-endpoint role declaration.

Every API view method carries `@allow(...)`; a view without one refuses everyone (and a test checks
that none is missing). The roles also go into the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, request
from flask_smorest import Blueprint

from ..domain.actors import Actor, Role
from ..services import tokens
from ..services.errors import Forbidden, ServiceError
from .context import db_session

F = TypeVar("F", bound=Callable[..., Any])
API_PREFIX = "/api/v1/"
PUBLIC_ENDPOINTS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "docs_assets.static"}
ALL_ROLES = tuple(Role)
REALM = "stockpile"


class Unauthorized(ServiceError):
    """A 401 with its RFC 6750 challenge: `error="invalid_token"` only when a token was sent."""

    status, title, type_slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str, *, token_sent: bool = False) -> None:
        super().__init__(detail)
        challenge = f'Bearer realm="{REALM}"'
        if token_sent:
            challenge += f', error="invalid_token", error_description="{detail}"'
        self.headers = {"WWW-Authenticate": challenge}


def allow(*roles: Role) -> Callable[[F], F]:
    """Declare which roles may call a view method. Depot scope is checked by the use case."""
    names = sorted(str(r) for r in roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            actor = current_actor()
            if actor.role not in roles:
                raise Forbidden(
                    f"role {actor.role} may not {request.method} {request.path}; "
                    f"allowed: {', '.join(names)}"
                )
            return view(*args, **kwargs)

        guarded.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        documented: F = Blueprint.doc(
            security=[{"bearerAuth": []}],
            description=f"Roles: {', '.join(names)}.",
        )(guarded)
        documented.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return documented

    return decorate


def current_actor() -> Actor:
    actor: Actor | None = g.get("actor")
    if actor is None:
        raise Unauthorized("this endpoint needs an Authorization: Bearer <token> header")
    return actor


def init_app(app: Flask) -> None:
    @app.before_request
    def authenticate() -> None:
        if not request.path.startswith(API_PREFIX) or request.endpoint in PUBLIC_ENDPOINTS:
            return
        if request.method == "OPTIONS":
            return  # a CORS preflight carries no credentials; it learns only the methods allowed
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("send Authorization: Bearer <token>")
        # The lookup opens the request's transaction, which its reads, or (on PostgreSQL) its
        # write, go on in: one connection checkout per request.
        actor = tokens.authenticate(db_session(), secret.strip())
        if actor is None:
            raise Unauthorized("the token is unknown or revoked", token_sent=True)
        g.actor = actor
