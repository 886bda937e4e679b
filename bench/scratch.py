"""Scratch databases for the benchmarks: freshly migrated, ours alone, dropped afterwards."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from inventory.db import migrate


@contextmanager
def scratch_database(server: str, label: str = "bench") -> Iterator[str]:
    """A freshly migrated database of our own, dropped afterwards (PostgreSQL), or a scratch
    SQLite file. No other database is touched."""
    if server == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / f'{label}.sqlite3'}"
            migrate.upgrade(url)
            yield url
        return
    name = f"inventory_{label}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(server).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
