"""Gunicorn settings that `inventory serve` loads (`--config python:inventory.gunicorn_hooks`)."""

from __future__ import annotations

import gc
from typing import Any

# gunicorn's own lines (start, workers, timeouts) as JSON, like the app's, wherever it runs.
logger_class = "inventory.logs.GunicornLogger"


def post_worker_init(_worker: Any) -> None:
    """Move the loaded application (SQLAlchemy, marshmallow and Flask objects: hundreds of
    thousands) out of the collector's sight. A full collection otherwise walks all of them, about
    50 ms, a few times during every 1,000-line movement."""
    gc.freeze()
