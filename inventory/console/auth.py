"""Signing in with a token and out again. The cookie carries a random session id (HttpOnly,
SameSite=Strict, Secure over https); the server keeps only its hash."""

from __future__ import annotations

import secrets

from flask import Flask, g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..api.context import db_session, settings
from ..services import console_sessions
from .base import SESSION_COOKIE, SIGN_IN_COOKIE, CsrfRefused, bp, context, same_secret


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for("console.overview")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    problem = None
    if request.method == "POST":
        if not same_secret(request.form.get("csrf_token"), request.cookies.get(SIGN_IN_COOKIE)):
            raise CsrfRefused("this form has no valid CSRF token; reload the page and try again")
        secret = request.form.get("token", "")
        opened = (
            console_sessions.sign_in(db_session(), secret, g.request_id, settings())
            if secret
            else None
        )
        if opened is not None:
            response = redirect(_safe_next(request.form.get("next")), code=303)
            response.set_cookie(
                SESSION_COOKIE,
                opened.session_id,
                httponly=True,
                secure=request.is_secure,
                samesite="Strict",
                path="/console/",
            )
            response.delete_cookie(SIGN_IN_COOKIE, path="/console/")
            return response
        problem = "That token is unknown or has been revoked."
    form_secret = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)
    page = render_template(
        "console/sign_in.html",
        problem=problem,
        next=request.values.get("next", ""),
        csrf_token=form_secret,
    )
    response = make_response(page, 401 if problem else 200)
    response.set_cookie(
        SIGN_IN_COOKIE,
        form_secret,
        httponly=True,
        secure=request.is_secure,
        samesite="Strict",
        path="/console/",
    )
    return response


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    console_sessions.sign_out(db_session(), context(), request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(url_for("console.sign_in"), code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console/")
    return response


def init_app(app: Flask) -> None:
    @app.get("/console")
    def console_root() -> ResponseReturnValue:
        return redirect(url_for("console.overview"))
