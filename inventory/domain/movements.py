"""Posting rules for the custody ledger: which holders each kind of movement may move stock
between, what each kind requires, and how serials are normalised. Who may post each is the
accountability policy's (inventory.domain.policy).
Pure Python: the service layer asks, this module answers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Kind(StrEnum):
    RECEIPT = "receipt"
    ISSUE = "issue"
    RETURN = "return"
    LOSS = "loss"
    RECOVERY = "recovery"
    EXPENDITURE = "expenditure"
    DESTRUCTION = "destruction"
    REVERSAL = "reversal"
    DISPATCH = "dispatch"
    RECEIVE = "receive"
    CANCEL = "cancel"


# Custody holders: stock there is on our books and can be lost from there.
CUSTODY = frozenset({"depot", "unit", "transit"})


@dataclass(frozen=True)
class Rule:
    sources: frozenset[str]
    destinations: frozenset[str]
    requires: tuple[str, ...] = ()
    registers: bool = False  # lines may register weapons and lots not yet on the books
    ammunition_only: bool = False


RULES: dict[Kind, Rule] = {
    Kind.RECEIPT: Rule(frozenset({"party"}), frozenset({"depot"}), registers=True),
    Kind.ISSUE: Rule(frozenset({"depot"}), frozenset({"unit"}), ("due_back_at",)),
    Kind.RETURN: Rule(frozenset({"unit"}), frozenset({"depot"})),
    Kind.LOSS: Rule(CUSTODY, frozenset({"lost"}), ("case_ref",)),
    Kind.RECOVERY: Rule(frozenset({"lost", "party"}), frozenset({"depot"}), registers=True),
    Kind.EXPENDITURE: Rule(
        frozenset({"unit", "depot"}), frozenset({"expended"}), ("reason",), ammunition_only=True
    ),
    Kind.DESTRUCTION: Rule(frozenset({"depot"}), frozenset({"destroyed"}), ("certificate_ref",)),
}
# Kinds whose destination is a system account: the client may leave `to` out.
IMPLIED_DESTINATION = {
    Kind.LOSS: "lost",
    Kind.EXPENDITURE: "expended",
    Kind.DESTRUCTION: "destroyed",
}
# Posted through their own endpoints (transfers), never directly.
TRANSFER_KINDS = frozenset({Kind.DISPATCH, Kind.RECEIVE, Kind.CANCEL})

STATUS_BY_HOLDER_KIND = {
    "depot": "in_store",
    "unit": "issued",
    "transit": "in_transit",
    "lost": "lost",
    "destroyed": "destroyed",
    "party": "transferred_out",
}

# Clocks in the field drift; a movement a couple of minutes "in the future" is a skewed clock.
FUTURE_TOLERANCE = timedelta(minutes=2)

_WHITESPACE = re.compile(r"\s+")


def normalise_serial(raw: str) -> str:
    """The serial as it is matched and stored: Unicode NFKC (full-width and look-alike forms
    folded), upper case, surrounding whitespace removed and inner runs collapsed to one space.
    Control characters are refused by the caller's validation before this."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", raw)).strip().upper()


def has_control_characters(raw: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in " \t" for ch in raw)


def is_late(occurred_at: datetime, recorded_at: datetime, window: timedelta) -> bool:
    return recorded_at - occurred_at > window


def is_future(occurred_at: datetime, now: datetime) -> bool:
    return occurred_at > now + FUTURE_TOLERANCE


def status_of(holder_kind: str) -> str:
    return STATUS_BY_HOLDER_KIND.get(holder_kind, holder_kind)
