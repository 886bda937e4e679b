"""`inventory log ...` (the operator's side of the transparency log) and `inventory monitor` (the
outsider's verifier; it reads nothing but HTTP, the verifier key and its state file)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from . import monitor


@click.group("log")
def log_group() -> None:
    """The audit log's Merkle tree and signed tree heads."""


@log_group.command("integrate")
def log_integrate() -> None:
    """Append every audit record not yet in the Merkle tree (a back-fill the first time)."""
    from sqlalchemy import func, select

    from .db.engine import begin_write, make_engine, make_session_factory
    from .db.models import AuditRecord
    from .services import transparency
    from .settings import Settings

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    session = make_session_factory(engine)()
    try:
        begin_write(session)
        before = transparency.integrated_size(session)
        total = int(session.scalar(select(func.max(AuditRecord.seq))) or 0)
        started = time.monotonic()
        with click.progressbar(length=total - before, label="integrating", file=sys.stderr) as bar:
            size = transparency.integrate(session, progress=bar.update)
        session.commit()
    finally:
        session.close()
        engine.dispose()
    click.echo(
        f"integrated {size - before} records: the tree now has {size} "
        f"({time.monotonic() - started:.1f} s)"
    )


@log_group.command("verifier-key")
def log_verifier_key() -> None:
    """Print the note verifier key monitors check signed tree heads with."""
    from .services import checkpoints, transparency
    from .services.errors import ServiceError
    from .settings import Settings

    settings = Settings.from_env()
    try:
        key = checkpoints.signing_key(settings)
    except ServiceError as error:  # no key yet, or unreadable
        raise click.ClickException(error.detail) from error
    click.echo(transparency.verifier_key(settings, key))


@log_group.command("witness-key")
@click.option("--name", required=True, help="the witness's key name, e.g. oversight.example/w1")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="PEM to write")
def log_witness_key(name: str, out: Path) -> None:
    """Make a witness's Ed25519 key (mode 600) and print the verifier key an admin registers."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    click.echo(monitor.witness_verifier_key(name, key))


@click.command("monitor")
@click.option("--url", required=True, help="the server, e.g. https://stockpile.example")
@click.option(
    "--vkey", required=True, help="the log's note verifier key (text, or @FILE to read it)"
)
@click.option("--state", "state_path", required=True, type=click.Path(path_type=Path))
@click.option("--serial", "serials", multiple=True, help="a serial to check; repeat for several")
@click.option("--token-env", default="INVENTORY_MONITOR_TOKEN", show_default=True)
@click.option("--cosign-key", type=click.Path(exists=True, path_type=Path), help="witness PEM")
@click.option("--witness-name", help="the witness key name registered for --cosign-key")
def monitor_command(
    url: str,
    vkey: str,
    state_path: Path,
    serials: tuple[str, ...],
    token_env: str,
    cosign_key: Path | None,
    witness_name: str | None,
) -> None:
    """Verify the audit transparency log as an outsider: the latest signed tree head, its
    consistency with the one in --state, and the inclusion and contents of the records that
    mention each --serial; optionally cosign. Exits 1 naming any inconsistency."""
    try:
        text = Path(vkey[1:]).read_text("utf-8") if vkey.startswith("@") else vkey
        key = monitor.VerifierKey.parse(text)
        token = os.environ.get(token_env)
        if not token:
            raise monitor.MonitorError(f"set {token_env} to a monitor token")
        cosign = None
        if cosign_key is not None:
            if not witness_name:
                raise monitor.MonitorError("--cosign-key needs --witness-name")
            cosign = (witness_name, monitor.load_witness_key(cosign_key))
        fetch, post = monitor.http_client(url, token)
        state = monitor.State.load(state_path)
        report = monitor.run(fetch, key, state, serials, cosign=cosign, post=post)
        state.save(state_path)
    except monitor.MonitorError as error:
        click.echo(f"monitor: {error}", err=True)
        sys.exit(1)
    for line in report.lines():
        click.echo(line)
