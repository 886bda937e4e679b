"""The console's blueprint and what every page shares: who is signed in, the CSRF check on every
form, running a write through `run_write` as that person, and errors shown as pages."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from ..api.context import db_session, settings
from ..clock import utcnow
from ..domain.actors import Actor
from ..services import console_sessions
from ..services.console_sessions import SignedIn
from ..services.errors import NotFound, ServiceError
from ..services.unit_of_work import Context, UnitOfWork, run_write
from .access import api_allows

T = TypeVar("T")
SESSION_COOKIE = "stockpile_console"
SIGN_IN_COOKIE = "stockpile_console_sign_in"  # CSRF for the sign-in form (no session yet)
OPEN_ENDPOINTS = {"console.sign_in", "console.static"}
# Each nav entry: (page endpoint, label, the API endpoint whose roles decide whether it shows).
NAV = (
    ("console.overview", "Overview", "reports.Accountability"),
    ("console.discrepancy_list", "Discrepancies", "discrepancies.Discrepancies"),
    ("console.weapon_search", "Weapons", "stock.Weapons"),
    ("console.transfer_list", "Transfers", "transfers.Transfers"),
    ("console.verification_list", "End-use checks", "verifications.Verifications"),
    ("console.alert_list", "Alerts", "alerts.Alerts"),
    ("console.report", "Report", "reports.Accountability"),
)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)


class CsrfRefused(ServiceError):
    status, title, type_slug = 400, "Form refused", "csrf"


def signed_in() -> SignedIn:
    found: SignedIn = g.console
    return found


def actor() -> Actor:
    return signed_in().actor


def context() -> Context:
    return Context(actor=actor(), request_id=g.request_id, settings=settings())


def run(use_case: Callable[[UnitOfWork], T]) -> T:
    """Run a write use case as the signed-in person, in one transaction, and return its result."""
    outcome = run_write(db_session(), context(), use_case, lambda result, _uow: result)
    result: T = outcome.body
    return result


def same_secret(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


@bp.before_request
def require_session() -> ResponseReturnValue | None:
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    session_id = request.cookies.get(SESSION_COOKIE)
    found = None
    if session_id:
        found = console_sessions.resolve(
            db_session(), session_id, utcnow(), settings().console_idle
        )
    if found is None:
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
    g.console = found
    g.actor = found.actor  # the access log names who asked, as for the API
    if request.method == "POST" and not same_secret(
        request.form.get("csrf_token"), found.csrf_token
    ):
        raise CsrfRefused("this form has no valid CSRF token; reload the page and try again")
    return None


@bp.after_request
def page_headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@bp.errorhandler(ServiceError)
def service_error(error: ServiceError) -> ResponseReturnValue:
    return render_template("console/error.html", error=error), error.status


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    page = ServiceError(error.description or "")
    page.title = error.name
    return render_template("console/error.html", error=page), status


@bp.route("/<path:unknown>", methods=["GET", "POST"])
def no_such_page(unknown: str) -> ResponseReturnValue:
    """Unknown console addresses get a page, not the API's problem+json."""
    raise NotFound(f"there is no console page /console/{unknown}")


@bp.app_template_filter("when")
def when(value: Any) -> str:
    """A timestamp as people read it: 2026-12-01 14:05 UTC."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return str(value.strftime("%Y-%m-%d %H:%M UTC"))


@bp.app_template_filter("percent")
def percent(value: float) -> str:
    return f"{value * 100:.2f} %"


@bp.context_processor
def page_context() -> dict[str, Any]:
    found: SignedIn | None = g.get("console")
    if found is None:
        return {"nav": [], "signed_in": None}
    nav = [(ep, label) for ep, label, api in NAV if api_allows(found.actor, api)]
    return {"nav": nav, "signed_in": found, "csrf_token": found.csrf_token}
