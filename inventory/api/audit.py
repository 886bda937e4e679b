"""The audit log over HTTP: read it, verify its hash chain, make and fetch signed checkpoints."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from ..db.models import AuditCheckpoint, AuditRecord
from ..domain.actors import Role
from ..domain.audit_chain import CHECKPOINT_FORMAT, decode
from ..services import checkpoints
from .auth import ALL_ROLES, allow
from .context import db_session, read_session, settings, write
from .pagination import DescendingPageArgs, PageArgs, keyset_page, page_of

blp = Blueprint(
    "audit", __name__, url_prefix="/api/v1/audit", description="The tamper-evident audit log"
)
MESSAGE_FORMAT = f"{CHECKPOINT_FORMAT}\\n<seq>\\n<hash>\\n<at>\\n"


class AuditQuery(DescendingPageArgs):
    actor = fields.String(metadata={"description": "only records by this token holder"})
    action = fields.String(metadata={"description": "e.g. depot.create, audit.checkpoint"})
    subject = fields.String(metadata={"description": "e.g. depot:D-NORTH"})


class AuditRecordSchema(Schema):
    seq = fields.Integer()
    recorded_at = fields.AwareDateTime()
    actor = fields.String()
    role = fields.String()
    action = fields.String()
    subject = fields.String()
    request_id = fields.String(metadata={"description": "the server's id of the request"})
    token_id = fields.Method(
        "_token_id",
        metadata={
            "type": ["string", "null"],
            "description": "the credential that acted (GET /tokens); null: the server's operator",
        },
    )
    client_request_id = fields.Method(
        "_client_request_id",
        metadata={
            "type": ["string", "null"],
            "description": "the X-Request-ID the client sent, if any",
        },
    )
    prev_hash = fields.String()
    hash = fields.String()
    changes = fields.Method(
        "_changes",
        metadata={"type": "object", "description": "what changed, decoded from the hashed bytes"},
    )

    def _changes(self, record: AuditRecord) -> Any:
        decoded = decode(record.body)
        return None if decoded is None else decoded.get("changes")

    def _token_id(self, record: AuditRecord) -> Any:
        decoded = decode(record.body)
        return None if decoded is None else decoded.get("token_id")

    def _client_request_id(self, record: AuditRecord) -> Any:
        decoded = decode(record.body)
        return None if decoded is None else decoded.get("client_request_id")


class ChainHeadSchema(Schema):
    seq = fields.Integer()
    hash = fields.String()


class VerdictSchema(Schema):
    ok = fields.Boolean(required=True)
    length = fields.Integer(metadata={"description": "when ok: how many records were verified"})
    head = fields.Nested(ChainHeadSchema, metadata={"description": "when ok: the last record"})
    first_bad_seq = fields.Integer(metadata={"description": "when not ok"})
    reason = fields.String(metadata={"description": "when not ok: edited, deleted, inserted, ..."})


class CheckpointSchema(Schema):
    seq = fields.Integer(metadata={"description": "the last record the checkpoint covers"})
    hash = fields.String(metadata={"description": "that record's hash, lower-case hex"})
    at = fields.String(metadata={"description": "when it was signed; the exact text signed"})
    key_id = fields.String(metadata={"description": "first 16 hex of SHA-256(raw public key)"})
    signature = fields.String(
        metadata={"description": f"base64 Ed25519 signature of the ASCII text {MESSAGE_FORMAT}"}
    )


class PublicKeySchema(Schema):
    algorithm = fields.String()
    key_id = fields.String()
    public_key = fields.String(metadata={"description": "base64 of the raw 32-byte key"})
    pem = fields.String(metadata={"description": "the same key as a SubjectPublicKeyInfo PEM"})
    message_format = fields.String(metadata={"description": "the text a signature covers"})


@blp.route("")
class AuditRecords(MethodView):
    @allow(Role.AUDITOR, Role.ADMIN)
    @blp.arguments(AuditQuery, location="query")
    @blp.response(200, page_of(AuditRecordSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Read the audit log, newest first (`order=asc` for oldest first), optionally by
        actor, action or subject"""
        stmt = select(AuditRecord)
        for name in ("actor", "action", "subject"):
            if name in args:
                stmt = stmt.where(getattr(AuditRecord, name) == args[name])
        return keyset_page(db_session(), stmt, AuditRecord.seq, args)


@blp.route("/verify")
class AuditVerification(MethodView):
    @allow(Role.AUDITOR, Role.ADMIN, Role.MONITOR)
    @blp.response(200, VerdictSchema)
    def get(self) -> dict[str, Any]:
        """Walk the hash chain and the stored checkpoints; name the first bad record if any"""
        return checkpoints.verify(read_session(), settings()).report()


@blp.route("/checkpoints")
class Checkpoints(MethodView):
    @allow(Role.AUDITOR, Role.ADMIN, Role.MONITOR)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(CheckpointSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List signed checkpoints, oldest first"""
        page = keyset_page(db_session(), select(AuditCheckpoint), AuditCheckpoint.seq, args)
        return {**page, "items": [checkpoints.Checkpoint.from_row(r) for r in page["items"]]}

    @allow(Role.ADMIN)
    @blp.response(201, CheckpointSchema)
    def post(self) -> Response:
        """Sign the chain head as a checkpoint.

        Refused with 409 if the log no longer extends the previous checkpoint. Keep the response:
        `inventory audit verify --checkpoint FILE` later proves the log still extends it."""
        return write(checkpoints.make_checkpoint, CheckpointSchema())


@blp.route("/public-key")
class PublicKey(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, PublicKeySchema)
    def get(self) -> dict[str, str]:
        """The Ed25519 key checkpoints are signed with"""
        public = checkpoints.public_key(settings())
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "algorithm": "Ed25519",
            "key_id": checkpoints.key_id(public),
            "public_key": base64.b64encode(raw).decode("ascii"),
            "pem": pem.decode("ascii"),
            "message_format": MESSAGE_FORMAT,
        }
