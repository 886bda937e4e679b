"""Tampering with the audit log as the database's owner (triggers bypassed), one mutation per fresh
database: the verifier must name the first bad record and say what happened to it."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, insert, select, text, update

from inventory import create_app
from inventory.cli import main
from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import AuditRecord
from inventory.domain.actors import Actor, Role, operator
from inventory.domain.audit_chain import Verdict, canonical_bytes, chain_hash
from inventory.services import audit_log, checkpoints, reference, tokens
from inventory.services.audit_log import timestamp
from inventory.services.checkpoints import Checkpoint
from inventory.services.errors import Conflict
from inventory.services.unit_of_work import Context, UnitOfWork, run_write

from .conftest import make_settings, unique

T = TypeVar("T")
FORGED_AT = datetime(2026, 11, 28, 10, tzinfo=UTC)


class Log:
    """A fresh database's audit log, written through the use cases as the operator would."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.settings = make_settings(url, tmp_path)
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def write(self, use_case: Callable[[UnitOfWork], T]) -> T:
        session = self.sessions()
        try:
            context = Context(actor=operator("tests"), settings=self.settings)
            result: T = run_write(session, context, use_case, lambda made, _uow: made).body
            return result
        finally:
            session.close()

    def depots(self, count: int) -> None:
        for _ in range(count):
            code = unique("D")
            self.write(functools.partial(reference.create_depot, code=code, name=f"Depot {code}"))

    def checkpoint(self) -> Checkpoint:
        return self.write(checkpoints.make_checkpoint)

    def verify(self, kept: Checkpoint | None = None) -> Verdict:
        session = self.sessions()
        try:
            return checkpoints.verify(session, self.settings, kept=kept)
        finally:
            session.close()

    def env(self) -> dict[str, str]:
        return {
            "INVENTORY_DATABASE_URL": self.url,
            "INVENTORY_SIGNING_KEY": str(self.settings.signing_key_path),
        }

    @contextmanager
    def tampering(self) -> Iterator[Connection]:
        """A transaction in which the append-only triggers do not fire, as the owner can arrange."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                yield conn
                return
            triggers = conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
                    "('audit_records', 'audit_checkpoints')"
                )
            ).all()
            assert triggers
            for name, _sql in triggers:
                conn.execute(text(f'DROP TRIGGER "{name}"'))
            yield conn
            for _name, sql in triggers:
                conn.execute(text(sql))


@pytest.fixture
def log(fresh_database_url: str, tmp_path: Path) -> Iterator[Log]:
    opened = Log(fresh_database_url, tmp_path)
    yield opened
    opened.engine.dispose()


def body_of(conn: Connection, seq: int) -> bytes:
    return bytes(conn.scalar(text("SELECT body FROM audit_records WHERE seq = :s"), {"s": seq}))


def hash_of(conn: Connection, seq: int) -> str:
    return str(conn.scalar(text("SELECT hash FROM audit_records WHERE seq = :s"), {"s": seq}))


def edit_byte(conn: Connection, seq: int) -> None:
    body = bytearray(body_of(conn, seq))
    at = body.index(b"Depot ") + 1
    body[at] ^= 0x01  # "Depot" becomes "Ddpot"
    conn.execute(
        text("UPDATE audit_records SET body = :b WHERE seq = :s"), {"b": bytes(body), "s": seq}
    )


def replace_in_body(conn: Connection, seq: int, old: bytes, new: bytes) -> None:
    """Change the body and re-chain from it, so only what the bytes say can give it away."""
    body = body_of(conn, seq)
    assert old in body
    conn.execute(
        text("UPDATE audit_records SET body = :b WHERE seq = :s"),
        {"b": body.replace(old, new, 1), "s": seq},
    )
    rehash_from(conn, seq)


def set_column(conn: Connection, seq: int, **values: object) -> None:
    conn.execute(update(AuditRecord).where(AuditRecord.seq == seq).values(**values))


def delete_from(conn: Connection, seq: int, upto: int | None = None) -> None:
    conn.execute(
        text("DELETE FROM audit_records WHERE seq >= :s AND seq <= :u"),
        {"s": seq, "u": upto if upto is not None else 2**62},
    )


def swap(conn: Connection, one: int, other: int) -> None:
    for old, new in ((one, -1), (other, one), (-1, other)):
        conn.execute(text("UPDATE audit_records SET seq = :n WHERE seq = :o"), {"n": new, "o": old})


def set_head(conn: Connection, seq: int, digest: str) -> None:
    conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": seq, "h": digest})


def rehash_from(conn: Connection, seq: int) -> None:
    """Re-chain every record from `seq` on and move the head to match: a consistent forgery."""
    prev = hash_of(conn, seq - 1)
    rows = conn.execute(
        text("SELECT seq, body FROM audit_records WHERE seq >= :s ORDER BY seq"), {"s": seq}
    ).all()
    for record_seq, body in rows:
        digest = chain_hash(prev, bytes(body))
        conn.execute(
            text("UPDATE audit_records SET prev_hash = :p, hash = :h WHERE seq = :s"),
            {"p": prev, "h": digest, "s": record_seq},
        )
        prev = digest
    set_head(conn, rows[-1][0], prev)


def forge_history(conn: Connection, seq: int, upto: int) -> None:
    """Replace records `seq`..`upto` with invented depot records, correctly chained, and remove
    every checkpoint that would contradict them: all the database's owner can do."""
    conn.execute(text("DELETE FROM audit_checkpoints WHERE seq >= :s"), {"s": seq})
    delete_from(conn, seq)
    prev = hash_of(conn, seq - 1)
    for forged in range(seq, upto + 1):
        columns = {
            "seq": forged,
            "actor": "operator:tests",
            "role": "admin",
            "action": "depot.create",
            "subject": f"depot:FORGED-{forged}",
            "request_id": f"forged{forged}",
        }
        body = canonical_bytes(
            {**columns, "recorded_at": timestamp(FORGED_AT), "changes": {"code": f"F-{forged}"}}
        )
        digest = chain_hash(prev, body)
        conn.execute(
            insert(AuditRecord).values(
                **columns, recorded_at=FORGED_AT, body=body, prev_hash=prev, hash=digest
            )
        )
        prev = digest
    set_head(conn, upto, prev)


def standard_log(log: Log) -> tuple[Checkpoint, Checkpoint]:
    """Records 1-3 depots, 4 checkpoint A (of seq 3), 5-7 depots, 8 checkpoint B (of seq 7),
    9-12 depots."""
    log.depots(3)
    first = log.checkpoint()
    log.depots(3)
    second = log.checkpoint()
    log.depots(4)
    assert (first.seq, second.seq) == (3, 7)
    verdict = log.verify()
    assert verdict.ok and verdict.length == 12, verdict
    return first, second


MUTATIONS: dict[str, tuple[Callable[[Connection], None], int, str]] = {
    "edit a byte of a body": (lambda c: edit_byte(c, 10), 10, "(edited)"),
    "delete a record": (lambda c: delete_from(c, 6, 6), 6, "record 6 is missing (deleted)"),
    "swap two records": (lambda c: swap(c, 9, 11), 9, "(reordered)"),
    "truncate the tail": (lambda c: delete_from(c, 10), 10, "head says 12 (truncated)"),
    "truncate the tail and rewind the head": (
        lambda c: (delete_from(c, 6), set_head(c, 5, hash_of(c, 5))),
        6,
        "short of the checkpoint of seq 7",
    ),
    "edit a copied column": (
        lambda c: set_column(c, 5, actor="operator:someone-else"),
        5,
        "column actor differs from the hashed bytes (edited)",
    ),
    "move a copied time by a microsecond": (
        lambda c: set_column(
            c,
            11,
            recorded_at=c.scalar(select(AuditRecord.recorded_at).where(AuditRecord.seq == 11))
            + timedelta(microseconds=1),
        ),
        11,
        "column recorded_at differs",
    ),
    "make a body's seq a string and re-hash": (
        lambda c: replace_in_body(c, 10, b'"seq":10', b'"seq":"10"'),
        10,
        "(reordered)",
    ),
    "make a body invalid UTF-8 and re-hash": (
        lambda c: replace_in_body(c, 9, b"Depot ", b"Dep\xffot "),
        9,
        "not a version-1 audit record (edited)",
    ),
    "make a prev_hash not hex": (
        lambda c: set_column(c, 10, prev_hash="z" * 64),
        10,
        "hash does not match the stored bytes (edited)",
    ),
    # A body that says one thing where the columns are copied from and another after them: the
    # parsed body's later key wins, so the copied column no longer matches what was hashed.
    "add a second actor after the changes and re-hash": (
        lambda c: replace_in_body(
            c, 10, b',"client_request_id":', b',"actor":"mallory","client_request_id":'
        ),
        10,
        "column actor differs from the hashed bytes (edited)",
    ),
    "end a body with a second subject instead of its token and re-hash": (
        lambda c: replace_in_body(c, 11, b',"token_id":null}', b',"subject": "depot:X"}'),
        11,
        "column subject differs from the hashed bytes (edited)",
    ),
    "forge a re-hashed tail": (
        lambda c: (edit_byte(c, 6), rehash_from(c, 6)),
        7,
        "checkpoint of seq 7 signed at",
    ),
    "forge a re-hashed tail and delete the checkpoints": (
        lambda c: (
            edit_byte(c, 6),
            rehash_from(c, 6),
            c.execute(text("DELETE FROM audit_checkpoints")),
        ),
        7,  # the log's own record of checkpoint B still pins seq 7
        "records 4 to 7 were rewritten and every later record re-hashed (forged)",
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_verify_names_the_first_bad_record(log: Log, mutation: str) -> None:
    standard_log(log)
    tamper, first_bad, reason = MUTATIONS[mutation]
    with log.tampering() as conn:
        tamper(conn)
    verdict = log.verify()
    assert not verdict.ok
    assert (verdict.first_bad_seq, reason in str(verdict.reason)) == (first_bad, True), verdict


def test_a_forged_history_is_caught_by_the_checkpoint_a_monitor_kept(
    log: Log, tmp_path: Path
) -> None:
    _first, second = standard_log(log)
    kept = tmp_path / "checkpoint.json"
    kept.write_text(json.dumps(second.as_json()))
    runner = CliRunner()
    assert (
        runner.invoke(main, ["audit", "verify", "--checkpoint", str(kept)], env=log.env()).exit_code
        == 0
    )
    with log.tampering() as conn:
        forge_history(conn, 6, 12)
    # With its own checkpoints gone, the database alone cannot tell...
    assert log.verify().ok
    # ...but the signed checkpoint a monitor kept can.
    result = runner.invoke(main, ["audit", "verify", "--checkpoint", str(kept)], env=log.env())
    assert result.exit_code == 1, result.output
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    assert reported["ok"] is False and reported["first_bad_seq"] == 7
    assert "(forged)" in reported["reason"]


def test_a_checkpoint_file_with_a_bad_signature_does_not_verify(log: Log, tmp_path: Path) -> None:
    _first, second = standard_log(log)
    altered = {**second.as_json(), "at": "2030-01-01T00:00:00.000000+00:00"}
    kept = tmp_path / "checkpoint.json"
    kept.write_text(json.dumps(altered))
    result = CliRunner().invoke(main, ["audit", "verify", "--checkpoint", str(kept)], env=log.env())
    assert result.exit_code == 1
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    assert reported["first_bad_seq"] == 7 and "signature does not verify" in reported["reason"]
    kept.write_text('{"seq": 7}')
    result = CliRunner().invoke(main, ["audit", "verify", "--checkpoint", str(kept)], env=log.env())
    assert result.exit_code == 2 and "lacks hash, at, key_id, signature" in result.output


def test_no_checkpoint_is_signed_that_contradicts_an_earlier_one(log: Log) -> None:
    _first, second = standard_log(log)
    with log.tampering() as conn:
        edit_byte(conn, 6)
        rehash_from(conn, 6)
    with pytest.raises(Conflict, match="record 7 now has hash .* the log was rewritten"):
        log.checkpoint()
    assert log.verify().first_bad_seq == 7


def test_no_checkpoint_is_signed_over_a_broken_chain(log: Log) -> None:
    standard_log(log)
    with log.tampering() as conn:
        edit_byte(conn, 10)
    with pytest.raises(Conflict, match=r"does not verify after seq 7: record 10: .*\(edited\)"):
        log.checkpoint()


def test_api_and_cli_report_tampering(log: Log) -> None:
    issued = log.write(lambda uow: tokens.create_token(uow, "auditor", "auditor", []))
    admin = log.write(lambda uow: tokens.create_token(uow, "admin", "admin", []))
    log.depots(3)
    app = create_app({"SETTINGS": log.settings})
    try:
        client = app.test_client()
        auditor = {"Authorization": f"Bearer {issued.secret}"}
        assert client.get("/api/v1/audit/verify", headers=auditor).get_json()["ok"] is True
        made = client.post(
            "/api/v1/audit/checkpoints", headers={"Authorization": f"Bearer {admin.secret}"}
        )
        assert made.status_code == 201 and made.get_json()["seq"] == 5
        log.depots(1)
        with log.tampering() as conn:
            edit_byte(conn, 7)
        body = client.get("/api/v1/audit/verify", headers=auditor).get_json()
        assert body == {
            "ok": False,
            "first_bad_seq": 7,
            "reason": "hash does not match the stored bytes (edited)",
        }
        refused = client.post(
            "/api/v1/audit/checkpoints", headers={"Authorization": f"Bearer {admin.secret}"}
        )
        assert refused.status_code == 409 and "record 7" in refused.get_json()["detail"]
    finally:
        app.extensions["inventory.engine"].dispose()
    result = CliRunner().invoke(main, ["audit", "verify"], env=log.env())
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1]) == body


def test_cli_checkpoint_then_verify_against_it(log: Log, tmp_path: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(main, ["audit", "checkpoint"], env=log.env())
    assert refused.exit_code == 1 and "empty" in refused.output
    log.depots(2)
    made = runner.invoke(main, ["audit", "checkpoint"], env=log.env())
    assert made.exit_code == 0, made.output
    kept = tmp_path / "kept.json"
    kept.write_text(made.stdout)
    assert json.loads(made.stdout)["seq"] == 2
    log.depots(2)
    result = runner.invoke(main, ["audit", "verify", "--checkpoint", str(kept)], env=log.env())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["length"] == 5


@pytest.fixture
def walked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs of the records the Python walk reads (SQL proves the rest on PostgreSQL)."""
    seqs: list[int] = []
    stream = audit_log.stream

    def counting_stream(*args: object, **kwargs: object) -> Iterator[object]:
        for row in stream(*args, **kwargs):  # type: ignore[arg-type]
            seqs.append(row.seq)
            yield row

    monkeypatch.setattr(audit_log, "stream", counting_stream)
    return seqs


def test_postgresql_proves_a_sound_log_in_sql_and_walks_only_past_trouble(
    log: Log, walked: list[int]
) -> None:
    if not log.url.startswith("postgresql"):
        pytest.skip("SQLite has no SHA-256 in SQL: it walks every record")
    standard_log(log)
    assert log.verify().ok and walked == []
    with log.tampering() as conn:
        edit_byte(conn, 10)
    assert log.verify().first_bad_seq == 10
    assert walked == [10]  # the walk starts where SQL found trouble and names it


AWKWARD = 'a "quote", a \\ backslash, a\nnewline, a\ttab, a bell \x07, é, 日本, 🙂'


def test_postgresql_proves_records_with_awkward_values_in_sql(log: Log, walked: list[int]) -> None:
    """Every character JSON must escape, and some it must not, in every column and free value:
    the statement writes the columns as the canonical bytes do and proves the records without
    the walk. A record whose changes hold the client_request_id key after another key cannot be
    cut apart by the statement (it fails on that batch); the walk takes it, and accepts it."""
    if not log.url.startswith("postgresql"):
        pytest.skip("SQLite has no SHA-256 in SQL: it walks every record")

    def append(changes: dict[str, object], **overrides: object) -> None:
        record: dict[str, object] = {
            "actor": Actor(name=f"clerk {AWKWARD}", role=Role.CLERK, token_id=uuid.uuid4()),
            "request_id": 'r-"\\\n-é',
            "now": datetime.now(UTC),
            "action": 'test.awkward "\\',
            "subject": f"depot:{AWKWARD}",
            "changes": changes,
            "client_request_id": f"c-{AWKWARD}",
        }
        session = log.sessions()
        try:
            audit_log.append(session, **{**record, **overrides})  # type: ignore[arg-type]
            session.commit()
        finally:
            session.close()

    append({"note": AWKWARD, "numbers": [1, -2.5, 1e300, None, True], "nested": {"": {}}})
    append({"note": AWKWARD}, client_request_id=None, actor=operator(AWKWARD))
    append({})
    assert log.verify().ok and walked == []
    append({"amount": 1, "client_request_id": "inside the changes, after another key"})
    assert log.verify().ok and walked[-1] == 4  # the walk took the batch holding it
