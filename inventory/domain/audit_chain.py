"""The audit log's hash chain: a versioned canonical encoding, the walk that verifies it, and the
byte string a checkpoint signs.

Record bytes are `FORMAT` followed by compact, key-sorted JSON; `hash = SHA-256(prev_hash ‖ bytes)`
with the previous hash as raw 32 bytes. The verifier reads the stored bytes; it never re-serialises.

A checkpoint signs `checkpoint_message(seq, hash, at)`, which is the text

    stockpile-audit-checkpoint/1\\n<seq>\\n<hash>\\n<at>\\n

in ASCII: the decimal seq of the last record covered, that record's hash in lower-case hex, and the
moment of signing as ISO 8601 UTC with microseconds (e.g. `2026-11-28T10:00:00.000000+00:00`).
Anyone holding the public key can rebuild it and check the Ed25519 signature without our code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

FORMAT = b"stockpile-audit/1\n"
CHECKPOINT_FORMAT = "stockpile-audit-checkpoint/1"
GENESIS_HASH = "0" * 64
# Columns copied out of the body for querying; an edit to any of them is an edit to the record.
INDEXED_FIELDS = ("seq", "actor", "role", "action", "subject", "request_id", "recorded_at")
HASH_HEX = re.compile(r"^[0-9a-f]{64}$")
AT_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


def canonical_bytes(entry: dict[str, Any]) -> bytes:
    return FORMAT + json.dumps(
        entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_parts(entry: dict[str, Any]) -> tuple[bytes, bytes]:
    """`canonical_bytes` of `entry` with a "seq" added, split where the seq's digits go, so the
    database can put in a seq it assigns: `before + str(seq) + after` is the canonical body."""
    if "seq" in entry:
        raise ValueError("the entry already has a seq")

    def item(key: str) -> str:
        return canonical_bytes({key: entry[key]})[len(FORMAT) + 1 : -1].decode("utf-8")

    keys = sorted(entry)
    before = "".join(item(key) + "," for key in keys if key < "seq")
    after = "".join("," + item(key) for key in keys if key > "seq")
    return FORMAT + ("{" + before + '"seq":').encode("utf-8"), (after + "}").encode("utf-8")


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


def decode(body: bytes) -> dict[str, Any] | None:
    """The JSON object inside a record's stored bytes, or None if they are not a v1 record."""
    if not body.startswith(FORMAT):
        return None
    try:
        decoded = json.loads(body[len(FORMAT) :].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def checkpoint_message(seq: int, hash: str, at: str) -> bytes:
    """The exact bytes a checkpoint's signature covers (see the module docstring)."""
    if seq < 1 or not HASH_HEX.match(hash) or not AT_TEXT.match(at):
        raise ValueError(f"not a checkpoint: seq={seq!r} hash={hash!r} at={at!r}")
    return f"{CHECKPOINT_FORMAT}\n{seq}\n{hash}\n{at}\n".encode("ascii")


class StoredRecord(Protocol):
    seq: int
    body: bytes
    prev_hash: str
    hash: str

    def indexed_fields(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Pin:
    """A hash the log was earlier held to at `seq`: a signed checkpoint. `problem` says why the pin
    itself cannot be trusted (its signature does not verify), which is reported as tampering."""

    seq: int
    hash: str
    label: str
    problem: str | None = None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    length: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None

    def report(self) -> dict[str, Any]:
        """The verdict as the API and the CLI print it."""
        if self.ok:
            return {
                "ok": True,
                "length": self.length,
                "head": {"seq": self.head_seq, "hash": self.head_hash},
            }
        return {"ok": False, "first_bad_seq": self.first_bad_seq, "reason": self.reason}


def _self_consistent(record: StoredRecord) -> bool:
    try:
        return chain_hash(record.prev_hash, record.body) == record.hash
    except ValueError:  # prev_hash is not hex: edited
        return False


def verify_chain(
    records: Iterable[StoredRecord],
    head_seq: int,
    head_hash: str,
    *,
    pins: Iterable[Pin] = (),
    after: tuple[int, str] = (0, GENESIS_HASH),
    held: int | None = None,
) -> Verdict:
    """Walk `records` in seq order and name the first one that is not what was appended.

    `records` start right after `after` (seq, hash), by default the genesis. `head_seq`/`head_hash`
    are the chain head kept beside the log: a log that stops short of it has lost its tail. Each
    pin (a signed checkpoint) must match the record at its seq; that catches a tail that was
    rewritten and re-hashed consistently, and a tail cut off together with the head. `held` is
    the seq of the last pin already found to match before `after` (by default `after` itself).
    """
    last, prev_hash = after
    pinned: dict[int, list[Pin]] = {}
    for pin in pins:
        if pin.seq > last:
            pinned.setdefault(pin.seq, []).append(pin)
    last_pinned = last if held is None else held

    def bad(seq: int, reason: str) -> Verdict:
        return Verdict(False, last, last, prev_hash, seq, reason)

    for record in records:
        seq = last + 1
        if record.seq != seq:
            return bad(seq, f"record {seq} is missing (deleted)")
        if not _self_consistent(record):
            return bad(seq, "hash does not match the stored bytes (edited)")
        body = decode(record.body)
        if body is None:
            return bad(seq, "stored bytes are not a version-1 audit record (edited)")
        if body.get("seq") != seq:
            return bad(seq, f"stored bytes say seq {body.get('seq')}: the record moved (reordered)")
        if record.prev_hash != prev_hash:
            return bad(
                seq,
                f"prev_hash does not match the hash of record {seq - 1}: a record was inserted "
                f"here, or record {seq - 1} was edited and re-hashed (inserted)",
            )
        for name, value in record.indexed_fields().items():
            if body.get(name) != value:
                return bad(seq, f"column {name} differs from the hashed bytes (edited)")
        for pin in pinned.get(seq, ()):
            if pin.problem is not None:
                return bad(seq, f"{pin.label}: {pin.problem}")
            if pin.hash != record.hash:
                return bad(
                    seq,
                    f"hash differs from the {pin.label}: records {last_pinned + 1} to {seq} were "
                    "rewritten and every later record re-hashed (forged)",
                )
            last_pinned = seq
        last, prev_hash = seq, record.hash

    beyond = [seq for seq in pinned if seq > last]
    if beyond:
        pin = pinned[min(beyond)][0]
        return bad(last + 1, f"log ends at seq {last}, short of the {pin.label} (truncated)")
    if head_seq > last:
        return bad(last + 1, f"log ends at seq {last} but its head says {head_seq} (truncated)")
    if head_seq < last:
        return bad(head_seq + 1, f"records after the chain head's seq {head_seq} (inserted)")
    if head_hash != prev_hash:
        return bad(head_seq, "chain head's hash does not match the last record (head edited)")
    return Verdict(True, last, last, prev_hash)
