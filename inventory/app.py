"""The application factory. Nothing is built at import time: `create_app` wires everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from . import api, console, logs, metrics
from .api import edge
from .db.engine import make_engine, make_session_factory
from .settings import Settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. `test_config` may carry a ready `Settings` under "SETTINGS" and Flask keys."""
    app = Flask(__name__, instance_path=None)
    config = dict(test_config or {})
    settings: Settings = config.pop("SETTINGS", None) or Settings.from_env()
    app.config.update(MAX_CONTENT_LENGTH=settings.max_request_bytes, **config)
    logs.configure(settings.log_level)

    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    engine = make_engine(settings.database_url)
    app.extensions["inventory.settings"] = settings
    app.extensions["inventory.engine"] = engine
    app.extensions["inventory.sessions"] = make_session_factory(engine)

    logs.init_app(app)
    api.init_app(app)
    edge.init_app(app, settings)
    metrics.init_app(app)
    console.init_app(app)
    return app
