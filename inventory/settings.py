"""Settings read from the environment once, when the app or the CLI starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

# A source checkout (how `make install` and the Docker image install it) keeps its instance folder
# beside the code; an installed package keeps it in the user's data folder. Never the working
# directory: a command run from elsewhere must find the same database and signing key.
_CHECKOUT = Path(__file__).resolve().parents[1]


def default_instance_dir(env: Mapping[str, str] | None = None) -> Path:
    """INVENTORY_INSTANCE_DIR, else `instance/` in the source checkout, else
    `$XDG_DATA_HOME/stockpile` (`~/.local/share/stockpile`)."""
    env = os.environ if env is None else env
    if env.get("INVENTORY_INSTANCE_DIR"):
        return Path(env["INVENTORY_INSTANCE_DIR"]).expanduser().absolute()
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "migrations").is_dir():
        return _CHECKOUT / "instance"
    data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "stockpile"


INSTANCE_DIR = default_instance_dir()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _default_database_url() -> str:
    return sqlite_url(INSTANCE_DIR / "inventory.sqlite3")


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    # A PostgreSQL hot standby of database_url for heavy reads (reports, exports, trace, histories,
    # the console's pages, audit verify); None reads everything from database_url.
    read_database_url: str | None = None
    # How long a heavy read waits for the standby to replay the primary's latest writes before it
    # reads from the primary instead.
    read_replica_wait: timedelta = timedelta(seconds=2)
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
    # How many reverse proxies in front of the app to trust for X-Forwarded-For/-Proto (compose: 1
    # for nginx). 0 ignores the headers: a client could write anything in them.
    trusted_proxies: int = 0
    # Browser origins allowed to call the API (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    # Webhooks: refuse loopback, private and link-local targets unless this is set (tests, labs).
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0  # seconds per delivery attempt, in all (connect to last byte)
    # Deliveries in flight at once per worker (threads); at most one per subscription.
    webhook_concurrency: int = 8
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
    # The transparency log's origin line and note key name (one per deployment), and how long a
    # signed tree head may wait for a witness's cosignature before it is flagged.
    log_origin: str = "stockpile.invalid/audit-log"
    cosignature_grace: timedelta = timedelta(hours=2)
    # A console session unused this long is over; the browser must sign in again.
    console_idle: timedelta = timedelta(minutes=30)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        instance_dir = default_instance_dir(env)
        values: dict[str, object] = {
            "instance_dir": instance_dir,
            "database_url": sqlite_url(instance_dir / "inventory.sqlite3"),
            "signing_key_path": instance_dir / "audit-signing-key.pem",
        }
        if env.get("INVENTORY_DATABASE_URL"):
            values["database_url"] = env["INVENTORY_DATABASE_URL"]
        if env.get("INVENTORY_READ_DATABASE_URL"):
            values["read_database_url"] = env["INVENTORY_READ_DATABASE_URL"]
        if env.get("INVENTORY_SIGNING_KEY"):
            values["signing_key_path"] = Path(env["INVENTORY_SIGNING_KEY"]).expanduser().absolute()
        if "INVENTORY_MAX_REQUEST_BYTES" in env:
            values["max_request_bytes"] = int(env["INVENTORY_MAX_REQUEST_BYTES"])
        if "INVENTORY_APP_ROLE" in env:
            values["app_role"] = env["INVENTORY_APP_ROLE"]
        if "INVENTORY_LOG_LEVEL" in env:
            values["log_level"] = env["INVENTORY_LOG_LEVEL"]
        if "INVENTORY_SUBSCRIPTIONS_PER_TOKEN" in env:
            values["subscriptions_per_token"] = int(env["INVENTORY_SUBSCRIPTIONS_PER_TOKEN"])
        if "INVENTORY_TRUSTED_PROXIES" in env:
            values["trusted_proxies"] = int(env["INVENTORY_TRUSTED_PROXIES"])
        if "INVENTORY_CORS_ORIGINS" in env:  # comma-separated, e.g. "https://a.example,https://b"
            values["cors_origins"] = tuple(
                part.strip().rstrip("/")
                for part in env["INVENTORY_CORS_ORIGINS"].split(",")
                if part.strip()
            )
        if "INVENTORY_LOG_ORIGIN" in env:
            values["log_origin"] = env["INVENTORY_LOG_ORIGIN"]
        if "INVENTORY_COSIGNATURE_GRACE" in env:
            values["cosignature_grace"] = _seconds(env["INVENTORY_COSIGNATURE_GRACE"])
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
    if "INVENTORY_WEBHOOK_CONCURRENCY" in env:
        values["webhook_concurrency"] = int(env["INVENTORY_WEBHOOK_CONCURRENCY"])
    if "INVENTORY_WEBHOOK_BACKOFF" in env:  # comma-separated seconds, e.g. "5,30,120"
        values["webhook_backoff"] = tuple(
            _seconds(part) for part in env["INVENTORY_WEBHOOK_BACKOFF"].split(",") if part.strip()
        )
    for name, key in (
        ("webhook_lease", "INVENTORY_WEBHOOK_LEASE"),
        ("worker_poll_interval", "INVENTORY_WORKER_POLL"),
        ("sweep_interval", "INVENTORY_SWEEP_INTERVAL"),
        ("checkpoint_interval", "INVENTORY_CHECKPOINT_INTERVAL"),
        ("console_idle", "INVENTORY_CONSOLE_IDLE"),
        ("read_replica_wait", "INVENTORY_READ_REPLICA_WAIT"),
    ):
        if key in env:
            values[name] = _seconds(env[key])
    return values
