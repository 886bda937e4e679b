"""The audit log as a transparency log, for monitors and auditors: signed tree heads (C2SP
tlog-checkpoint notes), RFC 9162 inclusion and consistency proofs, the records' canonical bytes,
a serial search, and witnesses' cosignatures (C2SP tlog-cosignature).

Field names are RFC 9162's (`leaf_index`, `tree_size`, `inclusion_path`, `consistency_path`;
`leaf_input` from RFC 6962's get-entries); hashes and bytes are standard base64. A record's leaf
index is its seq − 1. See docs/monitors.md.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..db.models import LogCosignature, LogWitness
from ..domain.actors import Role
from ..services import checkpoints, transparency
from .auth import ALL_ROLES, allow
from .context import db_session, settings, write

blp = Blueprint(
    "log",
    __name__,
    url_prefix="/api/v1/log",
    description="The audit log as a transparency log: signed tree heads, proofs, witnesses",
)
READERS = (Role.AUDITOR, Role.ADMIN, Role.MONITOR)
SEQ = fields.Integer(required=True, validate=validate.Range(min=1, max=2**62))


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(value).decode("ascii") for value in values]


def _text(body: str) -> Response:
    return Response(body, mimetype="text/plain", content_type="text/plain; charset=utf-8")


class CheckpointQuery(Schema):
    tree_size = fields.Integer(
        validate=validate.Range(min=1, max=2**62),
        metadata={"description": "a given signed tree head (default: the latest)"},
    )


class InclusionQuery(Schema):
    seq = SEQ
    tree_size = SEQ


class InclusionSchema(Schema):
    leaf_index = fields.Integer(metadata={"description": "seq − 1"})
    tree_size = fields.Integer()
    inclusion_path = fields.List(
        fields.String(), metadata={"description": "RFC 9162 audit path, base64, leaf side first"}
    )


class ConsistencyQuery(Schema):
    first = SEQ
    second = SEQ


class ConsistencySchema(Schema):
    tree_size_1 = fields.Integer()
    tree_size_2 = fields.Integer()
    consistency_path = fields.List(fields.String(), metadata={"description": "base64 hashes"})


class EntriesQuery(Schema):
    start = SEQ
    end = SEQ


class EntrySchema(Schema):
    seq = fields.Integer()
    leaf_index = fields.Integer()
    leaf_input = fields.String(
        metadata={"description": "base64 of the record's canonical bytes (the leaf's data)"}
    )


class EntriesSchema(Schema):
    entries = fields.List(fields.Nested(EntrySchema))


class SearchQuery(Schema):
    serial = fields.String(required=True, validate=validate.Length(min=1, max=200))


class SearchSchema(Schema):
    serial = fields.String()
    tree_size = fields.Integer(metadata={"description": "the integrated tree searched"})
    seqs = fields.List(fields.Integer())


class WitnessSchema(Schema):
    name = fields.String(dump_only=True)
    vkey = fields.String(
        required=True,
        validate=validate.Length(max=400),
        metadata={"description": "note verifier key, type 0x04: <name>+<id hex>+<base64 key>"},
    )
    registered_at = fields.AwareDateTime(dump_only=True)
    registered_by = fields.String(dump_only=True)


class WitnessListSchema(Schema):
    items = fields.List(fields.Nested(WitnessSchema))


class CosignatureSchema(Schema):
    tree_size = fields.Integer(required=True, validate=validate.Range(min=1, max=2**62))
    cosignature = fields.String(
        required=True,
        validate=validate.Length(max=400),
        metadata={"description": "one C2SP tlog-cosignature line: — <name> <base64>"},
    )


class CosignatureOutSchema(Schema):
    tree_size = fields.Integer()
    witness = fields.String()
    timestamp = fields.Integer()
    line = fields.String()


@blp.route("/checkpoint")
class LatestCheckpoint(MethodView):
    @allow(*READERS)
    @blp.arguments(CheckpointQuery, location="query")
    @blp.response(200, content_type="text/plain")
    def get(self, args: dict[str, Any]) -> Response:
        """The latest signed tree head as a C2SP checkpoint note, with witnesses' cosignatures"""
        session = db_session()
        row = transparency.checkpoint(session, args.get("tree_size"))
        return _text(transparency.cosigned_note(session, row))


@blp.route("/verifier-key")
class VerifierKey(MethodView):
    @allow(*ALL_ROLES)
    @blp.response(200, content_type="text/plain")
    def get(self) -> Response:
        """The note verifier key that checkpoints are signed with (C2SP signed-note)"""
        key = checkpoints.signing_key(settings())
        return _text(transparency.verifier_key(settings(), key) + "\n")


@blp.route("/proof/inclusion")
class InclusionProof(MethodView):
    @allow(*READERS)
    @blp.arguments(InclusionQuery, location="query")
    @blp.response(200, InclusionSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """RFC 9162 inclusion proof of record `seq` in the tree of `tree_size` records"""
        proof = transparency.inclusion(db_session(), args["seq"], args["tree_size"])
        return {**proof, "inclusion_path": _b64(proof["inclusion_path"])}


@blp.route("/proof/consistency")
class ConsistencyProof(MethodView):
    @allow(*READERS)
    @blp.arguments(ConsistencyQuery, location="query")
    @blp.response(200, ConsistencySchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """RFC 9162 consistency proof from the tree of `first` records to that of `second`"""
        proof = transparency.consistency(db_session(), args["first"], args["second"])
        return {**proof, "consistency_path": _b64(proof["consistency_path"])}


@blp.route("/entries")
class Entries(MethodView):
    @allow(*READERS)
    @blp.arguments(EntriesQuery, location="query")
    @blp.response(200, EntriesSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The canonical bytes of the integrated records `start`..`end` (seqs, inclusive; ≤ 1000)"""
        records = transparency.entries(db_session(), args["start"], args["end"])
        return {
            "entries": [
                {
                    "seq": r.seq,
                    "leaf_index": r.seq - 1,
                    "leaf_input": base64.b64encode(r.body).decode("ascii"),
                }
                for r in records
            ]
        }


@blp.route("/search")
class Search(MethodView):
    @allow(*READERS)
    @blp.arguments(SearchQuery, location="query")
    @blp.response(200, SearchSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Seqs of the integrated records whose canonical bytes mention `serial`"""
        session = db_session()
        seqs = transparency.search(session, args["serial"])
        size = transparency.integrated_size(session)
        return {"serial": args["serial"], "tree_size": size, "seqs": seqs}


@blp.route("/witnesses")
class Witnesses(MethodView):
    @allow(*READERS)
    @blp.response(200, WitnessListSchema)
    def get(self) -> dict[str, Any]:
        """The witnesses whose cosignatures the log accepts"""
        return {"items": transparency.witnesses(db_session())}

    @allow(Role.ADMIN)
    @blp.arguments(WitnessSchema)
    @blp.response(201, WitnessSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Register a witness's cosignature key (C2SP note verifier key of type 0x04)"""

        def register(uow: Any) -> LogWitness:
            return transparency.register_witness(uow, body["vkey"])

        return write(register, WitnessSchema())


@blp.route("/cosignatures")
class Cosignatures(MethodView):
    @allow(Role.MONITOR, Role.ADMIN)
    @blp.arguments(CosignatureSchema)
    @blp.response(201, CosignatureOutSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Add a registered witness's tlog-cosignature to a signed tree head it verified"""

        def cosign(uow: Any) -> LogCosignature:
            return transparency.add_cosignature(uow, body["tree_size"], body["cosignature"])

        return write(cosign, CosignatureOutSchema())
