"""Signed checkpoints of the audit log: the head (seq, hash) at a moment, signed with Ed25519 so
that monitors outside the database's owner can later prove the log still extends it.

The signing key lives in a PEM file (Settings.signing_key_path, env INVENTORY_SIGNING_KEY), made
with mode 600 only by `inventory keys init` (`init_key`), never as a side effect of signing; it is
never stored in the database. Signing with a key other than the one the latest checkpoint names is
refused unless the caller says it is a rotation, which the checkpoint's audit record then tells.
A key's id is the first 16 hex digits of SHA-256 of its raw 32-byte public key. The signed bytes are
`audit_chain.checkpoint_message`; signatures are standard base64 of the 64 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ..db.models import AuditCheckpoint, AuditRecord
from ..domain.audit_chain import GENESIS_HASH, Pin, Verdict, checkpoint_message, decode
from ..settings import Settings
from . import audit_log, transparency
from .errors import Conflict, Invalid, ServiceError
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
# Any constant will do: it only has to be the same for every process that makes checkpoints.
CHECKPOINT_LOCK = 0x5354_4B50_4350  # "STKPCP"
CHECKPOINT_ACTION = "audit.checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint as the API hands it out and a monitor keeps it. `at` is the exact text
    that was signed."""

    seq: int
    hash: str
    at: str
    key_id: str
    signature: str
    # The transparency log's signed tree head made with it (a C2SP checkpoint note), if any.
    tree_head: str | None = field(default=None, compare=False)

    @classmethod
    def from_row(cls, row: AuditCheckpoint) -> Checkpoint:
        return cls(row.seq, row.hash, audit_log.timestamp(row.at), row.key_id, row.signature)

    @classmethod
    def from_json(cls, value: Any) -> Checkpoint:
        """Read a checkpoint a monitor kept; raise Invalid naming what is wrong with it."""
        if not isinstance(value, dict):
            raise Invalid("a checkpoint is a JSON object with seq, hash, at, key_id and signature")
        missing = [
            name for name in ("seq", "hash", "at", "key_id", "signature") if name not in value
        ]
        if missing:
            raise Invalid(f"the checkpoint lacks {', '.join(missing)}")
        if not isinstance(value["seq"], int) or isinstance(value["seq"], bool):
            raise Invalid("the checkpoint's seq is not an integer", field="seq")
        for name in ("hash", "at", "key_id", "signature"):
            if not isinstance(value[name], str):
                raise Invalid(f"the checkpoint's {name} is not a string", field=name)
        checkpoint = cls(
            value["seq"], value["hash"], value["at"], value["key_id"], value["signature"]
        )
        try:
            checkpoint.message()
        except ValueError as error:
            raise Invalid(str(error)) from error
        return checkpoint

    def message(self) -> bytes:
        return checkpoint_message(self.seq, self.hash, self.at)

    def as_json(self) -> dict[str, Any]:
        """The chain checkpoint as signed (the tree head is a note of its own, at /log)."""
        fields = asdict(self)
        del fields["tree_head"]
        return fields

    def label(self) -> str:
        return f"checkpoint of seq {self.seq} signed at {self.at} (key {self.key_id})"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class SigningKeyUnusable(ServiceError):
    """The server cannot sign: its key is missing (it is made once, explicitly, by `inventory keys
    init`) or unreadable."""

    status, title, type_slug = 503, "No usable signing key", "no-signing-key"


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The server's signing key, read from its PEM file; SigningKeyUnusable if there is none or
    it cannot be read."""
    path = settings.signing_key_path
    try:
        return _load(path)
    except FileNotFoundError:
        raise SigningKeyUnusable(
            f"there is no audit signing key at {path}; make one with `inventory keys init` "
            "(or point INVENTORY_SIGNING_KEY at the existing one)"
        ) from None
    except (OSError, ValueError) as error:
        raise SigningKeyUnusable(f"cannot use the audit signing key at {path}: {error}") from error


def public_key(settings: Settings) -> Ed25519PublicKey:
    """The public half of the signing key (NoSigningKey if there is none)."""
    return signing_key(settings).public_key()


def init_key(settings: Settings) -> tuple[Ed25519PublicKey, bool]:
    """Make the signing key at Settings.signing_key_path (mode 600) unless one is there; return
    its public half and whether it was made now. Never replaces a key."""
    if settings.signing_key_path.exists():
        return signing_key(settings).public_key(), False
    return _generate(settings.signing_key_path).public_key(), True


def _existing_public_key(settings: Settings) -> Ed25519PublicKey | None:
    # Verifying must not make a key: a missing key file is worth noticing, not papering over.
    if not settings.signing_key_path.exists():
        return None
    return public_key(settings)


def _generate(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)  # atomic, and refuses to replace a key another process just made
        except FileExistsError:
            return _load(path)
    finally:
        draft.unlink(missing_ok=True)
    log.warning("made a new audit signing key %s at %s", key_id(key.public_key()), path)
    return key


def _load(path: Path) -> Ed25519PrivateKey:
    pem = path.read_bytes()
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("audit signing key %s is readable by others; chmod 600 it", path)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}; audit checkpoints need Ed25519")
    return key


def signature_problem(checkpoint: Checkpoint, public: Ed25519PublicKey | None) -> str | None:
    """Why `checkpoint` cannot be trusted with `public`, or None if its signature verifies."""
    if public is None:
        return "this server has no signing key to check it with"
    if checkpoint.key_id != key_id(public):
        return f"signed by key {checkpoint.key_id}, but this server's key is {key_id(public)}"
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public.verify(signature, checkpoint.message())
    except (binascii.Error, ValueError, InvalidSignature):
        return "its signature does not verify (checkpoint forged or edited)"
    return None


def _pin(checkpoint: Checkpoint, public: Ed25519PublicKey | None) -> Pin:
    problem = None
    # A checkpoint under an earlier key cannot be checked here, but its hash still binds the log.
    if public is not None and checkpoint.key_id == key_id(public):
        problem = signature_problem(checkpoint, public)
    return Pin(checkpoint.seq, checkpoint.hash, checkpoint.label(), problem)


def stored(session: Session) -> list[Checkpoint]:
    rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
    return [Checkpoint.from_row(row) for row in rows]


def recorded(session: Session) -> list[Checkpoint]:
    """The checkpoints as their own audit records tell them (bodies that do not parse are left to
    the chain walk, which reports them as edited)."""
    bodies = session.scalars(
        select(AuditRecord.body).where(AuditRecord.action == CHECKPOINT_ACTION)
    )
    found = []
    for body in bodies:
        decoded = decode(body)
        try:
            found.append(Checkpoint.from_json(decoded and decoded.get("changes")))
        except Invalid:
            continue
    return found


def latest(session: Session) -> Checkpoint | None:
    row = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))
    return Checkpoint.from_row(row) if row is not None else None


def verify(
    session: Session,
    settings: Settings,
    *,
    progress: Callable[[int], None] | None = None,
    kept: Checkpoint | None = None,
    kept_key: Ed25519PublicKey | None = None,
) -> Verdict:
    """Walk the whole audit log at one moment and hold it to every stored checkpoint and to `kept`
    (one a monitor kept, whose signature must verify with `kept_key`, by default this server's
    key: a checkpoint from before a key rotation needs the key it was signed with). Ends the
    session's transaction first."""
    audit_log.read_snapshot(session)
    public = _existing_public_key(settings)
    # The checkpoint table and the log's own checkpoint records: a forger must undo both.
    known = set(stored(session)) | set(recorded(session))
    pins = [_pin(checkpoint, public) for checkpoint in sorted(known, key=lambda c: c.seq)]
    if kept is not None:
        problem = signature_problem(kept, kept_key or public)
        pins.append(Pin(kept.seq, kept.hash, kept.label(), problem))
    try:
        return audit_log.verify(session, progress, pins)
    finally:
        session.rollback()


def make_checkpoint(uow: UnitOfWork, *, rotate: bool = False) -> Checkpoint:
    """Sign the chain head as a checkpoint, store it, and record that in the audit log.

    Refuses (Conflict) to sign anything that contradicts the previous checkpoint: that checkpoint's
    record must still have its hash, and the chain must verify from it to the head. Refuses too to
    sign with a key other than the previous checkpoint's unless `rotate`; a rotation is told in the
    checkpoint's audit record (`key_rotation`: the previous and the new key id)."""
    session = uow.session
    if session.get_bind().dialect.name == "postgresql":
        # One checkpoint at a time; SQLite's BEGIN IMMEDIATE already serialises every writer.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHECKPOINT_LOCK})
    head_seq, head_hash = audit_log.head(session)
    if head_seq == 0:
        raise Conflict("the audit log is empty: there is nothing to checkpoint yet")
    key = signing_key(uow.settings)
    after = (0, GENESIS_HASH)
    if (previous := latest(session)) is not None:
        _check_same_key(uow, previous, key.public_key(), rotate=rotate)
        _check_still_extends(session, previous, key.public_key())
        after = (previous.seq, previous.hash)
    verdict = audit_log.verify_segment(session, after, (head_seq, head_hash))
    if not verdict.ok:
        raise Conflict(
            f"the audit log does not verify after seq {after[0]}: record {verdict.first_bad_seq}: "
            f"{verdict.reason}; no checkpoint was signed"
        )
    at = audit_log.timestamp(uow.now)
    message = checkpoint_message(head_seq, head_hash, at)
    checkpoint = Checkpoint(
        seq=head_seq,
        hash=head_hash,
        at=at,
        key_id=key_id(key.public_key()),
        signature=base64.b64encode(key.sign(message)).decode("ascii"),
        tree_head=transparency.sign_tree_head(uow, key, head_seq),
    )
    session.add(
        AuditCheckpoint(
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            at=uow.now,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )
    )
    session.flush()
    uow.record(CHECKPOINT_ACTION, f"audit_checkpoint:{head_seq}", checkpoint.as_json())
    return checkpoint


def _check_same_key(
    uow: UnitOfWork, previous: Checkpoint, public: Ed25519PublicKey, *, rotate: bool
) -> None:
    current = key_id(public)
    if previous.key_id == current:
        return
    if not rotate:
        raise Conflict(
            f"the latest {previous.label()} names another key than the one at "
            f"{uow.settings.signing_key_path} ({current}); if that key is meant to replace the "
            "old one, sign with `inventory audit checkpoint --rotate` (recorded in the audit log); "
            "if not, point INVENTORY_SIGNING_KEY at the old key. No checkpoint was signed"
        )
    uow.note_consequence("key_rotation", [{"previous_key_id": previous.key_id, "key_id": current}])


def _check_still_extends(session: Session, previous: Checkpoint, public: Ed25519PublicKey) -> None:
    if previous.key_id == key_id(public) and (problem := signature_problem(previous, public)):
        raise Conflict(f"the latest stored {previous.label()}: {problem}; no checkpoint was signed")
    stored_hash = audit_log.record_hash(session, previous.seq)
    if stored_hash != previous.hash:
        now = "is missing" if stored_hash is None else f"now has hash {stored_hash}"
        raise Conflict(
            f"record {previous.seq} {now}, not the hash {previous.hash} of the {previous.label()}: "
            "the log was rewritten since; no checkpoint was signed"
        )
