"""Errors the use cases raise. Each is a value a user can act on: it names the field, the serial,
the depot, and what the books say. The API turns them into RFC 9457 problems."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class NotFound(ServiceError):
    status, title, type_slug = 404, "Not found", "not-found"


class Forbidden(ServiceError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class Conflict(ServiceError):
    """The request contradicts the books: not held there, insufficient quantity, duplicate, ..."""

    status, title, type_slug = 409, "Conflict with the books", "conflict"


class IdempotencyKeyReused(ServiceError):
    """An Idempotency-Key sent again with a different request: the client's mistake, not a
    refusal by the books, so it has its own problem type (as the IETF idempotency-key draft)."""

    status, title, type_slug = 422, "Idempotency-Key reused", "idempotency-key-reused"


class Invalid(ServiceError):
    status, title, type_slug = 422, "Invalid input", "validation"

    def __init__(
        self, detail: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(detail, errors=errors or ({field: [detail]} if field else None))
