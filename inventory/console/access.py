"""What the API lets a role do, asked of the API's own declarations (`@allow` on each view), so
that the console shows and accepts exactly what the API would: there is no second list of roles."""

from __future__ import annotations

from flask import current_app

from ..domain.actors import Actor
from ..services.errors import Forbidden


def api_allows(actor: Actor, endpoint: str, method: str = "get") -> bool:
    """Whether the API endpoint (e.g. "alerts.Alerts") lets `actor`'s role call `method`."""
    view_class = getattr(current_app.view_functions[endpoint], "view_class")  # noqa: B009
    allowed: frozenset[str] = getattr(view_class, method.lower()).allowed_roles
    return actor.role in allowed


def require(actor: Actor, endpoint: str, method: str = "get") -> None:
    """Refuse as the API would when its role declaration does not include `actor`'s role."""
    if not api_allows(actor, endpoint, method):
        raise Forbidden(f"role {actor.role} may not do this (the API refuses it too)")
