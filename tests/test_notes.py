"""Signed notes, checkpoints and cosignatures (C2SP): the published Go sumdb/note example as a
known answer, and the server's writer against the monitor's own reader."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from inventory import monitor
from inventory.domain import notes

# golang.org/x/mod/sumdb/note's example (example_test.go): a signer key, its verifier key, and the
# note it signs. Ed25519 is deterministic, so our signature must be byte for byte theirs.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
)


def go_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    assert seed[0] == notes.ED25519
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def test_we_sign_and_publish_keys_exactly_as_go_sumdb_note_does() -> None:
    key = go_key()
    assert notes.verifier_key("PeterNeumann", key.public_key()) == GO_VERIFIER
    assert notes.sign(GO_TEXT, "PeterNeumann", key) == GO_NOTE
    parsed = notes.parse_verifier_key(GO_VERIFIER)
    assert (parsed.name, parsed.key_id.hex()) == ("PeterNeumann", "c74f20a3")
    body, signatures = notes.split(GO_NOTE)
    assert body == GO_TEXT and [name for name, _ in signatures] == ["PeterNeumann"]


def test_a_checkpoint_note_round_trips_through_the_monitor_and_any_edit_fails() -> None:
    key = Ed25519PrivateKey.generate()
    origin = "stockpile.example/audit-log"
    root = bytes(range(32))
    note = notes.sign(notes.checkpoint_body(origin, 1234, root), origin, key)
    vkey = monitor.VerifierKey.parse(notes.verifier_key(origin, key.public_key()))
    head = monitor.open_checkpoint(note, vkey)
    assert (head.origin, head.size, head.root) == (origin, 1234, root)
    assert notes.parse_checkpoint(head.body) == notes.CheckpointBody(origin, 1234, root)
    for at in range(len(note.split("\n\n")[0])):
        edited = note[:at] + ("X" if note[at] != "X" else "Y") + note[at + 1 :]
        with pytest.raises(monitor.MonitorError):
            monitor.open_checkpoint(edited, vkey)
    other = monitor.VerifierKey.parse(
        notes.verifier_key(origin, Ed25519PrivateKey.generate().public_key())
    )
    with pytest.raises(monitor.MonitorError, match="no signature by the log key"):
        monitor.open_checkpoint(note, other)


def test_a_cosignature_is_checked_against_the_witness_key_and_the_body() -> None:
    witness = Ed25519PrivateKey.generate()
    name = "witness.example/w1"
    body = notes.checkpoint_body("stockpile.example/audit-log", 7, b"\x01" * 32)
    line = monitor.cosignature_line(body, name, witness, 1_679_315_147)
    assert line == notes.cosign(body, name, witness, 1_679_315_147).rstrip("\n")
    key = notes.parse_verifier_key(monitor.witness_verifier_key(name, witness))
    assert key.key_type == notes.COSIGNATURE_V1
    [(signer, payload)] = notes.split(body + "\n" + line + "\n")[1]
    assert signer == name and len(payload) == 76
    assert notes.check_cosignature(body, key, payload) == 1_679_315_147
    with pytest.raises(notes.NoteError):
        notes.check_cosignature(body.replace("7", "8"), key, payload)
    with pytest.raises(notes.NoteError):  # a note key (0x01) is not a cosignature key
        notes.check_cosignature(
            body, notes.parse_verifier_key(notes.verifier_key(name, witness.public_key())), payload
        )
