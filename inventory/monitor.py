"""`inventory monitor`: a standalone verifier of the audit transparency log, for outsiders.

It needs the log's note verifier key, HTTP access to /api/v1/log/* (a monitor token) and a state
file of its own, and nothing else: it imports none of the server's code, only the wire formats
(C2SP signed-note and tlog-checkpoint, RFC 9162 proofs) which it implements itself, with the
standard library and `cryptography` for Ed25519. Each run it:

1. fetches the latest checkpoint and checks the log's signature on it;
2. checks it is consistent with the checkpoint it held (the log only grew; nothing was rewritten);
3. for each serial it watches, finds the records that mention it, checks each one's inclusion
   proof against the new root and that its canonical bytes mention the serial; records it saw
   before must still be found, with the same bytes;
4. optionally cosigns the checkpoint as a witness (C2SP tlog-cosignature) and posts it;
5. saves the new checkpoint to the state file only when every check passed.

Any inconsistency raises `MonitorError`; the command prints it and exits 1.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DASH = "\u2014"
# (path with query) -> response body; raises MonitorError for a failed request.
Fetch = Callable[[str], bytes]
Post = Callable[[str, dict[str, Any]], bytes]


class MonitorError(Exception):
    """The log is not what a monitor may accept (or could not be read); the message says why."""


# RFC 9162 §2.1: hashing and proof verification.


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `path` prove the leaf hash `leaf` at `index` in the tree of `size`
    leaves whose root is `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does `path` prove the tree of `second` leaves (root `second_root`)
    extends the tree of `first` leaves (root `first_root`)?"""
    if not 0 < first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    path = list(path)
    if first & (first - 1) == 0:  # an exact power of two: the old root is the first node
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# C2SP signed notes and checkpoints.


def _key_id(name: str, key_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_type: int
    public: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)
        if len(parts) != 3 or not parts[0]:
            raise MonitorError("the verifier key is not <name>+<key id hex>+<base64 key>")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            wanted = bytes.fromhex(parts[1])
        except (binascii.Error, ValueError) as error:
            raise MonitorError(f"the verifier key does not decode: {error}") from error
        if len(raw) != 33 or raw[0] != 0x01:
            raise MonitorError("the verifier key is not an Ed25519 (type 0x01) note key")
        key = cls(parts[0], raw[0], raw[1:])
        if _key_id(key.name, key.key_type, key.public) != wanted:
            raise MonitorError("the verifier key's id does not match its name and key")
        return key


@dataclass(frozen=True)
class Checkpoint:
    note: str
    body: str
    origin: str
    size: int
    root: bytes


def open_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """Check the log's signature on a checkpoint note and read its body."""
    at = note.rfind("\n\n")
    if at < 0 or not note.endswith("\n"):
        raise MonitorError("the checkpoint is not a signed note (no blank line before signatures)")
    body, signatures = note[: at + 1], note[at + 2 :].split("\n")[:-1]
    expected_id = _key_id(key.name, key.key_type, key.public)
    verified = False
    for line in signatures:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise MonitorError(f"malformed signature line {line!r}")
        if parts[1] != key.name:
            continue  # a witness's cosignature, or another key
        try:
            payload = base64.b64decode(parts[2], validate=True)
        except binascii.Error as error:
            raise MonitorError(f"signature line {line!r} is not base64") from error
        if payload[:4] != expected_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(payload[4:], body.encode())
        except InvalidSignature as error:
            raise MonitorError(
                f"the checkpoint's signature by {key.name} does not verify (forged or edited)"
            ) from error
        verified = True
    if not verified:
        raise MonitorError(f"the checkpoint carries no signature by the log key {key.name}")
    lines = body.split("\n")
    if len(lines) < 4 or not lines[1].isdigit():
        raise MonitorError("the checkpoint body is not origin, tree size, root hash")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as error:
        raise MonitorError("the checkpoint's root hash is not base64") from error
    if len(root) != 32:
        raise MonitorError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(note, body, lines[0], int(lines[1]), root)


def cosignature_line(body: str, name: str, private: Ed25519PrivateKey, timestamp: int) -> str:
    """A C2SP tlog-cosignature (cosignature/v1) line on a checkpoint body."""
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
    payload = _key_id(name, 0x04, public) + struct.pack(">Q", timestamp) + private.sign(message)
    return f"{DASH} {name} {base64.b64encode(payload).decode('ascii')}"


def witness_verifier_key(name: str, private: Ed25519PrivateKey) -> str:
    """The cosignature verifier key (type 0x04) an admin registers for this witness."""
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    encoded = base64.b64encode(b"\x04" + public).decode("ascii")
    return f"{name}+{_key_id(name, 0x04, public).hex()}+{encoded}"


# The monitor's run.


@dataclass
class State:
    """What the monitor holds between runs: the last checkpoint it accepted, and for each watched
    serial the seqs and leaf hashes of the records it saw mention it."""

    checkpoint: str | None = None
    records: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text("utf-8"))
            return cls(data.get("checkpoint"), dict(data.get("records", {})))
        except (ValueError, AttributeError) as error:
            raise MonitorError(f"the state file {path} is not a monitor's JSON: {error}") from error

    def save(self, path: Path) -> None:
        draft = path.with_name(f".{path.name}.new")
        draft.write_text(
            json.dumps({"checkpoint": self.checkpoint, "records": self.records}, indent=2) + "\n",
            "utf-8",
        )
        os.replace(draft, path)


def _b64list(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise MonitorError(f"the {what} is not a list")
    try:
        decoded = [base64.b64decode(value, validate=True) for value in values]
    except (binascii.Error, TypeError, ValueError) as error:
        raise MonitorError(f"the {what} is not base64") from error
    if any(len(value) != 32 for value in decoded):
        raise MonitorError(f"the {what} holds a hash that is not 32 bytes")
    return decoded


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise MonitorError(f"the {what} is not JSON") from error


@dataclass
class Report:
    size: int
    previous_size: int | None
    checked: dict[str, list[int]]
    cosigned: bool = False

    def lines(self) -> list[str]:
        held = "none" if self.previous_size is None else str(self.previous_size)
        out = [f"checkpoint of {self.size} records verified (held before: {held})"]
        for serial, seqs in self.checked.items():
            out.append(f"{serial}: records {', '.join(map(str, seqs)) or 'none'} proven included")
        if self.cosigned:
            out.append("cosignature posted")
        return out


def run(
    fetch: Fetch,
    key: VerifierKey,
    state: State,
    serials: Sequence[str] = (),
    *,
    cosign: tuple[str, Ed25519PrivateKey] | None = None,
    post: Post | None = None,
    clock: Callable[[], float] = time.time,
) -> Report:
    """One monitoring pass; on success `state` holds the new checkpoint (save it afterwards)."""
    latest = open_checkpoint(fetch("/api/v1/log/checkpoint").decode("utf-8"), key)
    if latest.origin != key.name:
        raise MonitorError(f"the checkpoint's origin {latest.origin!r} is not {key.name!r}")
    previous = None
    if state.checkpoint is not None:
        previous = open_checkpoint(state.checkpoint, key)
        _check_consistent(fetch, previous, latest)
    checked = {serial: _check_serial(fetch, latest, serial, state) for serial in serials}
    cosigned = False
    if cosign is not None:
        if post is None:
            raise MonitorError("cosigning needs a way to post")
        name, private = cosign
        line = cosignature_line(latest.body, name, private, int(clock()))
        post("/api/v1/log/cosignatures", {"tree_size": latest.size, "cosignature": line})
        cosigned = True
    state.checkpoint = latest.note
    return Report(latest.size, None if previous is None else previous.size, checked, cosigned)


def _check_consistent(fetch: Fetch, held: Checkpoint, latest: Checkpoint) -> None:
    if latest.size < held.size:
        raise MonitorError(
            f"inconsistent: the log now has {latest.size} records, fewer than the {held.size} "
            "of the checkpoint held (records were removed)"
        )
    if latest.size == held.size:
        if latest.root != held.root:
            raise MonitorError(
                f"inconsistent: two signed checkpoints of {held.size} records with different "
                "roots (the log was rewritten)"
            )
        return
    query = urllib.parse.urlencode({"first": held.size, "second": latest.size})
    proof = _json(fetch(f"/api/v1/log/proof/consistency?{query}"), "consistency proof")
    path = _b64list(proof.get("consistency_path"), "consistency path")
    if not verify_consistency(held.size, latest.size, held.root, latest.root, path):
        raise MonitorError(
            f"inconsistent: the checkpoint of {latest.size} records does not extend the one of "
            f"{held.size} held (history was rewritten)"
        )


def _check_serial(fetch: Fetch, latest: Checkpoint, serial: str, state: State) -> list[int]:
    query = urllib.parse.urlencode({"serial": serial})
    found = _json(fetch(f"/api/v1/log/search?{query}"), "search result").get("seqs")
    if not isinstance(found, list) or not all(isinstance(seq, int) for seq in found):
        raise MonitorError(f"the search for {serial} did not return a list of seqs")
    seen = state.records.setdefault(serial, {})
    missing = [seq for seq in seen if int(seq) <= latest.size and int(seq) not in found]
    if missing:
        raise MonitorError(
            f"records {', '.join(missing)} that mentioned {serial} are no longer found"
        )
    needle = json.dumps(serial, ensure_ascii=False).encode("utf-8")
    checked = []
    for seq in found:
        if seq > latest.size:
            continue  # not yet in a signed tree head
        entries = _json(fetch(f"/api/v1/log/entries?start={seq}&end={seq}"), "entries")
        items = entries.get("entries") if isinstance(entries, dict) else None
        if not isinstance(items, list) or len(items) != 1 or items[0].get("seq") != seq:
            raise MonitorError(f"the log did not return record {seq}")
        try:
            data = base64.b64decode(items[0]["leaf_input"], validate=True)
        except (binascii.Error, KeyError, TypeError) as error:
            raise MonitorError(f"record {seq}'s leaf_input is not base64") from error
        if needle not in data:
            raise MonitorError(f"record {seq} does not mention {serial} (search lied)")
        digest = leaf_hash(data)
        if seen.get(str(seq), digest.hex()) != digest.hex():
            raise MonitorError(f"record {seq} about {serial} changed since it was last seen")
        proof_query = urllib.parse.urlencode({"seq": seq, "tree_size": latest.size})
        proof = _json(fetch(f"/api/v1/log/proof/inclusion?{proof_query}"), "inclusion proof")
        path = _b64list(proof.get("inclusion_path"), "inclusion path")
        if proof.get("leaf_index") != seq - 1 or not verify_inclusion(
            seq - 1, latest.size, digest, path, latest.root
        ):
            raise MonitorError(
                f"record {seq} about {serial} is not included in the checkpoint of "
                f"{latest.size} records (its bytes or the tree were altered)"
            )
        seen[str(seq)] = digest.hex()
        checked.append(seq)
    return checked


# HTTP.


def http_client(base_url: str, token: str, timeout: float = 30.0) -> tuple[Fetch, Post]:
    base = base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "inventory-monitor"}

    def send(request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:500]
            raise MonitorError(f"{request.full_url}: HTTP {error.code}: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise MonitorError(f"{request.full_url}: {error}") from error

    def fetch(path: str) -> bytes:
        return send(urllib.request.Request(base + path, headers=headers))

    def post(path: str, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            base + path,
            data=data,
            method="POST",
            headers={**headers, "Content-Type": "application/json"},
        )
        return send(request)

    return fetch, post


def load_witness_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise MonitorError(f"{path} is not an Ed25519 private key")
    return key
