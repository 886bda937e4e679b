"""The `inventory` command: the same use cases as the API, from the server's shell."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import inspect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from . import demo as demo_setup
from . import logs
from .clock import utcnow
from .db import migrate
from .db.engine import make_engine, make_session_factory
from .domain.actors import operator
from .services import audit_log, audit_verifications, checkpoints, integrity, projection, tokens
from .services.errors import ServiceError
from .services.unit_of_work import Context, UnitOfWork, run_write
from .settings import Settings

T = TypeVar("T")


class _Commands(click.Group):
    """Expected failures (what the use cases refuse, a database that is missing or unreachable)
    end as one `Error: ...` line and exit 1; only real bugs print a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ServiceError as error:
            raise click.ClickException(_problem_text(error)) from error
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise click.ClickException(f"cannot use the database: {reason}") from error


def _problem_text(error: ServiceError) -> str:
    return error.detail


@click.group(cls=_Commands)
def main() -> None:
    """Stockpile: accountability for state weapons and ammunition.

    Settings come from the environment (INVENTORY_DATABASE_URL, INVENTORY_INSTANCE_DIR,
    INVENTORY_SIGNING_KEY, ...), never from the working directory."""
    logs.configure(os.environ.get("INVENTORY_LOG_LEVEL", "WARNING"))


def require_database(settings: Settings) -> str:
    """The database URL, once it is known to hold a migrated schema: only `inventory db upgrade`
    makes a database, so every other command refuses a missing one rather than creating it."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database or "")
        if not path.is_file():
            raise click.ClickException(
                f"there is no database at {path.absolute()}; make it with `inventory db upgrade` "
                "(or set INVENTORY_DATABASE_URL or INVENTORY_INSTANCE_DIR to the one you mean)"
            )
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            migrated = inspect(connection).has_table("alembic_version")
    finally:
        engine.dispose()
    if not migrated:
        raise click.ClickException(
            f"the database {url.render_as_string(hide_password=True)} has no schema; "
            "run `inventory db upgrade` first"
        )
    return settings.database_url


@contextmanager
def open_session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(require_database(settings))
    session = make_session_factory(engine)()
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


def run_as_operator(
    settings: Settings, use_case: Callable[[UnitOfWork], T], present: Callable[[T, UnitOfWork], Any]
) -> Any:
    with open_session(settings) as session:
        context = Context(actor=operator(os.environ.get("USER", "cli")), settings=settings)
        return run_write(session, context, use_case, present).body


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="processes")
@click.option(
    "--threads", default=4, show_default=True, type=int, help="request threads per process"
)
@click.option(
    "--server",
    type=click.Choice(["granian", "gunicorn"]),
    default="granian",
    show_default=True,
    help="granian (measured best, notes/16.md) or gunicorn's sync workers behind a buffering proxy",
)
def serve(host: str, port: int, workers: int, threads: int, server: str) -> None:
    """Serve the API (granian's WSGI mode; slow clients cost no thread)."""
    if server == "granian":
        from .serving import serve as serve_granian

        serve_granian(host, port, workers, threads)
        return
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.execv(
        gunicorn,
        [
            gunicorn,
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--config",
            "python:inventory.gunicorn_hooks",
            "inventory:create_app()",
        ],
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the database to the newest schema (creates a SQLite file if needed)."""
    settings = Settings.from_env()
    if settings.database_url.startswith("sqlite:///"):
        os.makedirs(
            os.path.dirname(settings.database_url.removeprefix("sqlite:///")) or ".", exist_ok=True
        )
    migrate.upgrade(settings.database_url, revision)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    click.echo(f"database {shown} is at revision {revision}")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrated schema have drifted apart."""
    migrate.check(require_database(Settings.from_env()))
    click.echo("no drift")


@main.group("tokens")
def tokens_group() -> None:
    """API tokens."""


@tokens_group.command("create")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "clerk", "auditor", "monitor"]))
@click.option("--depot", "depots", multiple=True, help="depot code (clerks); repeat for several")
@click.option("--json", "as_json", is_flag=True, help="print the token as JSON")
def tokens_create(name: str, role: str, depots: tuple[str, ...], as_json: bool) -> None:
    """Issue a token and print its secret (shown only now)."""
    body = run_as_operator(
        Settings.from_env(),
        lambda uow: tokens.create_token(uow, name, role, list(depots)),
        lambda issued, _uow: {
            "id": str(issued.token.id),
            "name": name,
            "role": role,
            "depots": list(depots),
            "token": issued.secret,
        },
    )
    click.echo(json.dumps(body) if as_json else body["token"])


@main.group("keys")
def keys_group() -> None:
    """The Ed25519 key that signs audit checkpoints."""


@keys_group.command("init")
def keys_init() -> None:
    """Make the audit signing key at INVENTORY_SIGNING_KEY (default: in the instance folder)
    unless it exists; never replaces a key."""
    settings = Settings.from_env()
    path = settings.signing_key_path
    try:
        public, made = checkpoints.init_key(settings)
    except OSError as error:
        message = f"cannot make the audit signing key at {path}: {error}"
        raise click.ClickException(message) from error
    key = checkpoints.key_id(public)
    if not made:
        click.echo(f"kept the audit signing key {key} at {path}; nothing made")
        return
    rule = "=" * 78
    click.echo(
        f"{rule}\n"
        f"Made a NEW audit signing key {key} at {path} (mode 600).\n"
        "It signs the audit log's checkpoints and is never stored in the database.\n"
        "Back it up with the database. Monitors trust checkpoints by this key: if it is lost,\n"
        "the next checkpoint must be signed with `inventory audit checkpoint --rotate`.\n"
        f"{rule}"
    )


@main.group()
def ledger() -> None:
    """The custody ledger."""


@ledger.command("rebuild")
@click.option("--check", "check_only", is_flag=True, help="compare only; exit 1 on differences")
def ledger_rebuild(check_only: bool) -> None:
    """Recompute current holdings from the ledger: compare them, or replace them. --check also
    holds each discrepancy to its events and each active token to its audit record."""
    settings = Settings.from_env()
    if check_only:
        with open_session(settings) as session:
            differences = projection.check(session)
            mismatches = integrity.check(session)
        for difference in differences[:100]:
            click.echo(
                f"{difference.subject}: ledger says {difference.ledger}, "
                f"holdings say {difference.projection}"
            )
        click.echo(f"{len(differences)} differences between the ledger and current holdings")
        for mismatch in mismatches[:100]:
            click.echo(f"{mismatch.subject}: appended {mismatch.appended}, row {mismatch.stored}")
        click.echo(
            f"{len(mismatches)} discrepancies or tokens that disagree with their events or "
            "audit records"
        )
        sys.exit(1 if differences or mismatches else 0)
    repaired = run_as_operator(settings, projection.rebuild, lambda count, _uow: count)
    click.echo(f"holdings rebuilt from the ledger; {repaired} differences repaired")


@main.group()
def demo() -> None:
    """The local demo instance."""


@demo.command("prepare")
def demo_prepare() -> None:
    """On first start, load the demo scenario and make tokens; print the tokens to try the API
    with."""
    settings = Settings.from_env()
    saved = settings.instance_dir / "demo-tokens.json"
    before = saved.read_text() if saved.is_file() else None
    with open_session(settings) as session:
        loaded = demo_setup.load_scenario(session, settings, progress_bar=_seed_progress_bar)
        issued = demo_setup.prepare(session, settings)
    if loaded.loaded:
        click.echo(
            f"Loaded the demo scenario (seeds/demo): {loaded.weapons} weapons, {loaded.lots} "
            "lots, and a story that leaves something unaccounted for:"
        )
        for line in loaded.steps:
            click.echo(f"  - {line}")
    else:
        click.echo("The demo scenario is already loaded; loaded nothing.")
    reused = before is not None and json.loads(before) == issued
    click.echo(
        f"Demo tokens {'kept from an earlier start' if reused else 'made'} in {saved} "
        "(Authorization: Bearer <token>):"
    )
    for role, secret in issued.items():
        click.echo(f"  {role:8} {secret}")


@contextmanager
def _seed_progress_bar(steps: int) -> Iterator[Callable[[int], None]]:
    with click.progressbar(length=steps, label="loading the demo scenario", file=sys.stderr) as bar:
        yield bar.update


@main.command("seed")
@click.argument("scenario", default="demo")
@click.option(
    "--scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="load a fraction of each weapon batch (at least 40 of each)",
)
def seed_command(scenario: str, scale: float) -> None:
    """Load a seed scenario from seeds/SCENARIO (default: demo) through the same use cases as
    the API; does nothing if it is already loaded."""
    from . import seed
    from .clock import utcnow

    settings = Settings.from_env()
    try:
        story = seed.read(scenario, utcnow(), scale=scale)
    except seed.ScenarioError as error:
        raise click.ClickException(str(error)) from error
    with open_session(settings) as session:
        if seed.is_loaded(session, story):
            click.echo(f"scenario {scenario!r} is already loaded; nothing to do")
            return
        with _seed_progress_bar(seed.steps_in(story)) as advance:
            report = seed.load(session, settings, story, progress=advance)
    click.echo(
        f"scenario {scenario!r} loaded: {report.weapons} weapons, {report.lots} lots, "
        f"{report.movements} movements"
    )
    for line in report.steps:
        click.echo(f"  - {line}")


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.File("r"),
    help="a checkpoint (JSON, as the API gave it) the log must still extend",
)
@click.option(
    "--public-key",
    "public_key_file",
    type=click.File("rb"),
    help="the PEM public key the kept checkpoint was signed with, if not the current one "
    "(a checkpoint from before a key rotation)",
)
def audit_verify(checkpoint_file: IO[str] | None, public_key_file: IO[bytes] | None) -> None:
    """Walk the hash chain and the signed checkpoints; exit 0 if it verifies, 1 naming the first
    bad record if not. With --checkpoint, also prove the log extends that checkpoint, and say so."""
    settings = Settings.from_env()
    kept = None
    if checkpoint_file is not None:
        try:
            kept = checkpoints.Checkpoint.from_json(json.load(checkpoint_file))
        except (ValueError, ServiceError) as error:
            raise click.BadParameter(str(error), param_hint="--checkpoint") from error
    kept_key = None
    if public_key_file is not None:
        if kept is None:
            raise click.UsageError("--public-key checks a --checkpoint; give one")
        try:
            loaded = serialization.load_pem_public_key(public_key_file.read())
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--public-key") from error
        if not isinstance(loaded, Ed25519PublicKey):
            raise click.BadParameter("not an Ed25519 public key", param_hint="--public-key")
        kept_key = loaded
    with open_session(settings) as session:
        total = audit_log.length(session)
        with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
            verdict = checkpoints.verify(
                session, settings, progress=bar.update, kept=kept, kept_key=kept_key
            )
        audit_verifications.record(session, verdict, operator("audit-verify"), utcnow())
    report = verdict.report()
    if kept is not None:
        report["checkpoint"] = {**kept.as_json(), "extended": verdict.ok}
    click.echo(json.dumps(report))
    if kept is not None and verdict.ok:
        click.echo(f"proved: the log extends the {kept.label()}", err=True)
    if not verdict.ok:
        sys.exit(1)


@audit.command("checkpoint")
@click.option(
    "--rotate",
    is_flag=True,
    help="sign with a key other than the latest checkpoint's (recorded in the audit log)",
)
def audit_checkpoint(rotate: bool) -> None:
    """Sign the chain head as a checkpoint and print it (JSON); keep it to verify against later.
    Refused if the key differs from the latest checkpoint's, unless --rotate."""
    body = run_as_operator(
        Settings.from_env(),
        partial(checkpoints.make_checkpoint, rotate=rotate),
        lambda made, _uow: made.as_json(),
    )
    click.echo(json.dumps(body))


@main.command("worker")
@click.option("--once", is_flag=True, help="one pass (checks, fan-out, due deliveries), then exit")
def worker_command(once: bool) -> None:
    """Deliver alerts as signed webhooks, run the sweep every minute and sign audit checkpoints;
    stops cleanly on SIGTERM."""
    from .worker import Worker

    logs.configure(os.environ.get("INVENTORY_LOG_LEVEL", "INFO"))
    settings = Settings.from_env()
    require_database(settings)
    Worker(settings).run(once=once)


def _moment(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time with its UTC offset from the command line (None when not given)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from error
    if moment.tzinfo is None:
        raise click.BadParameter("give the UTC offset, e.g. +00:00", param_hint=option)
    return moment


@main.command("sweep")
@click.option("--now", "now_text", help="sweep as of this time (ISO 8601 with offset); for tests")
def sweep_command(now_text: str | None) -> None:
    """Open the time-based discrepancies now due (overdue transfers, returns, physical and
    end-use verifications); print what was opened as JSON. Idempotent."""
    from .services import sweep

    now = _moment(now_text, "--now")
    body = run_as_operator(
        Settings.from_env(),
        lambda uow: sweep.run_sweep(uow, now or uow.now),
        lambda result, _uow: {
            "now": audit_log.timestamp(result.now),
            "opened": result.opened,
            "total": result.total,
            "discrepancies": [str(d) for d in result.discrepancies],
        },
    )
    click.echo(json.dumps(body))


@main.group("report")
def report_group() -> None:
    """Reports for auditors."""


@report_group.command("accountability")
@click.option("--depot", "depots", multiple=True, help="depot code; repeat for several")
@click.option("--as-of", "as_of_text", help="the books at this time (ISO 8601 with offset)")
@click.option("--format", "output", type=click.Choice(["json", "csv"]), default="json")
@click.option("--dictionary", is_flag=True, help="print the CSV's columns and their definitions")
def report_accountability(
    depots: tuple[str, ...], as_of_text: str | None, output: str, dictionary: bool
) -> None:
    """Per depot and in total: on the books, in store, issued, in transit, lost, unaccounted,
    and the accountability rates of weapons and of rounds."""
    from .services import reports
    from .services.errors import ServiceError

    if dictionary:
        click.echo(reports.dictionary_csv(), nl=False)
        return
    settings = Settings.from_env()
    as_of = _moment(as_of_text, "--as-of")
    try:
        with open_session(settings) as session:
            made = reports.accountability(
                session, operator(os.environ.get("USER", "cli")), settings, list(depots), as_of
            )
    except ServiceError as error:
        raise click.ClickException(error.detail) from error
    if output == "csv":
        click.echo(reports.as_csv(made), nl=False)
    else:
        click.echo(json.dumps(reports.as_json(made)))


@main.command("import")
@click.argument("csv_file", metavar="CSV", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--party",
    default="LEGACY-REGISTER",
    show_default=True,
    help="the party the receipts come from (made if missing)",
)
@click.option("--check-only", is_flag=True, help="check the file and report; post nothing")
def import_register(csv_file: str, party: str, check_only: bool) -> None:
    """Import a legacy weapons register (CSV; header in README) as receipts, all rows or none.
    Problems are listed by row and column and nothing is posted."""
    from . import importer
    from .clock import utcnow

    settings = Settings.from_env()
    path = Path(csv_file)
    try:
        with open(path, encoding="utf-8-sig") as handle:
            rows = max(sum(1 for _ in handle) - 1, 0)
    except UnicodeDecodeError as undecodable:
        raise click.ClickException(
            f"{path.name} is not UTF-8 (byte {undecodable.start}); save the register as UTF-8 CSV"
        ) from undecodable
    require_database(settings)
    postgres = settings.database_url.startswith("postgresql")
    # The weapons table grows by the whole register in one transaction: a plan prepared while it
    # was small (a sequential scan) would be reused for every receipt, so prepare nothing.
    options = {"connect_args": {"prepare_threshold": None}} if postgres else {}
    engine = make_engine(settings.database_url, **options)
    # One multi-row INSERT per table and receipt rather than one statement per weapon.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    session = make_session_factory(engine)()
    try:
        with click.progressbar(length=rows, label="checking", file=sys.stderr) as bar:
            register = importer.check(session, path, utcnow(), progress=bar.update)
        for error in register.errors[:1000]:
            click.echo(str(error), err=True)
        if len(register.errors) > 1000:
            click.echo(f"... and {len(register.errors) - 1000} more", err=True)
        if register.errors:
            raise click.ClickException(
                f"{len(register.errors)} problem(s) in {path.name}; nothing was imported"
            )
        if check_only:
            click.echo(f"{register.rows} rows, {len(register.receipts)} receipts: no problems")
            return
        context = Context(actor=operator(os.environ.get("USER", "cli")), settings=settings)
        with click.progressbar(length=register.rows, label="posting", file=sys.stderr) as bar:
            report = importer.post(session, context, register, path.name, party, bar.update)
    finally:
        session.close()
        engine.dispose()
    click.echo(f"imported {report.rows} weapons as {report.receipts} receipts from party:{party}")


def _add_transparency_commands() -> None:
    from .log_cli import log_group, monitor_command

    main.add_command(log_group)
    main.add_command(monitor_command)


_add_transparency_commands()
