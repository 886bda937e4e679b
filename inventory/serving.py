"""How `inventory serve` serves the API: granian's WSGI mode, chosen by measurement (notes/16.md,
bench/serving.py) over gunicorn's sync and gthread workers and waitress on this 2-core machine.

Granian reads and parses requests in Rust on an async runtime, and hands a request to one of the
Python threads only once its headers are complete, so slow or idle sockets cost no thread: 50
slowloris sockets leave /healthz answering in milliseconds, where two of them took gunicorn's sync
workers down. Two processes with a few threads each keep one big request from holding the small
ones (a 10,000-line receipt delays a GET by tens of milliseconds) and served more small requests
per second than the sync workers.

What granian does not do is buffer a request body before the app reads it: a client that sends
its body slowly holds a thread. In production the reverse proxy buffers whole requests (compose
puts nginx in front, deploy/nginx/); served directly, the header timeout and the thread count are
the limits.
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # as inventory.metrics reads it

# Seconds a client may take to send its request line and headers before the socket is closed.
HEADER_TIMEOUT_MS = 10_000
# Python threads per process that run requests (the rest of the work is granian's, in Rust).
THREADS = 4
# On SIGTERM, requests in progress get this long to finish before their process is killed (a
# worker waiting on a connection that never closes would otherwise hold the shutdown for ever).
STOP_TIMEOUT_S = 20

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "inventory.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {"class": "inventory.logs.StderrHandler", "formatter": "json"},
    },
    "loggers": {
        "_granian": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "granian.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def app() -> Flask:
    """The application as a server process runs it: built once, then frozen out of the garbage
    collector's sight (SQLAlchemy, marshmallow and Flask objects: hundreds of thousands; a full
    collection walked them for ~50 ms a few times per 1,000-line movement)."""
    from .app import create_app

    built = create_app()
    gc.freeze()
    return built


def serve(host: str, port: int, workers: int, threads: int = THREADS) -> None:
    """Serve until SIGTERM/SIGINT (granian lets requests in progress finish)."""
    if not os.environ.get(MULTIPROCESS_ENV):
        # Each process writes its counters here and a scrape sums them (inventory/metrics.py).
        directory = tempfile.mkdtemp(prefix="inventory-metrics-")
        os.environ[MULTIPROCESS_ENV] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    else:
        # left by an earlier server: its counts would be added to this one's
        for stale in Path(os.environ[MULTIPROCESS_ENV]).glob("*.db"):
            stale.unlink()
    # The worker processes are forked from this one: if prometheus-client was imported before
    # the directory was set, it chose single-process values; choose again.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    Server(
        "inventory.serving:app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=threads,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_TIMEOUT_MS),
        websockets=False,
        log_dictconfig=LOG_CONFIG,
        respawn_failed_workers=True,
        workers_kill_timeout=STOP_TIMEOUT_S,
    ).serve()
