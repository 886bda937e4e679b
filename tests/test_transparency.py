"""The transparency log end to end: signed tree heads as C2SP notes, proofs over HTTP, witnesses'
cosignatures, and `inventory.monitor` (the outsider's verifier) catching the database owner's
rewrites of history."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, text

from inventory import create_app, monitor
from inventory.cli import main
from inventory.domain import merkle, notes
from inventory.services import checkpoints, tokens, transparency

from .conftest import Api, unique
from .ledger_helpers import make_world
from .test_audit_db import database_with_app_role  # noqa: F401 (a fixture)
from .test_audit_tamper import Log, body_of, delete_from, hash_of, rehash_from, set_head

LOG_TABLES = (
    "audit_records",
    "audit_checkpoints",
    "log_hashes",
    "log_checkpoints",
    "log_cosignatures",
)


def fetcher(client: FlaskClient, token: str) -> monitor.Fetch:
    """The monitor's HTTP GET, through the Flask test client."""

    def fetch(path: str) -> bytes:
        reply = client.get(path, headers={"Authorization": f"Bearer {token}"})
        if reply.status_code != 200:
            raise monitor.MonitorError(f"{path}: HTTP {reply.status_code}: {reply.get_data()!r}")
        return bytes(reply.get_data())

    return fetch


def poster(client: FlaskClient, token: str) -> monitor.Post:
    def post(path: str, body: dict[str, Any]) -> bytes:
        reply = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        if reply.status_code != 201:
            raise monitor.MonitorError(f"{path}: HTTP {reply.status_code}: {reply.get_data()!r}")
        return bytes(reply.get_data())

    return post


def sign_checkpoint(api: Api) -> dict[str, Any]:
    reply = api.post("/api/v1/audit/checkpoints")
    assert reply.status_code == 201, reply.get_json()
    return dict(reply.get_json())


def test_a_checkpoint_is_a_signed_note_with_proofs_a_monitor_checks(api: Api) -> None:
    world = make_world(api)
    serial = unique("KA87")
    assert world.receive([serial]).status_code == 201
    sign_checkpoint(api)
    reader = api.token_for("monitor")

    vkey_text = api.get("/api/v1/log/verifier-key", token=reader).get_data(as_text=True)
    key = monitor.VerifierKey.parse(vkey_text)
    note = api.get("/api/v1/log/checkpoint", token=reader)
    assert note.status_code == 200 and note.mimetype == "text/plain"
    head = monitor.open_checkpoint(note.get_data(as_text=True), key)
    assert head.origin == key.name == "stockpile.invalid/audit-log"

    found = api.get(f"/api/v1/log/search?serial={serial}", token=reader).get_json()
    assert found["seqs"] and all(seq <= head.size for seq in found["seqs"])
    seq = found["seqs"][0]
    entry = api.get(f"/api/v1/log/entries?start={seq}&end={seq}", token=reader).get_json()
    data = base64.b64decode(entry["entries"][0]["leaf_input"])
    assert serial.encode() in data and entry["entries"][0]["leaf_index"] == seq - 1
    proof = api.get(
        f"/api/v1/log/proof/inclusion?seq={seq}&tree_size={head.size}", token=reader
    ).get_json()
    path = [base64.b64decode(p) for p in proof["inclusion_path"]]
    assert proof["leaf_index"] == seq - 1 and proof["tree_size"] == head.size
    assert monitor.verify_inclusion(seq - 1, head.size, monitor.leaf_hash(data), path, head.root)
    assert not monitor.verify_inclusion(
        seq - 1, head.size, monitor.leaf_hash(data + b" "), path, head.root
    )

    # The next checkpoint extends this one, provably.
    assert world.receive([unique("KA87")]).status_code == 201
    sign_checkpoint(api)
    later = monitor.open_checkpoint(
        api.get("/api/v1/log/checkpoint", token=reader).get_data(as_text=True), key
    )
    assert later.size > head.size
    reply = api.get(
        f"/api/v1/log/proof/consistency?first={head.size}&second={later.size}", token=reader
    ).get_json()
    path = [base64.b64decode(p) for p in reply["consistency_path"]]
    assert monitor.verify_consistency(head.size, later.size, head.root, later.root, path)
    older = api.get(f"/api/v1/log/checkpoint?tree_size={head.size}", token=reader)
    assert older.get_data(as_text=True) == head.note


def test_proofs_beyond_the_signed_tree_and_bad_ranges_are_refused(api: Api) -> None:
    sign_checkpoint(api)
    reader = api.token_for("monitor")
    head = api.get("/api/v1/log/checkpoint", token=reader).get_data(as_text=True)
    size = int(head.split("\n")[1])
    far = size + 10_000
    for path, field in (
        (f"/api/v1/log/proof/inclusion?seq=1&tree_size={far}", "tree_size"),
        (f"/api/v1/log/proof/inclusion?seq={size + 1}&tree_size={size}", "seq"),
        (f"/api/v1/log/proof/consistency?first={size}&second={far}", "second"),
        (f"/api/v1/log/proof/consistency?first={size}&second=1", "first"),
        ("/api/v1/log/entries?start=1&end=5000", "end"),
    ):
        reply = api.get(path, token=reader)
        assert reply.status_code == 422, (path, reply.get_json())
        assert field in json.dumps(reply.get_json()), reply.get_json()
    assert api.get("/api/v1/log/checkpoint?tree_size=999999999", token=reader).status_code == 404


def test_witnesses_cosign_and_a_checkpoint_lists_their_cosignatures(api: Api) -> None:
    sign_checkpoint(api)
    reader = api.token_for("monitor")
    witness_key = Ed25519PrivateKey.generate()
    name = f"witness.example/{unique('w').lower()}"
    vkey = monitor.witness_verifier_key(name, witness_key)
    assert api.post("/api/v1/log/witnesses", json={"vkey": vkey}, token=reader).status_code == 403
    assert api.post("/api/v1/log/witnesses", json={"vkey": vkey}).status_code == 201
    assert api.post("/api/v1/log/witnesses", json={"vkey": vkey}).status_code == 409
    note_key = notes.verifier_key("x.example", Ed25519PrivateKey.generate().public_key())
    assert api.post("/api/v1/log/witnesses", json={"vkey": note_key}).status_code == 422

    note = api.get("/api/v1/log/checkpoint", token=reader).get_data(as_text=True)
    body, _ = notes.split(note)
    size = int(body.split("\n")[1])
    line = monitor.cosignature_line(body, name, witness_key, 1_700_000_000)
    forged = monitor.cosignature_line(body + "x\n", name, witness_key, 1_700_000_000)
    post = "/api/v1/log/cosignatures"
    assert (
        api.post(post, json={"tree_size": size, "cosignature": forged}, token=reader).status_code
        == 422
    )
    reply = api.post(post, json={"tree_size": size, "cosignature": line}, token=reader)
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["timestamp"] == 1_700_000_000
    assert (
        api.post(post, json={"tree_size": size, "cosignature": line}, token=reader).status_code
        == 409
    )

    listed = api.get(f"/api/v1/log/checkpoint?tree_size={size}", token=reader).get_data(
        as_text=True
    )
    assert listed.startswith(note) and line in listed
    # The note with its cosignature still verifies under the log's key, and the cosignature
    # under the witness's.
    log_key = monitor.VerifierKey.parse(api.get("/api/v1/log/verifier-key").get_data(as_text=True))
    monitor.open_checkpoint(listed, log_key)
    payload = [p for n, p in notes.split(listed)[1] if n == name][0]
    assert notes.check_cosignature(body, notes.parse_verifier_key(vkey), payload) == 1_700_000_000


def test_a_checkpoint_nobody_cosigned_is_flagged_after_the_grace(api: Api, app: Flask) -> None:
    sign_checkpoint(api)
    session = app.extensions["inventory.sessions"]()
    try:
        latest = transparency.checkpoint(session)
        at = latest.signed_at
        grace = timedelta(hours=2)
        assert transparency.uncosigned(session, at + timedelta(hours=1), grace) == []
        late = transparency.uncosigned(session, at + timedelta(hours=3), grace)
        assert [row.tree_size for row in late] == [latest.tree_size]
        assert transparency.uncosigned_seconds(session, at + timedelta(hours=3), grace) == 3600.0
    finally:
        session.close()


# The outsider's monitor against a log its owner rewrites.


class Monitored:
    """A fresh log, an app serving it, and a monitor's state."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.log = Log(url, tmp_path)
        self.app = create_app({"SETTINGS": self.log.settings})
        self.client = self.app.test_client()
        self.token = self.log.write(
            lambda uow: tokens.create_token(uow, "oversight", "monitor", [])
        ).secret
        self.state = monitor.State()
        self.codes: list[str] = []

    def depots(self, count: int) -> None:
        from inventory.services import reference

        for _ in range(count):
            code = unique("D")
            self.codes.append(code)
            self.log.write(
                lambda uow, c=code: reference.create_depot(uow, code=c, name=f"Depot {c}")
            )

    def key(self) -> monitor.VerifierKey:
        private = checkpoints.signing_key(self.log.settings)
        return monitor.VerifierKey.parse(transparency.verifier_key(self.log.settings, private))

    def watch(self, serials: list[str] | None = None) -> monitor.Report:
        return monitor.run(
            fetcher(self.client, self.token), self.key(), self.state, serials or self.codes[:2]
        )

    @contextmanager
    def tampering(self) -> Iterator[Connection]:
        """As the owner: triggers off on every log table."""
        with self.log.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                yield conn
                return
            names = ", ".join(f"'{t}'" for t in LOG_TABLES)
            triggers = conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                    f"AND tbl_name IN ({names})"
                )
            ).all()
            for trigger, _sql in triggers:
                conn.execute(text(f'DROP TRIGGER "{trigger}"'))
            yield conn
            for _trigger, sql in triggers:
                conn.execute(text(sql))


@pytest.fixture
def watched(fresh_database_url: str, tmp_path: Path) -> Iterator[Monitored]:
    opened = Monitored(fresh_database_url, tmp_path)
    # Record 1 the monitor's token, 2-5 depots, 6 checkpoint (tree of 5), 7-10 depots,
    # 11 checkpoint (tree of 10), 12-13 depots.
    opened.depots(4)
    opened.log.checkpoint()
    report = opened.watch()
    assert report.size == 5 and report.checked == {opened.codes[0]: [2], opened.codes[1]: [3]}
    opened.depots(4)
    opened.log.checkpoint()
    assert opened.watch().size == 10  # consistent with the tree of 5
    opened.depots(2)
    yield opened
    opened.app.extensions["inventory.engine"].dispose()
    opened.log.engine.dispose()


def resign(conn: Connection) -> None:
    """The owner throws away the tree and every signed head, to rebuild and re-sign them."""
    for table in ("log_cosignatures", "log_checkpoints", "log_hashes", "audit_checkpoints"):
        conn.execute(text(f"DELETE FROM {table}"))


def rewrite_deep(conn: Connection) -> None:
    body = body_of(conn, 3)
    conn.execute(
        text("UPDATE audit_records SET body = :b WHERE seq = 3"),
        {"b": body.replace(b"Depot ", b"Dep0t ")},
    )
    rehash_from(conn, 3)


def drop_tail(conn: Connection) -> None:
    delete_from(conn, 8)
    set_head(conn, 7, hash_of(conn, 7))


def swap_records(conn: Connection) -> None:
    """Records 2 and 3 change places, each re-numbered and its copied columns kept in step."""
    rows = {
        seq: conn.execute(text("SELECT * FROM audit_records WHERE seq = :s"), {"s": seq})
        .mappings()
        .one()
        for seq in (2, 3)
    }
    for seq, other in ((2, 3), (3, 2)):
        moved = dict(rows[other])
        body = bytes(moved["body"]).replace(f'"seq":{other},'.encode(), f'"seq":{seq},'.encode())
        conn.execute(
            text(
                "UPDATE audit_records SET body = :body, actor = :actor, role = :role, "
                "action = :action, subject = :subject, request_id = :request_id, "
                "recorded_at = :recorded_at WHERE seq = :seq"
            ),
            {
                **{k: moved[k] for k in ("actor", "role", "action", "subject", "request_id")},
                "recorded_at": moved["recorded_at"],
                "body": body,
                "seq": seq,
            },
        )
    rehash_from(conn, 2)


MUTATIONS: dict[str, tuple[Callable[[Connection], None], int, str]] = {
    # name: (mutation, depots added afterwards, what the monitor says)
    "rewrite a record deep in history and re-hash": (rewrite_deep, 0, "does not extend"),
    "drop the tail": (drop_tail, 0, "fewer than the 10"),
    "drop the tail, then grow past the held size": (drop_tail, 6, "does not extend"),
    "swap two records": (swap_records, 0, "does not extend"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_monitor_catches_the_owner_rewriting_history(
    watched: Monitored, mutation: str, tmp_path: Path
) -> None:
    tamper, grow, message = MUTATIONS[mutation]
    with watched.tampering() as conn:
        tamper(conn)
        resign(conn)
    watched.depots(grow)
    forged = watched.log.checkpoint()  # the owner has the key: a fresh, well-signed tree head
    assert forged.tree_head is not None
    # A newcomer with no state would accept the forged log...
    fresh = monitor.run(fetcher(watched.client, watched.token), watched.key(), monitor.State())
    assert fresh.size == int(forged.tree_head.split("\n")[1])
    # ...but the monitor holding the checkpoint of 10 records does not.
    held = watched.state.checkpoint
    with pytest.raises(monitor.MonitorError, match=message):
        watched.watch()
    assert watched.state.checkpoint == held  # nothing accepted


def test_a_record_the_monitor_saw_cannot_change_without_it_noticing(watched: Monitored) -> None:
    # The owner edits record 2 but keeps the tree (so the proofs still hold for the old bytes).
    with watched.tampering() as conn:
        body = body_of(conn, 2)
        conn.execute(
            text("UPDATE audit_records SET body = :b WHERE seq = 2"),
            {"b": body.replace(b'"changes":{', b'"changes":{"x":1,')},
        )
    with pytest.raises(monitor.MonitorError, match="record 2 about .* changed"):
        watched.watch()


def test_the_cli_integrates_and_the_monitor_command_reports(
    watched: Monitored, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["log", "integrate"], env=watched.log.env())
    assert result.exit_code == 0, result.output
    assert "integrated 3 records: the tree now has 13" in result.output
    vkey = runner.invoke(main, ["log", "verifier-key"], env=watched.log.env())
    assert vkey.exit_code == 0 and monitor.VerifierKey.parse(vkey.output).name
    session = watched.log.sessions()
    try:
        size = transparency.integrated_size(session)
        assert size == 13
        root = transparency.root_hash(session, size)
        bodies = session.execute(text("SELECT body FROM audit_records ORDER BY seq")).scalars()
        assert root == merkle.root_from_leaves([merkle.leaf_hash(bytes(b)) for b in bodies][:13])
    finally:
        session.close()


def test_the_worker_alerts_once_when_no_witness_cosigned_in_time(watched: Monitored) -> None:
    from inventory.domain.actors import operator
    from inventory.services.unit_of_work import Context, run_write
    from inventory.worker import Worker

    session = watched.log.sessions()
    latest = transparency.checkpoint(session)
    signed_at, size = latest.signed_at, latest.tree_size
    session.close()
    late = signed_at + watched.log.settings.cosignature_grace + timedelta(minutes=1)

    def flag(now: Any) -> Any:
        session = watched.log.sessions()
        try:
            context = Context(actor=operator("tests"), settings=watched.log.settings)
            return run_write(
                session,
                context,
                lambda uow: transparency.flag_uncosigned(uow, now),
                lambda f, _u: f,
            ).body
        finally:
            session.close()

    assert flag(late) is None  # no witness registered: nobody is expected to cosign
    witness = Ed25519PrivateKey.generate()
    name = "oversight.example/w1"
    watched.log.write(
        lambda uow: transparency.register_witness(uow, monitor.witness_verifier_key(name, witness))
    )
    assert flag(signed_at + timedelta(minutes=1)) is None  # still within the grace
    session = watched.log.sessions()
    worker = Worker(watched.log.settings, session=session, clock=lambda: late)
    try:
        worker.checkpoint()  # the worker's hourly step flags it (and signs a new head)...
        worker.checkpoint()  # ...and flags each head once
    finally:
        session.close()
    alerts = watched.client.get(
        "/api/v1/alerts?type=log.uncosigned&order=asc",
        headers={"Authorization": f"Bearer {watched.token}"},
    ).get_json()["items"]
    flagged = [a["data"]["tree_size"] for a in alerts]
    # The head of 10 is flagged, and so is the one the worker signed on its first step (of 15):
    # the fake clock is past its grace too. Each only once.
    assert flagged[0] == size and len(flagged) == len(set(flagged)), alerts

    # Once a witness cosigns the latest head, nothing is flagged.
    session = watched.log.sessions()
    body, _ = notes.split(transparency.checkpoint(session).note)
    latest_size = transparency.checkpoint(session).tree_size
    session.close()
    line = monitor.cosignature_line(body, name, witness, 1_800_000_000)
    watched.log.write(lambda uow: transparency.add_cosignature(uow, latest_size, line))
    assert flag(late + timedelta(days=1)) is None


def test_inventory_monitor_over_http_verifies_cosigns_and_then_catches_a_rewrite(
    watched: Monitored, tmp_path: Path
) -> None:
    from .servers import Server

    runner = CliRunner()
    vkey = tmp_path / "log.vkey"
    vkey.write_text(
        transparency.verifier_key(
            watched.log.settings, checkpoints.signing_key(watched.log.settings)
        )
    )
    made = runner.invoke(
        main,
        ["log", "witness-key", "--name", "oversight.example/w1", "--out", str(tmp_path / "w.pem")],
    )
    assert made.exit_code == 0, made.output
    watched.log.write(lambda uow: transparency.register_witness(uow, made.output.strip()))
    watched.log.checkpoint()
    state = tmp_path / "monitor-state.json"
    env = {"INVENTORY_MONITOR_TOKEN": watched.token}
    with Server(watched.log.url, tmp_path, workers=1) as server:
        args = ["monitor", "--url", f"http://127.0.0.1:{server.port}", "--vkey", f"@{vkey}"]
        args += ["--state", str(state), "--serial", watched.codes[0], "--serial", watched.codes[5]]
        cosign = ["--cosign-key", str(tmp_path / "w.pem"), "--witness-name", "oversight.example/w1"]
        result = runner.invoke(main, args + cosign, env=env)
        assert result.exit_code == 0, result.output
        assert "checkpoint of 14 records verified (held before: none)" in result.output
        assert f"{watched.codes[5]}: records 8 proven included" in result.output
        assert "cosignature posted" in result.output
        held = json.loads(state.read_text())["checkpoint"]
        assert held.startswith("stockpile.invalid/audit-log\n14\n")

        with watched.tampering() as conn:
            rewrite_deep(conn)
            resign(conn)
        watched.log.checkpoint()
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 1, result.output
        assert (
            "monitor: inconsistent: the checkpoint of 16 records does not extend the one of 14"
            in result.output
        )
        assert json.loads(state.read_text())["checkpoint"] == held


APPEND_ONLY_LOG_TABLES = ("log_hashes", "log_checkpoints", "log_cosignatures")


def test_the_tree_and_its_heads_are_append_only(watched: Monitored) -> None:
    from .test_audit_db import refusal, triggers

    witness = Ed25519PrivateKey.generate()
    vkey = monitor.witness_verifier_key("w.example/1", witness)
    watched.log.write(lambda uow: transparency.register_witness(uow, vkey))
    session = watched.log.sessions()
    body, _ = notes.split(transparency.checkpoint(session).note)
    session.close()
    line = monitor.cosignature_line(body, "w.example/1", witness, 1_800_000_000)
    watched.log.write(lambda uow: transparency.add_cosignature(uow, 10, line))
    engine = watched.log.engine
    postgres = engine.dialect.name == "postgresql"
    for table in APPEND_ONLY_LOG_TABLES:
        expected = (
            {f"{table}_append_only", f"{table}_no_truncate"}
            if postgres
            else {f"{table}_no_update", f"{table}_no_delete"}
        )
        assert expected <= triggers(engine, table)
        for statement in (
            f"UPDATE {table} SET tree_size = tree_size"
            if table != "log_hashes"
            else "UPDATE log_hashes SET idx = idx",
            f"DELETE FROM {table}",
            *([f"TRUNCATE {table} CASCADE"] if postgres else []),
        ):
            assert "append-only" in refusal(engine, statement), statement


def test_the_app_role_may_only_append_to_the_tree(
    database_with_app_role: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    from sqlalchemy import create_engine, event

    from inventory.db.append_only import app_role

    from .test_audit_db import refusal

    role = app_role()
    engine = create_engine(database_with_app_role)
    try:
        for table in APPEND_ONLY_LOG_TABLES:
            for statement in (f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE"):
                refused = refusal(engine, statement, role=role)
                assert f"permission denied for table {table}" in refused, statement
    finally:
        engine.dispose()
    as_app = Log(database_with_app_role, tmp_path)
    event.listen(
        as_app.engine, "begin", lambda conn: conn.exec_driver_sql(f"SET LOCAL ROLE {role}")
    )
    try:
        as_app.depots(2)
        made = as_app.checkpoint()
        assert made.tree_head is not None and made.tree_head.split("\n")[1] == "2"
        witness = Ed25519PrivateKey.generate()
        vkey = monitor.witness_verifier_key("w.example/1", witness)
        as_app.write(lambda uow: transparency.register_witness(uow, vkey))
        body, _ = notes.split(made.tree_head)
        line = monitor.cosignature_line(body, "w.example/1", witness, 1_800_000_000)
        as_app.write(lambda uow: transparency.add_cosignature(uow, 2, line))
    finally:
        as_app.engine.dispose()


def test_no_tree_head_is_signed_over_rewritten_tree_hashes(watched: Monitored) -> None:
    from inventory.services.errors import Conflict

    # The hash of the first 8 records' subtree, which the root of 10 is made from.
    eight = merkle.stored_hash_index(3, 0)
    with watched.tampering() as conn:
        conn.execute(
            text("UPDATE log_hashes SET hash = :h WHERE idx = :i"), {"h": b"\0" * 32, "i": eight}
        )
    with pytest.raises(Conflict, match="the signed head of 10 records"):
        watched.log.checkpoint()
