"""Settings read from the environment once, when the app or the CLI starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    # Webhooks: refuse loopback, private and link-local targets unless this is set (tests, labs).
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0  # seconds per delivery attempt
    # A claimed delivery is retried by any worker after this long (a worker died mid-delivery).
    webhook_lease: timedelta = timedelta(seconds=60)
    # Waits between attempts; after the last one the delivery is given up (about 32 hours).
    webhook_backoff: tuple[timedelta, ...] = tuple(
        timedelta(seconds=s)
        for s in (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800, 28800)
    )
    worker_poll_interval: timedelta = timedelta(seconds=1)
    sweep_interval: timedelta = timedelta(minutes=1)
    checkpoint_interval: timedelta = timedelta(hours=1)
    # Active webhook subscriptions one monitor's token may hold (INVENTORY_SUBSCRIPTIONS_PER_TOKEN;
    # admins are not capped).
    subscriptions_per_token: int = 20

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
        if "INVENTORY_SUBSCRIPTIONS_PER_TOKEN" in env:
            values["subscriptions_per_token"] = int(env["INVENTORY_SUBSCRIPTIONS_PER_TOKEN"])
        values.update(_worker_settings(env))
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _seconds(text: str) -> timedelta:
    return timedelta(seconds=float(text))


def _worker_settings(env: Mapping[str, str]) -> dict[str, object]:
    """Webhook and worker knobs (INVENTORY_WEBHOOK_*, INVENTORY_WORKER_POLL, ...), in seconds."""
    values: dict[str, object] = {}
    if "INVENTORY_WEBHOOK_ALLOW_PRIVATE" in env:
        flag = env["INVENTORY_WEBHOOK_ALLOW_PRIVATE"].strip().lower()
        values["webhook_allow_private"] = flag in ("1", "true", "yes", "on")
    if "INVENTORY_WEBHOOK_TIMEOUT" in env:
        values["webhook_timeout"] = float(env["INVENTORY_WEBHOOK_TIMEOUT"])
    if "INVENTORY_WEBHOOK_BACKOFF" in env:  # comma-separated seconds, e.g. "5,30,120"
        values["webhook_backoff"] = tuple(
            _seconds(part) for part in env["INVENTORY_WEBHOOK_BACKOFF"].split(",") if part.strip()
        )
    for name, key in (
        ("webhook_lease", "INVENTORY_WEBHOOK_LEASE"),
        ("worker_poll_interval", "INVENTORY_WORKER_POLL"),
        ("sweep_interval", "INVENTORY_SWEEP_INTERVAL"),
        ("checkpoint_interval", "INVENTORY_CHECKPOINT_INTERVAL"),
    ):
        if key in env:
            values[name] = _seconds(env[key])
    return values
