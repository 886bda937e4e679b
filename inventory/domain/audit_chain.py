"""The audit log's hash chain: a versioned canonical encoding and the walk that verifies it.

Record bytes are `FORMAT` followed by compact, key-sorted JSON; `hash = SHA-256(prev_hash ‖ bytes)`
with the previous hash as raw 32 bytes. The verifier reads the stored bytes; it never re-serialises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

FORMAT = b"stockpile-audit/1\n"
GENESIS_HASH = "0" * 64
# Columns copied out of the body for querying; an edit to any of them is an edit to the record.
INDEXED_FIELDS = ("seq", "actor", "role", "action", "subject", "request_id", "recorded_at")


def canonical_bytes(entry: dict[str, Any]) -> bytes:
    return FORMAT + json.dumps(
        entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


class StoredRecord(Protocol):
    seq: int
    body: bytes
    prev_hash: str
    hash: str

    def indexed_fields(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Verdict:
    ok: bool
    length: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


def _decode(body: bytes) -> dict[str, Any] | None:
    if not body.startswith(FORMAT):
        return None
    try:
        decoded = json.loads(body[len(FORMAT) :].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def verify_chain(records: Iterable[StoredRecord], head_seq: int, head_hash: str) -> Verdict:
    """Walk `records` in seq order from 1 and name the first one that is not what was appended.

    `head_seq`/`head_hash` are the chain head kept beside the log; a log that stops short of it has
    lost its tail.
    """
    expected_seq, prev_hash = 1, GENESIS_HASH

    def bad(seq: int, reason: str) -> Verdict:
        return Verdict(False, expected_seq - 1, expected_seq - 1, prev_hash, seq, reason)

    for record in records:
        if record.seq != expected_seq:
            return bad(expected_seq, f"record {expected_seq} is missing (deleted)")
        if record.prev_hash != prev_hash:
            return bad(
                record.seq, "prev_hash does not match the record before it (inserted or reordered)"
            )
        if chain_hash(prev_hash, record.body) != record.hash:
            return bad(record.seq, "hash does not match the stored bytes (edited)")
        body = _decode(record.body)
        if body is None:
            return bad(record.seq, "stored bytes are not a version-1 audit record (edited)")
        if body.get("seq") != record.seq:
            return bad(record.seq, f"stored bytes say seq {body.get('seq')} (reordered)")
        for name, value in record.indexed_fields().items():
            if body.get(name) != value:
                return bad(record.seq, f"column {name} differs from the hashed bytes (edited)")
        expected_seq, prev_hash = record.seq + 1, record.hash

    length = expected_seq - 1
    if head_seq != length or head_hash != prev_hash:
        if head_seq > length:
            return bad(
                length + 1, f"log ends at seq {length} but its head says {head_seq} (truncated)"
            )
        return bad(head_seq, "chain head does not match the last record (head edited)")
    return Verdict(True, length, length, prev_hash)
