"""An independent check: Go's golang.org/x/mod/sumdb/note and sumdb/tlog (Debian's
golang-golang-x-mod-dev; nobody here wrote them) verify our signed tree heads, an inclusion proof
of every record fetched and a consistency proof, all as served over the API. `.ci/run` installs
Go and the package when missing; elsewhere the test is skipped, saying why."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from inventory import monitor

from .conftest import Api, unique
from .ledger_helpers import make_world

PROGRAM = Path(__file__).parent / "go" / "tlogverify" / "main.go"
GOPATH = Path("/usr/share/gocode")


@pytest.fixture(scope="module")
def tlogverify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        missing = "needs Go and golang-golang-x-mod-dev (apt-get install both; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI installed them: their absence is a failure there
        pytest.skip(missing)
    out = tmp_path_factory.mktemp("go") / "tlogverify"
    env = {
        **os.environ,
        "GO111MODULE": "off",  # GOPATH mode: the packages come from Debian's tree, offline
        "GOPATH": str(GOPATH),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOCACHE": str(out.parent / "cache"),
    }
    subprocess.run([go, "build", "-o", str(out), str(PROGRAM)], check=True, env=env, timeout=300)
    return out


def check(program: Path, payload: dict[str, Any]) -> tuple[int, str]:
    done = subprocess.run(
        [str(program)], input=json.dumps(payload), capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout.strip()


def test_go_sumdb_verifies_our_notes_and_proofs(api: Api, tlogverify: Path) -> None:
    world = make_world(api)
    assert world.receive([unique("KA87")]).status_code == 201
    assert api.post("/api/v1/audit/checkpoints").status_code == 201
    reader = api.token_for("monitor")
    old_note = api.get("/api/v1/log/checkpoint", token=reader).get_data(as_text=True)
    for _ in range(3):
        assert world.receive([unique("KA87")]).status_code == 201
    assert api.post("/api/v1/audit/checkpoints").status_code == 201

    # A witness cosigns the newest head: Go must ignore the line it has no key for.
    name = f"witness.example/{unique('go').lower()}"
    witness = Ed25519PrivateKey.generate()
    vkey_w = monitor.witness_verifier_key(name, witness)
    assert api.post("/api/v1/log/witnesses", json={"vkey": vkey_w}).status_code == 201
    plain = api.get("/api/v1/log/checkpoint", token=reader).get_data(as_text=True)
    body = plain[: plain.index("\n\n") + 1]
    first, second = int(old_note.split("\n")[1]), int(body.split("\n")[1])
    line = monitor.cosignature_line(body, name, witness, 1_800_000_000)
    reply = api.post(
        "/api/v1/log/cosignatures", json={"tree_size": second, "cosignature": line}, token=reader
    )
    assert reply.status_code == 201, reply.get_json()
    note = api.get("/api/v1/log/checkpoint", token=reader).get_data(as_text=True)
    assert note.endswith(line + "\n")

    consistency = api.get(
        f"/api/v1/log/proof/consistency?first={first}&second={second}", token=reader
    ).get_json()["consistency_path"]
    start = max(1, second - 40)
    entries = api.get(f"/api/v1/log/entries?start={start}&end={second}", token=reader).get_json()
    records = []
    for entry in entries["entries"]:
        proof = api.get(
            f"/api/v1/log/proof/inclusion?seq={entry['seq']}&tree_size={second}", token=reader
        ).get_json()
        records.append({**entry, "inclusion_path": proof["inclusion_path"]})
    assert len(records) == second - start + 1
    payload = {
        "vkey": api.get("/api/v1/log/verifier-key").get_data(as_text=True).strip(),
        "note": note,
        "old_note": old_note,
        "consistency_path": consistency,
        "records": records,
    }
    assert check(tlogverify, payload) == (0, "ok")

    # And Go refuses what it should: an edited record, a forged note, a wrong consistency path.
    edited = dict(records[-3])
    data = bytearray(base64.b64decode(edited["leaf_input"]))
    data[-2] ^= 1
    edited["leaf_input"] = base64.b64encode(bytes(data)).decode()
    status, said = check(tlogverify, {**payload, "records": [edited]})
    assert status == 1 and "inclusion of leaf" in said, said
    forged = note.replace(f"\n{second}\n", f"\n{second + 1}\n", 1)
    status, said = check(tlogverify, {**payload, "note": forged})
    assert status == 1 and "note does not verify" in said, said
    assert consistency
    bent = base64.b64decode(consistency[0])
    wrong = [base64.b64encode(bytes([bent[0] ^ 1]) + bent[1:]).decode(), *consistency[1:]]
    status, said = check(tlogverify, {**payload, "consistency_path": wrong})
    assert status == 1 and "consistency" in said, said
