"""Marshmallow fields shared by the ledger's schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

from ..domain.movements import has_control_characters, normalise_serial


class Marking(fields.String):
    """A serial, lot number or maker as marked on the item. Normalised (NFKC, upper case,
    whitespace trimmed and collapsed) so the same marking always matches; control and
    invisible format characters are refused rather than silently dropped."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault(
            "description", "as marked; normalised to NFKC upper case with single spaces"
        )
        kwargs["metadata"].setdefault("minLength", 1)  # blank is refused: the schema says so
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_control_characters(text):
            raise ValidationError("contains control or invisible characters")
        normalised = normalise_serial(text)
        if not normalised:
            raise ValidationError("must not be blank")
        if len(normalised) > 100:
            raise ValidationError("longer than 100 characters")
        return normalised


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


class Timestamp(fields.AwareDateTime):
    """An ISO 8601 date-time with its offset, between the years 1900 and 9999 once the offset is
    applied: nothing the books record is older, and later ones cannot be computed with."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})
        description = kwargs["metadata"].get("description")
        limits = "with an offset; years 1900 to 9999 in UTC"
        kwargs["metadata"]["description"] = f"{description} ({limits})" if description else limits
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and len(value) > 64:
            raise ValidationError("not a date-time: longer than 64 characters")
        when: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            in_utc = when.astimezone(UTC)
        except OverflowError:
            in_utc = None
        if in_utc is None or not EARLIEST <= in_utc <= LATEST:
            raise ValidationError("must be between 1900-01-01 and 9999-12-31 in UTC")
        return when
