"""C2SP signed notes (c2sp.org/signed-note), tlog-checkpoint bodies (c2sp.org/tlog-checkpoint) and
tlog-cosignatures (c2sp.org/tlog-cosignature), as the server writes and checks them.

A note is its body text (newline-terminated lines), a blank line, then signature lines
`— <key name> <base64(4-byte key ID ‖ signature)>`. An Ed25519 note key's ID is
SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)[:4] and its signature covers the body. A cosignature key's
ID uses 0x04 instead, and its signature (after an 8-byte big-endian timestamp) covers
"cosignature/v1\\ntime <timestamp>\\n" followed by the body. A verifier key is the text
`<name>+<key ID in hex>+<base64(type byte ‖ public key)>`.

A checkpoint body is the origin line, the tree size in decimal, and the base64 root hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"
# A key name is non-empty, without spaces, pluses or newlines (signed-note §"Signatures").
NAME = re.compile(r"^[^\s+\u2014]+$")


class NoteError(ValueError):
    """Text that is not a well-formed note, verifier key or cosignature."""


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public).digest()[:4]


def verifier_key(name: str, public: Ed25519PublicKey, key_type: int = ED25519) -> str:
    """The note verifier key for `public` under `name`."""
    if not NAME.match(name):
        raise NoteError(f"{name!r} is not a note key name (no spaces or '+')")
    raw = raw_public(public)
    encoded = base64.b64encode(bytes([key_type]) + raw).decode("ascii")
    return f"{name}+{key_id(name, key_type, raw).hex()}+{encoded}"


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.key_type, self.public)


def parse_verifier_key(text: str) -> VerifierKey:
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not NAME.match(parts[0]):
        raise NoteError("a verifier key is <name>+<8 hex digits>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as error:
        raise NoteError(f"the verifier key's id or key is not hex/base64: {error}") from error
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("the verifier key is not an Ed25519 (0x01) or cosignature (0x04) key")
    key = VerifierKey(name, raw[0], raw[1:])
    if key.key_id != wanted:
        raise NoteError(f"the verifier key's id {hex_id} does not match its name and key")
    return key


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    if not origin or "\n" in origin:
        raise NoteError("the origin is one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(body: str) -> CheckpointBody:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0]:
        raise NoteError("a checkpoint body is an origin, a tree size and a root hash line")
    if not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise NoteError(f"the tree size {lines[1]!r} is not a decimal number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as error:
        raise NoteError("the root hash is not base64") from error
    if len(root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    return CheckpointBody(lines[0], int(lines[1]), root)


def signature_line(name: str, payload: bytes) -> str:
    return f"{DASH} {name} {base64.b64encode(payload).decode('ascii')}\n"


def sign(body: str, name: str, private: Ed25519PrivateKey) -> str:
    """The note of `body` signed with `private` under `name`."""
    if not body.endswith("\n"):
        raise NoteError("a note body ends with a newline")
    ident = key_id(name, ED25519, raw_public(private.public_key()))
    signature = private.sign(body.encode("utf-8"))
    return body + "\n" + signature_line(name, ident + signature)


def split(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(body, [(key name, decoded signature payload)]) of a note."""
    at = note.rfind("\n\n")
    if at < 0 or not note.endswith("\n"):
        raise NoteError("a note is a body, a blank line and signature lines")
    body, rest = note[: at + 1], note[at + 2 :]
    signatures = []
    for line in rest.split("\n")[:-1]:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or not NAME.match(parts[1]):
            raise NoteError(f"{line!r} is not a signature line")
        try:
            signatures.append((parts[1], base64.b64decode(parts[2], validate=True)))
        except binascii.Error as error:
            raise NoteError(f"{line!r} does not hold base64") from error
    if not signatures:
        raise NoteError("the note has no signature")
    return body, signatures


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, name: str, private: Ed25519PrivateKey, timestamp: int) -> str:
    """A tlog-cosignature line on the checkpoint `body`."""
    ident = key_id(name, COSIGNATURE_V1, raw_public(private.public_key()))
    signature = private.sign(cosignature_message(body, timestamp))
    return signature_line(name, ident + struct.pack(">Q", timestamp) + signature)


def check_cosignature(body: str, key: VerifierKey, payload: bytes) -> int:
    """The timestamp of a valid cosignature `payload` by `key` on `body`; NoteError otherwise."""
    if key.key_type != COSIGNATURE_V1:
        raise NoteError(f"the key of {key.name} is not a cosignature/v1 (0x04) key")
    if len(payload) != 4 + 8 + 64 or payload[:4] != key.key_id:
        raise NoteError(f"not a cosignature/v1 by {key.name}'s key (length or key id)")
    (timestamp,) = struct.unpack(">Q", payload[4:12])
    if timestamp >= 1 << 63:
        raise NoteError("the cosignature's timestamp is out of range")
    try:
        Ed25519PublicKey.from_public_bytes(key.public).verify(
            payload[12:], cosignature_message(body, timestamp)
        )
    except InvalidSignature as error:
        raise NoteError(f"the cosignature by {key.name} does not verify") from error
    return int(timestamp)
