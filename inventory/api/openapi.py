"""The OpenAPI document as outside clients read it. flask-smorest generates it from the blueprints;
`complete` then adds, in this one place, what the views do not say themselves: operationIds,
the error responses each operation can give (as RFC 9457 problems), the headers of the HTTP
conventions (Idempotency-Key, Location, ETag, WWW-Authenticate), the CSV alternatives, examples,
and the `webhooks` section for the signed deliveries monitors subscribe to.

A new endpoint needs a row in OPERATION_IDS (a test fails without one); its error responses,
headers and idempotency parameter follow from its method, path and request body."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from flask_smorest import Api

from ..services.subscriptions import EVENT_TYPES
from .problems import PROBLEM_JSON, PROBLEM_TYPE_BASE

REF = "#/components/"
METHODS = ("get", "post", "put", "patch", "delete")

# (method, path as the document spells it) -> operationId. Names are verbs a client reads well.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/depots"): "listDepots",
    ("POST", "/api/v1/depots"): "createDepot",
    ("GET", "/api/v1/depots/{code}"): "getDepot",
    ("GET", "/api/v1/units"): "listUnits",
    ("POST", "/api/v1/units"): "createUnit",
    ("GET", "/api/v1/parties"): "listParties",
    ("POST", "/api/v1/parties"): "createParty",
    ("GET", "/api/v1/item-types"): "listItemTypes",
    ("POST", "/api/v1/item-types"): "createItemType",
    ("GET", "/api/v1/item-types/{code}"): "getItemType",
    ("GET", "/api/v1/tokens"): "listTokens",
    ("POST", "/api/v1/tokens"): "issueToken",
    ("DELETE", "/api/v1/tokens/{token_id}"): "revokeToken",
    ("GET", "/api/v1/movements"): "listMovements",
    ("POST", "/api/v1/movements"): "postMovement",
    ("GET", "/api/v1/movements/{movement_id}"): "getMovement",
    ("GET", "/api/v1/weapons"): "listWeapons",
    ("GET", "/api/v1/weapons/{weapon_id}"): "getWeapon",
    ("GET", "/api/v1/weapons/{weapon_id}/history"): "getWeaponHistory",
    ("GET", "/api/v1/lots"): "listLots",
    ("GET", "/api/v1/lots/{lot_id}"): "getLot",
    ("GET", "/api/v1/lots/{lot_id}/history"): "getLotHistory",
    ("GET", "/api/v1/holdings"): "getHoldings",
    ("GET", "/api/v1/transfers"): "listTransfers",
    ("POST", "/api/v1/transfers"): "dispatchTransfer",
    ("GET", "/api/v1/transfers/{transfer_id}"): "getTransfer",
    ("POST", "/api/v1/transfers/{transfer_id}/receipt"): "receiveTransfer",
    ("POST", "/api/v1/transfers/{transfer_id}/cancel"): "cancelTransfer",
    ("GET", "/api/v1/verifications"): "listVerifications",
    ("GET", "/api/v1/verifications/{verification_id}"): "getVerification",
    ("POST", "/api/v1/verifications/{verification_id}/result"): "recordVerificationResult",
    ("GET", "/api/v1/subscriptions"): "listSubscriptions",
    ("POST", "/api/v1/subscriptions"): "createSubscription",
    ("GET", "/api/v1/subscriptions/{subscription_id}"): "getSubscription",
    ("DELETE", "/api/v1/subscriptions/{subscription_id}"): "deleteSubscription",
    ("GET", "/api/v1/subscriptions/{subscription_id}/deliveries"): "listDeliveries",
    ("GET", "/api/v1/alerts"): "listAlerts",
    ("POST", "/api/v1/sightings"): "recordSighting",
    ("GET", "/api/v1/trace"): "traceMarking",
    ("POST", "/api/v1/stocktakes"): "openStocktake",
    ("POST", "/api/v1/stocktakes/{stocktake_id}/counts"): "addStocktakeCounts",
    ("POST", "/api/v1/stocktakes/{stocktake_id}/close"): "closeStocktake",
    ("GET", "/api/v1/discrepancies"): "listDiscrepancies",
    ("GET", "/api/v1/discrepancies/{discrepancy_id}"): "getDiscrepancy",
    ("POST", "/api/v1/discrepancies/{discrepancy_id}/events"): "addDiscrepancyEvent",
    ("POST", "/api/v1/sweep"): "runSweep",
    ("GET", "/api/v1/reports/accountability"): "getAccountabilityReport",
    ("GET", "/api/v1/audit"): "listAuditRecords",
    ("GET", "/api/v1/audit/verify"): "verifyAuditLog",
    ("GET", "/api/v1/audit/checkpoints"): "listCheckpoints",
    ("POST", "/api/v1/audit/checkpoints"): "signCheckpoint",
    ("GET", "/api/v1/audit/public-key"): "getPublicKey",
    ("GET", "/api/v1/log/checkpoint"): "getLogCheckpoint",
    ("GET", "/api/v1/log/verifier-key"): "getLogVerifierKey",
    ("GET", "/api/v1/log/proof/inclusion"): "getInclusionProof",
    ("GET", "/api/v1/log/proof/consistency"): "getConsistencyProof",
    ("GET", "/api/v1/log/entries"): "listLogEntries",
    ("GET", "/api/v1/log/search"): "searchLog",
    ("GET", "/api/v1/log/witnesses"): "listWitnesses",
    ("POST", "/api/v1/log/witnesses"): "registerWitness",
    ("POST", "/api/v1/log/cosignatures"): "addCosignature",
}

# OpenAPI links from what an operation returns to the operations that take it next, so clients
# and stateful testers can follow them: operationId -> {link name: (target, parameters)}.
LINKS: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "createDepot": {"GetDepot": ("getDepot", {"code": "$response.body#/code"})},
    "createItemType": {"GetItemType": ("getItemType", {"code": "$response.body#/code"})},
    "issueToken": {"RevokeToken": ("revokeToken", {"token_id": "$response.body#/id"})},
    "postMovement": {"GetMovement": ("getMovement", {"movement_id": "$response.body#/id"})},
    "dispatchTransfer": {
        "GetTransfer": ("getTransfer", {"transfer_id": "$response.body#/id"}),
        "ReceiveTransfer": ("receiveTransfer", {"transfer_id": "$response.body#/id"}),
        "CancelTransfer": ("cancelTransfer", {"transfer_id": "$response.body#/id"}),
    },
    "createSubscription": {
        "GetSubscription": ("getSubscription", {"subscription_id": "$response.body#/id"}),
        "ListDeliveries": ("listDeliveries", {"subscription_id": "$response.body#/id"}),
        "DeleteSubscription": ("deleteSubscription", {"subscription_id": "$response.body#/id"}),
    },
    "openStocktake": {
        "AddCounts": ("addStocktakeCounts", {"stocktake_id": "$response.body#/id"}),
        "Close": ("closeStocktake", {"stocktake_id": "$response.body#/id"}),
    },
}

# Operations that also answer in other media types (`?format=` or `Accept`), each with a schema
# and an example: CSV is text, a binary format would be {"type": "string", "format": "binary"}.
ALTERNATE_FORMATS: dict[str, dict[str, dict[str, Any]]] = {
    "listDiscrepancies": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "id,kind,severity,status,depot,holder,weapon_id,...\r\n",
        }
    },
    "getAccountabilityReport": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "as_of,depot,weapons_on_books,weapons_in_store,...\r\n",
        },
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    },
    "getLogCheckpoint": {"text/plain": {"schema": {"type": "string"}}},
    "getLogVerifierKey": {"text/plain": {"schema": {"type": "string"}}},
}

# Reads that can meet a 404 without an id in the path (a holder or depot named in the query).
NOT_FOUND_BY_QUERY = {
    "getHoldings",
    "listMovements",
    "listWeapons",
    "getAccountabilityReport",
    "getLogCheckpoint",  # no signed tree head of that size
    "addCosignature",  # no signed tree head of that size, or no such witness
}

_NOW = "2026-03-01T09:30:00+00:00"
_UUID = "3f8a1c2e-5b7d-4e9f-8a6b-1c2d3e4f5a6b"

REQUEST_EXAMPLES: dict[str, Any] = {
    "createDepot": {"code": "D-NORTH", "name": "Northern armoury", "country": "Freedonia"},
    "createUnit": {"code": "U-1BN", "name": "1st Battalion", "depot": "D-NORTH"},
    "createParty": {
        "code": "P-ALLY",
        "name": "Allied ministry of defence",
        "country": "Sylvania",
        "kind": "recipient",
    },
    "createItemType": {
        "code": "RIFLE-AK",
        "category": "weapon",
        "name": "Assault rifle",
        "calibre": "7.62x39mm",
    },
    "issueToken": {"name": "north armourer", "role": "clerk", "depots": ["D-NORTH"]},
    "postMovement": {
        "kind": "issue",
        "from": "depot:D-NORTH",
        "to": "unit:U-1BN",
        "occurred_at": _NOW,
        "due_back_at": "2026-03-31T18:00:00+00:00",
        "document_ref": "ISS-2026-0042",
        "lines": [
            {"serial": "AK-000123", "manufacturer": "IZHMASH", "item_type": "RIFLE-AK"},
            {"lot_number": "LOT-762-19", "item_type": "AMMO-762", "quantity": 120},
        ],
    },
    "dispatchTransfer": {
        "from": "depot:D-NORTH",
        "to": "depot:D-SOUTH",
        "expected_by": "2026-03-04T18:00:00+00:00",
        "document_ref": "TRF-2026-0007",
        "lines": [{"serial": "AK-000123", "manufacturer": "IZHMASH", "item_type": "RIFLE-AK"}],
    },
    "receiveTransfer": {
        "received_at": "2026-03-03T15:10:00+00:00",
        "lines": [{"serial": "AK-000123", "manufacturer": "IZHMASH", "item_type": "RIFLE-AK"}],
    },
    "cancelTransfer": {"note": "truck unavailable; dispatch again next week"},
    "recordVerificationResult": {
        "checked_at": _NOW,
        "seen": [{"weapon_id": _UUID}],
        "not_seen": [],
        "note": "inspected at the recipient's central armoury",
    },
    "createSubscription": {
        "url": "https://monitor.example.org/hooks/stockpile",
        "events": ["discrepancy.opened", "discrepancy.updated"],
        "severities": ["high", "critical"],
    },
    "recordSighting": {
        "serial": "AK-000123",
        "manufacturer": "IZHMASH",
        "item_type": "RIFLE-AK",
        "observed_at": _NOW,
        "place": "checkpoint 14, eastern border",
        "circumstances": "seized from a vehicle",
    },
    "openStocktake": {"depot": "D-NORTH"},
    "addStocktakeCounts": {
        "lines": [
            {"serial": "AK-000123", "manufacturer": "IZHMASH", "item_type": "RIFLE-AK"},
            {"lot_number": "LOT-762-19", "item_type": "AMMO-762", "quantity": 880},
        ]
    },
    "addDiscrepancyEvent": {"action": "note", "note": "armourer asked to recount rack 3"},
    "registerWitness": {
        "vkey": "witness.example.org/w1+3a7f0c2e+BHNv1x0ZtqLJ0sDqk4m7mB1oYc1b3nq0n8f1r6Xq2s0A"
    },
    "addCosignature": {
        "tree_size": 1042,
        "cosignature": "\u2014 witness.example.org/w1 Onn8Ae0AAAAAZ3Jq9w1mN5cM0b4tI8y6cQ==",
    },
}

RESPONSE_EXAMPLES: dict[str, Any] = {
    "getDepot": {"code": "D-NORTH", "name": "Northern armoury", "country": "Freedonia"},
    "listDepots": {
        "items": [{"code": "D-NORTH", "name": "Northern armoury", "country": "Freedonia"}],
        "next": "eyJrIjoiRC1OT1JUSCJ9",
    },
    "postMovement": {
        "id": _UUID,
        "kind": "issue",
        "from": "depot:D-NORTH",
        "to": "unit:U-1BN",
        "occurred_at": _NOW,
        "recorded_at": "2026-03-01T09:31:12+00:00",
        "actor": "token:north armourer",
        "document_ref": "ISS-2026-0042",
        "due_back_at": "2026-03-31T18:00:00+00:00",
        "case_ref": None,
        "reason": None,
        "certificate_ref": None,
        "reverses": None,
        "transfer_id": None,
        "note": None,
        "late_entry": False,
        "audit_seq": 1042,
        "lines": [
            {
                "line_no": 1,
                "weapon_id": "9b2f6d0a-1c3e-4a5b-8d7e-6f5a4b3c2d1e",
                "serial": "AK-000123",
                "manufacturer": "IZHMASH",
                "item_type": "RIFLE-AK",
                "quantity": 1,
                "registers": False,
            }
        ],
    },
}

# One problem example per status: what a client sees, and what `type` it can switch on.
PROBLEM_EXAMPLES: dict[str, dict[str, Any]] = {
    "400": {"slug": "400", "title": "Bad Request", "detail": "Invalid JSON body."},
    "401": {
        "slug": "unauthorized",
        "title": "Unauthorized",
        "detail": "the token is unknown or revoked",
    },
    "403": {
        "slug": "forbidden",
        "title": "Forbidden",
        "detail": "role monitor may not POST /api/v1/movements; allowed: admin, clerk",
    },
    "404": {"slug": "not-found", "title": "Not found", "detail": "no depot D-WEST"},
    "409": {
        "slug": "conflict",
        "title": "Conflict with the books",
        "detail": "weapon AK-000123 (IZHMASH) is held by unit:U-1BN, not depot:D-NORTH",
    },
    "413": {
        "slug": "413",
        "title": "Request Entity Too Large",
        "detail": "The data value transmitted exceeds the capacity limit.",
    },
    "415": {
        "slug": "unsupported-media-type",
        "title": "Unsupported media type",
        "detail": "send the body as application/json (got text/plain)",
    },
    "422": {
        "slug": "validation",
        "title": "Invalid input",
        "detail": "invalid fields: occurred_at",
        "errors": {"occurred_at": ["Missing data for required field."]},
    },
}

ERROR_RESPONSES = {
    "400": ("BadRequest", "The body is not well-formed JSON."),
    "401": ("Unauthorized", "No bearer token, or one that is unknown or revoked."),
    "403": ("Forbidden", "The token's role or depots do not allow this."),
    "404": ("NotFound", "Nothing with that id or code, or not visible to this token."),
    "409": ("Conflict", "The books refuse it: not held there, too few rounds, already done."),
    "413": ("ContentTooLarge", "The body exceeds the server's size limit."),
    "415": ("UnsupportedMediaType", "The body is not sent as application/json."),
    "422": ("UnprocessableContent", "Invalid input; `errors` names each field and what is wrong."),
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details. Members other than these may appear (RFC 9457 "
    "extension members); clients must ignore those they do not know.",
    "properties": {
        "type": {
            "type": "string",
            "format": "uri-reference",
            "description": "what kind of problem: switch on this, not on `title`",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "this occurrence, in words a user can act on"},
        "instance": {"type": "string", "format": "uri-reference"},
        "errors": {
            "type": "object",
            "description": "messages per field (nested for lines: lines.3.serial)",
            "additionalProperties": True,
        },
        "request_id": {"type": "string", "description": "quote it when reporting a problem"},
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}

HEADERS: dict[str, Any] = {
    "Location": {
        "description": "the URI of the resource this request created",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "IdempotentReplayed": {
        "description": "`true` when this is the stored response of an earlier request with the "
        "same Idempotency-Key (nothing was done again)",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "ETag": {
        "description": "the representation's entity tag; send it back in If-None-Match",
        "schema": {"type": "string"},
    },
    "WWWAuthenticate": {
        "description": 'RFC 6750 challenge: `Bearer realm="stockpile"`, with '
        '`error="invalid_token"` when the token sent is unknown or revoked',
        "schema": {"type": "string"},
    },
    "AcceptPost": {
        "description": "the media type POST bodies must have",
        "schema": {"type": "string"},
    },
}

PARAMETERS: dict[str, Any] = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Any unique string (a UUID is good). A retry with the same key and body "
        "gets the first response again, marked Idempotent-Replayed, and changes nothing; the "
        "same key with a different body is a 422 problem of type idempotency-key-reused. A "
        "duplicate sent while the first is still in progress waits for it, then replays it. "
        "Keys are per token.",
        # No example: one key shown for every operation would be reused by whoever tries it.
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "an ETag from an earlier response: 304 Not Modified if it still matches",
        "schema": {"type": "string"},
    },
}

SIGNATURE_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "the event id; the same on every retry of this event: deduplicate on it",
        "schema": {"type": "string", "format": "uuid"},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Unix seconds when this attempt was signed; reject ones far from now",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "`v1,` then base64(HMAC-SHA256(secret, webhook-id + '.' + "
        "webhook-timestamp + '.' + body)), the secret being the subscription's `whsec_...` "
        "secret base64-decoded after its prefix (Standard Webhooks)",
        "schema": {"type": "string", "pattern": "^v1,"},
    },
]

_DISCREPANCY_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "kind": {"type": "string"},
        "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
        "status": {"type": "string"},
        "depot": {"type": ["string", "null"]},
        "holder": {"type": ["string", "null"]},
        "subject": {
            "type": "object",
            "description": "the ids it is about: weapon_id, lot_id, quantity, transfer_id, ...",
            "additionalProperties": True,
        },
        "detected_at": {"type": "string", "format": "date-time"},
        "summary": {"type": "string"},
    },
    "required": ["id", "kind", "severity", "status", "detected_at", "summary"],
}
_TRANSFER_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "document_ref": {"type": ["string", "null"]},
        "end_user_ref": {"type": ["string", "null"]},
        "expected_by": {"type": ["string", "null"], "format": "date-time"},
        "dispatched_at": {"type": ["string", "null"], "format": "date-time"},
        "received_at": {"type": ["string", "null"], "format": "date-time"},
        "lines": {"type": "integer", "description": "lines on the manifest"},
        "shortfall": {"type": "integer", "description": "lines that did not arrive"},
        "surplus": {"type": "integer", "description": "lines that arrived unlisted"},
    },
    "required": ["id", "status", "from", "to"],
}
_CHECKPOINT_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "a signed checkpoint, as GET /api/v1/audit/checkpoints lists them, with the "
    "transparency log's signed tree head made with it",
    "properties": {
        "seq": {"type": "integer", "description": "the last record the checkpoint covers"},
        "hash": {"type": "string", "description": "that record's hash, lower-case hex"},
        "at": {"type": "string", "description": "when it was signed; the exact text signed"},
        "key_id": {"type": "string", "description": "first 16 hex of SHA-256(raw public key)"},
        "signature": {"type": "string", "description": "base64 Ed25519 signature"},
        "tree_head": {
            "type": ["string", "null"],
            "description": "the log's signed tree head (a C2SP checkpoint note), if one was made",
        },
    },
    "required": ["seq", "hash", "at", "key_id", "signature"],
}
_UNCOSIGNED_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tree_size": {"type": "integer"},
        "root_hash": {"type": "string"},
        "signed_at": {"type": "string", "format": "date-time"},
        "grace_seconds": {"type": "number", "description": "how long witnesses had to cosign"},
    },
    "required": ["tree_size", "root_hash", "signed_at", "grace_seconds"],
}
_RECOVERED_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "movement": {"type": "string", "format": "uuid", "description": "the recovery"},
        "to": {"type": "string", "description": "the depot it was recovered into, kind:code"},
        "case_ref": {"type": ["string", "null"]},
        "document_ref": {"type": ["string", "null"]},
        "weapons": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        "losses": {
            "type": "array",
            "items": {"type": "string", "format": "uuid"},
            "description": "the open reported_loss discrepancies it moved to investigating",
        },
        "lost_from": {"type": "array", "items": {"type": "string"}, "description": "depots"},
    },
    "required": ["movement", "to", "weapons", "losses", "lost_from"],
}

WEBHOOK_EVENTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "audit.checkpoint": (
        "AuditCheckpointEvent",
        "A signed checkpoint of the audit log's head: keep it, and check later ones extend it.",
        _CHECKPOINT_EVENT,
    ),
    "discrepancy.opened": (
        "DiscrepancyOpenedEvent",
        "Something is unaccounted for: a missing weapon, a shortfall, an overdue return, ...",
        _DISCREPANCY_EVENT,
    ),
    "discrepancy.updated": (
        "DiscrepancyUpdatedEvent",
        "A discrepancy was noted, taken under investigation, or resolved.",
        _DISCREPANCY_EVENT,
    ),
    "transfer.received": (
        "TransferReceivedEvent",
        "A transfer was received; shortfall and surplus count the lines that differ.",
        _TRANSFER_EVENT,
    ),
    "weapon.recovered": (
        "WeaponRecoveredEvent",
        "Weapons with an open reported loss were recovered; the losses are now investigating.",
        _RECOVERED_EVENT,
    ),
    "log.uncosigned": (
        "LogUncosignedEvent",
        "The transparency log's latest signed tree head went its grace period without any "
        "witness's cosignature.",
        _UNCOSIGNED_EVENT,
    ),
}


def install(api: Api) -> None:
    """Serve (and let `flask openapi write` write) the completed document, built once."""
    generate: Callable[[], dict[str, Any]] = api.spec.to_dict
    completed: dict[str, Any] = {}

    def to_dict() -> dict[str, Any]:
        if not completed:
            completed.update(complete(generate()))
        return copy.deepcopy(completed)

    api.spec.to_dict = to_dict


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` as flask-smorest generated it, with everything this module adds."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    # A Function field carries no type of its own.
    if depot := schemas.get("Unit", {}).get("properties", {}).get("depot"):
        depot.setdefault("type", "string")
    components["responses"] = {
        name: _problem_response(status, description)
        for status, (name, description) in ERROR_RESPONSES.items()
    }
    components["responses"]["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"$ref": REF + "headers/WWWAuthenticate"}
    }
    components["responses"]["UnsupportedMediaType"]["headers"] = {
        "Accept-Post": {"$ref": REF + "headers/AcceptPost"}
    }
    components["headers"] = HEADERS
    components["parameters"] = PARAMETERS
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                _complete_operation(path, method, item[method], schemas)
    doc["webhooks"] = _webhooks(schemas)
    return doc


def _problem_response(status: str, description: str) -> dict[str, Any]:
    example = dict(PROBLEM_EXAMPLES[status])
    slug = example.pop("slug")
    body = {
        "type": PROBLEM_TYPE_BASE + slug,
        **example,
        "status": int(status),
        "request_id": "5f0c9a7e2d4b4c1a8e3f6b7a9d0c1e2f",
    }
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF + "schemas/Problem"}, "example": body}},
    }


def _complete_operation(path: str, method: str, op: dict[str, Any], schemas: Any) -> None:
    operation_id = OPERATION_IDS.get((method.upper(), path))
    if operation_id is not None:
        op["operationId"] = operation_id
    op.setdefault("summary", operation_id or f"{method.upper()} {path}")
    op.setdefault("description", op["summary"])
    responses: dict[str, Any] = op["responses"]
    responses.pop("default", None)
    writes = method in ("post", "put", "patch", "delete")
    has_body = "requestBody" in op
    by_id = "{" in path
    errors = {"401", "403"} if op.get("security") else set()
    if by_id or operation_id in NOT_FOUND_BY_QUERY:
        errors.add("404")
    if writes:
        errors.add("409")
    if has_body:
        errors |= {"400", "413", "415"}
    if has_body or writes or op.get("parameters") or "422" in responses:
        errors.add("422")
    for status in sorted(errors):
        responses[status] = {"$ref": REF + "responses/" + ERROR_RESPONSES[status][0]}

    parameters: list[Any] = op.setdefault("parameters", [])
    if writes:
        parameters.append({"$ref": REF + "parameters/IdempotencyKey"})
    if method == "get" and by_id:
        parameters.append({"$ref": REF + "parameters/IfNoneMatch"})
        responses["304"] = {
            "description": "Not Modified: the If-None-Match ETag still matches",
            "headers": {"ETag": {"$ref": REF + "headers/ETag"}},
        }
    if not parameters:
        del op["parameters"]

    for status, response in responses.items():
        if not status.startswith("2"):
            continue
        headers = response.setdefault("headers", {})
        if writes:
            headers["Idempotent-Replayed"] = {"$ref": REF + "headers/IdempotentReplayed"}
        if status == "201":
            headers["Location"] = {"$ref": REF + "headers/Location"}
        if method == "get" and by_id:
            headers["ETag"] = {"$ref": REF + "headers/ETag"}
        if not headers:
            del response["headers"]
        if status == "200" and (alternates := ALTERNATE_FORMATS.get(operation_id or "")):
            response.setdefault("content", {}).update(copy.deepcopy(alternates))
        content = response.get("content", {})
        if operation_id in LINKS and status in ("200", "201"):
            response["links"] = {
                name: {"operationId": target, "parameters": values}
                for name, (target, values) in LINKS[operation_id].items()
            }
        if operation_id in RESPONSE_EXAMPLES and "application/json" in content:
            content["application/json"]["example"] = RESPONSE_EXAMPLES[operation_id]
    if has_body and operation_id in REQUEST_EXAMPLES:
        op["requestBody"]["content"]["application/json"]["example"] = REQUEST_EXAMPLES[operation_id]


def _webhooks(schemas: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 `webhooks`: one POST per event type a subscription may ask for."""
    webhooks: dict[str, Any] = {}
    for event_type in EVENT_TYPES:
        name, description, data = WEBHOOK_EVENTS[event_type]
        schemas[name] = {
            "type": "object",
            "description": description,
            "properties": {
                "type": {"type": "string", "const": event_type},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": data,
            },
            "required": ["type", "timestamp", "data"],
        }
        webhooks[event_type] = {
            "post": {
                "operationId": "on" + "".join(p.title() for p in event_type.split(".")),
                "summary": description,
                "description": "Sent to each subscription that asked for this event type and "
                "whose filters (depots, kinds, severities) it passes. Verify the signature "
                "headers before trusting the body (a Standard Webhooks library does it: see "
                "docs/api.md); deliveries are retried with backoff for over a day until the "
                "receiver answers 2xx, so the same webhook-id may arrive more than once.",
                "parameters": SIGNATURE_HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": REF + "schemas/" + name}}},
                },
                "responses": {
                    "200": {"description": "received; any 2xx will do"},
                    "400": {"description": "refused (bad signature): it is retried later"},
                },
            }
        }
    return webhooks
