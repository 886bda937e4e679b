"""The `inventory` command as an operator meets it: every expected failure is one `Error: ...`
line with exit 1 (2 for a usage mistake) and no traceback; paths come from the settings, never
from the working directory; only `db upgrade` makes a database and only `keys init` a signing
key; a checkpoint under a new key needs --rotate, which the audit log records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from inventory.cli import main
from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import AuditRecord
from inventory.domain.audit_chain import decode
from inventory.settings import default_instance_dir

from .conftest import create_database, drop_database

INVENTORY = Path(sys.executable).with_name("inventory")
ROOT = Path(__file__).resolve().parents[1]


def clean_environment(**settings: str) -> dict[str, str]:
    """The caller's environment without any INVENTORY_* setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    return {**env, **settings}


class Cli:
    """`inventory` in-process against one database, instance folder and key path."""

    def __init__(self, database_url: str, instance: Path) -> None:
        self.database_url = database_url
        self.instance = instance
        self.key = instance / "audit-signing-key.pem"

    def env(self) -> dict[str, str]:
        return {
            "INVENTORY_DATABASE_URL": self.database_url,
            "INVENTORY_INSTANCE_DIR": str(self.instance),
            "INVENTORY_SIGNING_KEY": str(self.key),
            "INVENTORY_LOG_LEVEL": "ERROR",
        }

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), env=self.env(), input=input)


@pytest.fixture
def cli(backend: str, tmp_path: Path) -> Iterator[Cli]:
    url = create_database(backend, tmp_path)
    yield Cli(url, tmp_path / "instance")
    drop_database(url)


def assert_one_error_line(result: Result, code: int = 1, *, says: str = "") -> str:
    """Exit `code`, no exception escaped (a traceback), and the last line is `Error: ...`."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: "), result.output
    assert says in error, error
    return error


def test_a_clerk_token_without_a_depot_is_one_error_line(cli: Cli) -> None:
    assert_one_error_line(
        cli("tokens", "create", "--name", "c", "--role", "clerk"), says="at least one depot"
    )


def test_a_token_for_an_unknown_depot_is_one_error_line(cli: Cli) -> None:
    result = cli("tokens", "create", "--name", "c", "--role", "clerk", "--depot", "D-NOPE")
    assert_one_error_line(result, says="D-NOPE")


def test_a_report_on_an_unknown_depot_is_one_error_line(cli: Cli) -> None:
    assert_one_error_line(cli("report", "accountability", "--depot", "D-NOPE"), says="D-NOPE")


def test_usage_mistakes_exit_2(cli: Cli) -> None:
    assert_one_error_line(cli("tokens", "create", "--name", "x", "--role", "god"), 2)
    assert_one_error_line(cli("sweep", "--now", "yesterday"), 2, says="ISO 8601")
    assert_one_error_line(cli("report", "accountability", "--as-of", "2026-01-01T00:00"), 2)


def test_a_bad_kept_checkpoint_is_named(cli: Cli, tmp_path: Path) -> None:
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    assert_one_error_line(cli("audit", "verify", "--checkpoint", str(kept)), 2, says="lacks")


def test_a_register_that_is_not_utf8_is_one_error_line(cli: Cli, tmp_path: Path) -> None:
    register = tmp_path / "register.csv"
    register.write_bytes("serial,manufacturer\nKA-1,KOVÁR\n".encode("latin-1"))
    assert_one_error_line(cli("import", str(register)), says="not UTF-8")


def test_checkpoints_need_a_key_made_by_keys_init(cli: Cli) -> None:
    assert cli("tokens", "create", "--name", "a", "--role", "admin").exit_code == 0
    assert_one_error_line(cli("audit", "checkpoint"), says="inventory keys init")
    assert not cli.key.exists()  # refusing to sign made no key either
    made = cli("keys", "init")
    assert made.exit_code == 0 and "NEW audit signing key" in made.output
    assert cli.key.stat().st_mode & 0o077 == 0
    again = cli("keys", "init")
    assert again.exit_code == 0 and "kept" in again.output and "NEW" not in again.output
    assert cli("audit", "checkpoint").exit_code == 0


def test_a_new_key_signs_only_with_rotate_which_the_log_records(cli: Cli, tmp_path: Path) -> None:
    cli("keys", "init")
    cli("tokens", "create", "--name", "a", "--role", "admin")
    first = cli("audit", "checkpoint")
    assert first.exit_code == 0, first.output
    old_key = json.loads(first.output)["key_id"]
    cli.key.rename(tmp_path / "old-key.pem")
    cli("keys", "init")
    cli("tokens", "create", "--name", "b", "--role", "admin")
    assert_one_error_line(cli("audit", "checkpoint"), says="--rotate")
    rotated = cli("audit", "checkpoint", "--rotate")
    assert rotated.exit_code == 0, rotated.output
    new_key = json.loads(rotated.output)["key_id"]
    assert new_key != old_key
    engine = make_engine(cli.database_url)
    try:
        with make_session_factory(engine)() as session:
            bodies = session.scalars(
                select(AuditRecord.body).where(AuditRecord.action == "audit.checkpoint")
            ).all()
    finally:
        engine.dispose()
    changes = [decode(body)["changes"] for body in bodies]
    assert [c.get("key_rotation") for c in changes] == [
        None,
        [{"previous_key_id": old_key, "key_id": new_key}],
    ]
    assert cli("audit", "checkpoint").exit_code == 0  # the new key is now the one to use

    # A checkpoint kept from before the rotation: its signature needs the old public key.
    from cryptography.hazmat.primitives import serialization

    kept = tmp_path / "kept.json"
    kept.write_text(first.output)
    assert cli("audit", "verify", "--checkpoint", str(kept)).exit_code == 1
    old_private = serialization.load_pem_private_key(
        (tmp_path / "old-key.pem").read_bytes(), password=None
    )
    old_public = tmp_path / "old-public.pem"
    old_public.write_bytes(
        old_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    proved = cli("audit", "verify", "--checkpoint", str(kept), "--public-key", str(old_public))
    assert proved.exit_code == 0, proved.output
    assert f"proved: the log extends the checkpoint of seq {json.loads(first.output)['seq']}" in (
        proved.stderr
    )


def test_verify_names_the_checkpoint_it_proved(cli: Cli, tmp_path: Path) -> None:
    cli("keys", "init")
    cli("tokens", "create", "--name", "a", "--role", "admin")
    made = cli("audit", "checkpoint")
    kept = tmp_path / "kept.json"
    kept.write_text(made.output)
    checkpoint = json.loads(made.output)
    cli("tokens", "create", "--name", "b", "--role", "admin")
    result = CliRunner().invoke(main, ["audit", "verify", "--checkpoint", str(kept)], env=cli.env())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["checkpoint"]["seq"] == checkpoint["seq"]
    assert report["checkpoint"]["extended"] is True
    assert f"proved: the log extends the checkpoint of seq {checkpoint['seq']}" in result.stderr


def test_demo_prepare_says_only_what_it_did(tmp_path: Path) -> None:
    env = clean_environment(INVENTORY_INSTANCE_DIR=str(tmp_path), INVENTORY_LOG_LEVEL="ERROR")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    first = runner.invoke(main, ["demo", "prepare"], env=env)
    assert first.exit_code == 0, first.output
    assert "Loaded the demo scenario" in first.stdout and "Demo tokens made" in first.stdout
    second = runner.invoke(main, ["demo", "prepare"], env=env)
    assert "already loaded" in second.stdout and "kept from an earlier start" in second.stdout
    for output in (first.stdout, second.stdout):
        assert "starting" not in output.lower() and "http://" not in output


def run_elsewhere(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INVENTORY), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_from_another_directory_nothing_appears_there(tmp_path: Path) -> None:
    elsewhere, instance = tmp_path / "elsewhere", tmp_path / "instance"
    elsewhere.mkdir()
    env = clean_environment(INVENTORY_INSTANCE_DIR=str(instance))
    for args in (
        ("worker", "--once"),
        ("sweep",),
        ("report", "accountability"),
        ("audit", "checkpoint"),
        ("audit", "verify"),
        ("tokens", "create", "--name", "a", "--role", "admin"),
        ("ledger", "rebuild", "--check"),
        ("db", "check"),
    ):
        done = run_elsewhere(elsewhere, env, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("Error: there is no database at")
    assert list(elsewhere.iterdir()) == []
    assert not instance.exists()  # no database made, no key made

    # With a database (made by `db upgrade`, the only command that makes one) and an absolute
    # URL, signing from elsewhere still makes no key: `keys init` does.
    url = f"sqlite:///{tmp_path / 'db' / 'inventory.sqlite3'}"
    env["INVENTORY_DATABASE_URL"] = url
    assert run_elsewhere(elsewhere, env, "db", "upgrade").returncode == 0
    assert run_elsewhere(elsewhere, env, "tokens", "create", "--name", "a", "--role", "admin")
    signed = run_elsewhere(elsewhere, env, "audit", "checkpoint")
    assert signed.returncode == 1 and "inventory keys init" in signed.stderr
    assert list(elsewhere.iterdir()) == []
    assert not (instance / "audit-signing-key.pem").exists()


def test_an_empty_database_is_refused_not_used(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    result = CliRunner().invoke(
        main,
        ["report", "accountability"],
        env=clean_environment(INVENTORY_DATABASE_URL=f"sqlite:///{empty}"),
    )
    assert_one_error_line(result, says="has no schema; run `inventory db upgrade`")


def test_the_default_instance_folder_does_not_depend_on_the_working_directory(
    tmp_path: Path,
) -> None:
    assert default_instance_dir({}) == ROOT / "instance"
    code = "from inventory.settings import Settings; s = Settings.from_env(); "
    code += "print(s.database_url); print(s.signing_key_path)"
    answers = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd,
            env=clean_environment(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for cwd in (ROOT, tmp_path)
    }
    assert answers == {
        f"sqlite:///{ROOT / 'instance' / 'inventory.sqlite3'}\n"
        f"{ROOT / 'instance' / 'audit-signing-key.pem'}\n"
    }


def test_without_a_key_the_api_says_so_and_makes_none(cli: Cli, tmp_path: Path) -> None:
    from inventory import create_app
    from inventory.settings import Settings

    made = cli("tokens", "create", "--name", "a", "--role", "admin", "--json")
    token = json.loads(made.output)["token"]
    key = tmp_path / "nowhere" / "audit-signing-key.pem"
    settings = Settings(database_url=cli.database_url, instance_dir=tmp_path, signing_key_path=key)
    app = create_app({"SETTINGS": settings})
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        for method, path in (("GET", "public-key"), ("POST", "checkpoints")):
            answer = client.open(f"/api/v1/audit/{path}", method=method, headers=headers)
            assert answer.status_code == 503, answer.get_json()
            assert "inventory keys init" in answer.get_json()["detail"]
    finally:
        app.extensions["inventory.engine"].dispose()
    assert not key.parent.exists()


def test_a_key_that_cannot_be_made_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = clean_environment(INVENTORY_SIGNING_KEY=str(blocker / "audit-signing-key.pem"))
    result = CliRunner().invoke(main, ["keys", "init"], env=env)
    assert_one_error_line(result, says="cannot make the audit signing key")
