"""Transfer rules in plain Python: matching what a receiving clerk or an end-use monitor lists
against what the books say should be there (the manifest, what was delivered), and the variance
between what was expected and what arrived."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


class Marked(Protocol):
    """A weapon as the books know it (inventory.services.lines.WeaponRow)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def serial(self) -> str: ...
    @property
    def manufacturer(self) -> str: ...
    @property
    def item_type(self) -> str: ...


class WeaponMention(Protocol):
    """A weapon as a request names it (inventory.services.lines.WeaponRef)."""

    @property
    def weapon_id(self) -> uuid.UUID | None: ...
    @property
    def serial(self) -> str | None: ...
    @property
    def manufacturer(self) -> str | None: ...
    @property
    def item_type(self) -> str | None: ...


@dataclass
class WeaponMatch:
    """Which listed lines name a weapon among the candidates, which name none of them, and the
    lines that cannot be used (ambiguous, or the same weapon twice)."""

    matched: dict[int, Marked] = field(default_factory=dict)
    unmatched: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def match_weapons(
    candidates: Iterable[Marked], mentions: Iterable[tuple[int, WeaponMention]]
) -> WeaponMatch:
    """Match each mention (by weapon id, or by serial narrowed by manufacturer and item type)
    to one of `candidates`. A serial fitting two candidates is an error naming both."""
    by_id: dict[uuid.UUID, Marked] = {}
    by_serial: dict[str, list[Marked]] = defaultdict(list)
    for row in candidates:
        by_id[row.id] = row
        by_serial[row.serial].append(row)
    result = WeaponMatch()
    first_line: dict[uuid.UUID, int] = {}
    for line_no, mention in mentions:
        if mention.weapon_id is not None:
            fits = [by_id[mention.weapon_id]] if mention.weapon_id in by_id else []
        else:
            fits = [
                row
                for row in by_serial.get(mention.serial or "", [])
                if mention.manufacturer in (None, row.manufacturer)
                and mention.item_type in (None, row.item_type)
            ]
        if not fits:
            result.unmatched.append(line_no)
        elif len(fits) > 1:
            makers = ", ".join(sorted(f"{row.item_type} {row.manufacturer}" for row in fits))
            result.errors[line_no] = (
                f"serial {mention.serial} fits more than one weapon ({makers}): "
                "give manufacturer and item_type"
            )
        elif fits[0].id in first_line:
            result.errors[line_no] = (
                f"serial {fits[0].serial} ({fits[0].manufacturer}) is also on line "
                f"{first_line[fits[0].id]}"
            )
        else:
            first_line[fits[0].id] = line_no
            result.matched[line_no] = fits[0]
    return result


@dataclass(frozen=True)
class LotVariance:
    """Rounds of one lot: what moves on to the destination, what is short, what is over."""

    received: int
    short: int
    over: int


def lot_variance(expected: int, arrived: int) -> LotVariance:
    """Only what was expected can be taken in; the rest of either side is a variance."""
    received = min(expected, arrived)
    return LotVariance(received, expected - received, arrived - received)
