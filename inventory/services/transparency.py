"""The transparency log: the Merkle tree over the audit records, its signed tree heads, proofs,
and the witnesses' cosignatures.

Appending an audit record does not touch the tree (the chain head's lock is the write path's one
serialisation point, and nothing may be added inside it). `integrate` appends, in a batch, every
record after the last integrated one, as Certificate Transparency logs integrate queued entries:
it is called before a checkpoint is signed (so by the worker's hourly checkpoint), and by
`inventory log integrate`. Tree heads and proofs cover only the integrated tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import LargeBinary, bindparam, func, insert, select, text
from sqlalchemy.orm import Session

from ..db.bulk import among
from ..db.models import AuditRecord, LogCheckpoint, LogCosignature, LogHash, LogWitness
from ..domain import merkle, notes, policy
from ..settings import Settings
from . import outbox
from .accountability import require
from .errors import Conflict, Invalid, NotFound
from .unit_of_work import UnitOfWork

# Any constant will do, as long as every process that integrates uses it.
MERKLE_LOCK = 0x5354_4B50_4D4B  # "STKPMK"
BATCH = 100_000
UNCOSIGNED_EVENT = "log.uncosigned"
MAX_ENTRIES = 1000


def integrated_size(session: Session) -> int:
    last = session.scalar(select(func.max(LogHash.idx)))
    return 0 if last is None else merkle.size_for_hash_count(int(last) + 1)


def reader(session: Session) -> merkle.Read:
    """Stored hashes by position, for the pure tree code."""

    def read(indexes: Sequence[int]) -> list[bytes]:
        if not indexes:
            return []
        wanted = sorted(set(indexes))
        rows = session.execute(
            select(LogHash.idx, LogHash.hash).where(among(session, LogHash.idx, wanted))
        )
        found = {int(idx): bytes(digest) for idx, digest in rows}
        missing = [index for index in wanted if index not in found]
        if missing:
            raise Conflict(f"stored tree hashes {missing[:5]} are missing: the tree was cut")
        return [found[index] for index in indexes]

    return read


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MERKLE_LOCK})


def _leaf_hashes(session: Session, after: int, upto: int) -> list[bytes]:
    """Leaf hashes of the records after seq `after` through `upto`, stopping at a gap."""
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text(
                "SELECT seq, sha256('\\x00'::bytea || body) FROM audit_records "
                "WHERE seq > :after AND seq <= :upto ORDER BY seq"
            ),
            {"after": after, "upto": upto},
        )
        pairs = [(int(seq), bytes(digest)) for seq, digest in rows]
    else:
        rows = session.execute(
            select(AuditRecord.seq, AuditRecord.body)
            .where(AuditRecord.seq > after, AuditRecord.seq <= upto)
            .order_by(AuditRecord.seq)
        )
        pairs = [(int(seq), merkle.leaf_hash(body)) for seq, body in rows]
    leaves = []
    for expected, (seq, digest) in enumerate(pairs, start=after + 1):
        if seq != expected:
            break  # not yet committed, or deleted: integrate only what is contiguous
        leaves.append(digest)
    return leaves


def _store(session: Session, start: int, hashes: list[bytes]) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # Binary COPY: a back-fill stores two hashes per record, millions of rows.
        driver = connection.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy("COPY log_hashes (idx, hash) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int8", "bytea"])
            for offset, digest in enumerate(hashes):
                copy.write_row((start + offset, digest))
        return
    session.execute(
        insert(LogHash),
        [{"idx": start + offset, "hash": digest} for offset, digest in enumerate(hashes)],
    )


def integrate(
    session: Session, upto: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Append to the tree every audit record after the integrated ones (through seq `upto`), in
    the session's transaction; return the tree size. One integration at a time (advisory lock on
    PostgreSQL; SQLite's write transaction serialises it)."""
    _lock(session)
    size = integrated_size(session)
    frontier = reader(session)(merkle.frontier_indexes(size))
    if upto is None:
        upto = int(session.scalar(select(func.max(AuditRecord.seq))) or 0)
    while size < upto:
        leaves = _leaf_hashes(session, size, min(size + BATCH, upto))
        if not leaves:
            break
        stored, frontier = merkle.append_leaves(size, frontier, leaves)
        _store(session, merkle.stored_hash_count(size), stored)
        size += len(leaves)
        if progress is not None:
            progress(len(leaves))
    session.flush()
    return size


def root_hash(session: Session, size: int) -> bytes:
    return merkle.tree_hash(size, reader(session))


def origin(settings: Settings) -> str:
    return settings.log_origin


def verifier_key(settings: Settings, private: Ed25519PrivateKey) -> str:
    return notes.verifier_key(origin(settings), private.public_key())


def sign_tree_head(uow: UnitOfWork, private: Ed25519PrivateKey, upto: int) -> str:
    """Integrate through seq `upto`, then sign and store the tree head as a C2SP checkpoint note
    (unless one of that size is stored already); return the note."""
    session = uow.session
    size = integrate(session, upto)
    stored = session.get(LogCheckpoint, size)
    if stored is not None:
        return stored.note
    previous = session.scalar(
        select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)
    )
    if previous is not None and (
        previous.tree_size > size
        or root_hash(session, previous.tree_size).hex() != previous.root_hash
    ):
        # Like the chain's checkpoints: never sign a head that contradicts the last one signed.
        raise Conflict(
            f"the stored tree no longer has the root of the signed head of {previous.tree_size} "
            "records: its hashes were rewritten or cut; no tree head was signed"
        )
    root = root_hash(session, size)
    name = origin(uow.settings)
    note = notes.sign(notes.checkpoint_body(name, size, root), name, private)
    session.add(LogCheckpoint(tree_size=size, root_hash=root.hex(), note=note, signed_at=uow.now))
    session.flush()
    return note


def checkpoint(session: Session, tree_size: int | None = None) -> LogCheckpoint:
    stmt = select(LogCheckpoint)
    if tree_size is None:
        stmt = stmt.order_by(LogCheckpoint.tree_size.desc()).limit(1)
    else:
        stmt = stmt.where(LogCheckpoint.tree_size == tree_size)
    row = session.scalar(stmt)
    if row is None:
        if tree_size is None:
            raise NotFound("no tree head has been signed yet (the worker signs one hourly)")
        raise NotFound(f"no checkpoint of tree size {tree_size} was signed")
    return row


def cosigned_note(session: Session, row: LogCheckpoint) -> str:
    """The checkpoint note with its witnesses' cosignature lines after the log's signature."""
    lines = session.scalars(
        select(LogCosignature.line)
        .where(LogCosignature.tree_size == row.tree_size)
        .order_by(LogCosignature.witness)
    )
    return row.note + "".join(line + "\n" for line in lines)


def _signed_size(session: Session, tree_size: int, name: str) -> None:
    size = integrated_size(session)
    if tree_size > size:
        raise Invalid(
            f"{name} {tree_size} is beyond the integrated tree of {size} records", field=name
        )


def inclusion(session: Session, seq: int, tree_size: int) -> dict[str, Any]:
    """The RFC 9162 inclusion proof of the record `seq` in the tree of `tree_size` records."""
    if not 1 <= seq <= tree_size:
        raise Invalid(f"seq {seq} is not in a tree of {tree_size} records", field="seq")
    _signed_size(session, tree_size, "tree_size")
    path = merkle.inclusion_proof(seq - 1, tree_size, reader(session))
    return {"leaf_index": seq - 1, "tree_size": tree_size, "inclusion_path": path}


def consistency(session: Session, first: int, second: int) -> dict[str, Any]:
    """The RFC 9162 consistency proof from the tree of `first` records to that of `second`."""
    if not 1 <= first <= second:
        raise Invalid(f"first ({first}) must be between 1 and second ({second})", field="first")
    _signed_size(session, second, "second")
    path = merkle.consistency_proof(first, second, reader(session))
    return {"tree_size_1": first, "tree_size_2": second, "consistency_path": path}


def entries(session: Session, start: int, end: int) -> list[AuditRecord]:
    """The integrated records of seqs start..end (inclusive, at most MAX_ENTRIES)."""
    if start < 1 or end < start:
        raise Invalid("start must be ≥ 1 and end ≥ start", field="end")
    if end - start + 1 > MAX_ENTRIES:
        raise Invalid(f"at most {MAX_ENTRIES} entries at a time", field="end")
    end = min(end, integrated_size(session))
    return list(
        session.scalars(
            select(AuditRecord)
            .where(AuditRecord.seq >= start, AuditRecord.seq <= end)
            .order_by(AuditRecord.seq)
        )
    )


def search(session: Session, serial: str) -> list[int]:
    """Seqs of the integrated records whose canonical bytes mention `serial` as a JSON string
    (a scan of the bodies: a monitor asks for a handful of serials, not thousands)."""
    if not serial or len(serial) > 200:
        raise Invalid("give a serial of 1 to 200 characters", field="serial")
    needle = json.dumps(serial, ensure_ascii=False).encode("utf-8")
    size = integrated_size(session)
    if session.get_bind().dialect.name == "postgresql":
        found = text("position(:needle IN body) > 0")
    else:
        found = text("instr(body, :needle) > 0")
    rows = session.scalars(
        select(AuditRecord.seq)
        .where(
            AuditRecord.seq <= size, found.bindparams(bindparam("needle", needle, LargeBinary()))
        )
        .order_by(AuditRecord.seq)
    )
    return [int(seq) for seq in rows]


# Witnesses and cosignatures.


def witnesses(session: Session) -> list[LogWitness]:
    return list(session.scalars(select(LogWitness).order_by(LogWitness.name)))


def register_witness(uow: UnitOfWork, vkey: str) -> LogWitness:
    require(uow, policy.Action.WITNESS_REGISTER)
    try:
        key = notes.parse_verifier_key(vkey)
    except notes.NoteError as error:
        raise Invalid(str(error), field="vkey") from error
    if key.key_type != notes.COSIGNATURE_V1:
        raise Invalid("a witness key is a cosignature/v1 key (type 0x04)", field="vkey")
    if uow.session.get(LogWitness, key.name) is not None:
        raise Conflict(f"a witness named {key.name} is registered already")
    witness = LogWitness(
        name=key.name, vkey=vkey.strip(), registered_at=uow.now, registered_by=uow.actor.name
    )
    uow.session.add(witness)
    uow.session.flush()
    uow.record("log.witness.register", f"log_witness:{key.name}", {"vkey": witness.vkey})
    return witness


def add_cosignature(uow: UnitOfWork, tree_size: int, line: str) -> LogCosignature:
    """Store a witness's tlog-cosignature line on the checkpoint of `tree_size`, after checking it
    against the registered key."""
    require(uow, policy.Action.COSIGNATURE)
    session = uow.session
    row = checkpoint(session, tree_size)
    try:
        parsed = notes.split("\n\n" + line.strip() + "\n")[1]
    except notes.NoteError as error:
        raise Invalid(str(error), field="cosignature") from error
    if len(parsed) != 1:
        raise Invalid("send one cosignature line", field="cosignature")
    name, payload = parsed[0]
    witness = session.get(LogWitness, name)
    if witness is None:
        raise Invalid(f"no witness named {name} is registered", field="cosignature")
    body, _ = notes.split(row.note)
    try:
        timestamp = notes.check_cosignature(body, notes.parse_verifier_key(witness.vkey), payload)
    except notes.NoteError as error:
        raise Invalid(str(error), field="cosignature") from error
    if session.get(LogCosignature, (tree_size, name)) is not None:
        raise Conflict(f"{name} has cosigned tree size {tree_size} already")
    cosignature = LogCosignature(
        tree_size=tree_size,
        witness=name,
        timestamp=timestamp,
        line=line.strip(),
        received_at=uow.now,
    )
    session.add(cosignature)
    session.flush()
    uow.record(
        "log.cosign",
        f"log_checkpoint:{tree_size}",
        {"witness": name, "timestamp": timestamp, "line": cosignature.line},
    )
    return cosignature


def uncosigned(session: Session, now: datetime, grace: timedelta) -> list[LogCheckpoint]:
    """The latest checkpoint, if it was signed more than `grace` ago and no witness cosigned it
    (an older one that no witness ever cosigned is superseded by the latest)."""
    latest = session.scalar(select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1))
    if latest is None or latest.signed_at > now - grace:
        return []
    cosigned = session.scalar(
        select(func.count()).where(LogCosignature.tree_size == latest.tree_size)
    )
    return [] if cosigned else [latest]


def flag_uncosigned(uow: UnitOfWork, now: datetime) -> int | None:
    """Alert (`log.uncosigned`, once per checkpoint) when the latest signed tree head has gone
    `Settings.cosignature_grace` without any witness's cosignature, if witnesses are registered at
    all. Returns the flagged tree size, or None (then nothing is written)."""
    session = uow.session
    late = uncosigned(session, now, uow.settings.cosignature_grace)
    if not late or session.scalar(select(func.count()).select_from(LogWitness)) == 0:
        uow.changed_nothing()
        return None
    row = late[0]
    subject = f"log_checkpoint:{row.tree_size}"
    flagged = session.scalar(
        select(AuditRecord.seq)
        .where(AuditRecord.action == UNCOSIGNED_EVENT, AuditRecord.subject == subject)
        .limit(1)
    )
    if flagged is not None:
        uow.changed_nothing()
        return None
    data = {
        "tree_size": row.tree_size,
        "root_hash": row.root_hash,
        "signed_at": row.signed_at.isoformat(),
        "grace_seconds": uow.settings.cosignature_grace.total_seconds(),
    }
    outbox.publish(uow, UNCOSIGNED_EVENT, data, severity="high")
    uow.record(UNCOSIGNED_EVENT, subject, data)
    return row.tree_size


def uncosigned_seconds(session: Session, now: datetime, grace: timedelta) -> float:
    """For a metric (#16's /metrics can call this): how long the latest checkpoint has gone
    without a cosignature past `grace`, in seconds; 0 when it is cosigned or still within grace."""
    late = uncosigned(session, now, grace)
    return 0.0 if not late else (now - late[0].signed_at - grace).total_seconds()
