"""Marshmallow fields shared by the ledger's schemas."""

from __future__ import annotations

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
