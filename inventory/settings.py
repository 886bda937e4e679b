"""Settings read from the environment once, when the app or the CLI starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

INSTANCE_DIR = Path(os.environ.get("INVENTORY_INSTANCE_DIR", Path.cwd() / "instance"))


def _default_database_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'inventory.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    instance_dir: Path = INSTANCE_DIR
    # A 10,000-line movement is about 2 MiB of JSON; far beyond that is a mistake or an attack.
    max_request_bytes: int = 8 * 1024 * 1024
    signing_key_path: Path = INSTANCE_DIR / "audit-signing-key.pem"
    late_entry_window: timedelta = timedelta(hours=72)
    verification_period: timedelta = timedelta(days=90)
    end_use_first_check: timedelta = timedelta(days=90)
    end_use_interval: timedelta = timedelta(days=365)
    app_role: str = "inventory_app"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {}
        if "INVENTORY_DATABASE_URL" in env:
            values["database_url"] = env["INVENTORY_DATABASE_URL"]
        if "INVENTORY_SIGNING_KEY" in env:
            values["signing_key_path"] = Path(env["INVENTORY_SIGNING_KEY"])
        if "INVENTORY_MAX_REQUEST_BYTES" in env:
            values["max_request_bytes"] = int(env["INVENTORY_MAX_REQUEST_BYTES"])
        if "INVENTORY_APP_ROLE" in env:
            values["app_role"] = env["INVENTORY_APP_ROLE"]
        if "INVENTORY_LOG_LEVEL" in env:
            values["log_level"] = env["INVENTORY_LOG_LEVEL"]
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
