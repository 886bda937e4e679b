"""The console: server-rendered pages under /console/ for auditors, monitors and clerks.

It calls the same use cases as the API, with the signed-in token's actor, and shows their refusals;
it decides nothing about scope itself. Pages read without JavaScript."""

from __future__ import annotations

from flask import Flask

from . import alerts, auth, discrepancies, oversight, overview, reports, weapons
from .base import bp

PAGES = (alerts, auth, discrepancies, oversight, overview, reports, weapons)  # routes on `bp`


def init_app(app: Flask) -> None:
    auth.init_app(app)
    app.register_blueprint(bp)
