"""What "unaccounted" means: the kinds of discrepancy, their default severity, and the lifecycle
open → investigating → resolved."""

from __future__ import annotations

from enum import StrEnum


class DiscrepancyKind(StrEnum):
    TRANSIT_OVERDUE = "transit_overdue"
    RECEIPT_SHORTFALL = "receipt_shortfall"
    RECEIPT_SURPLUS = "receipt_surplus"
    RETURN_OVERDUE = "return_overdue"
    COUNT_MISSING = "count_missing"
    COUNT_UNEXPECTED = "count_unexpected"
    COUNT_VARIANCE = "count_variance"
    VERIFICATION_OVERDUE = "verification_overdue"
    REPORTED_LOSS = "reported_loss"
    SIGHTING_OUTSIDE_CUSTODY = "sighting_outside_custody"
    UNKNOWN_SERIAL_SIGHTED = "unknown_serial_sighted"
    END_USE_MISSING = "end_use_missing"
    END_USE_VERIFICATION_OVERDUE = "end_use_verification_overdue"
    LATE_ENTRY = "late_entry"
    # Stock taken out of a depot's books by another depot (the accountability policy).
    RETURNED_ELSEWHERE = "returned_elsewhere"
    RECOVERED_ELSEWHERE = "recovered_elsewhere"


DEFAULT_SEVERITY: dict[DiscrepancyKind, str] = {
    DiscrepancyKind.TRANSIT_OVERDUE: "high",
    DiscrepancyKind.RECEIPT_SHORTFALL: "critical",
    DiscrepancyKind.RECEIPT_SURPLUS: "high",
    DiscrepancyKind.RETURN_OVERDUE: "medium",
    DiscrepancyKind.COUNT_MISSING: "critical",
    DiscrepancyKind.COUNT_UNEXPECTED: "high",
    DiscrepancyKind.COUNT_VARIANCE: "high",  # "medium" when the count is over the books
    DiscrepancyKind.VERIFICATION_OVERDUE: "medium",
    DiscrepancyKind.REPORTED_LOSS: "critical",
    DiscrepancyKind.SIGHTING_OUTSIDE_CUSTODY: "critical",
    DiscrepancyKind.UNKNOWN_SERIAL_SIGHTED: "low",
    DiscrepancyKind.END_USE_MISSING: "critical",
    DiscrepancyKind.END_USE_VERIFICATION_OVERDUE: "high",
    DiscrepancyKind.LATE_ENTRY: "low",
    DiscrepancyKind.RETURNED_ELSEWHERE: "high",
    DiscrepancyKind.RECOVERED_ELSEWHERE: "high",
}

# Kinds that count a weapon or rounds as unaccounted for in the accountability report.
UNACCOUNTED_KINDS = frozenset(
    {
        DiscrepancyKind.RECEIPT_SHORTFALL,
        DiscrepancyKind.TRANSIT_OVERDUE,
        DiscrepancyKind.RETURN_OVERDUE,
        DiscrepancyKind.COUNT_MISSING,
        DiscrepancyKind.COUNT_VARIANCE,
        DiscrepancyKind.SIGHTING_OUTSIDE_CUSTODY,
        DiscrepancyKind.END_USE_MISSING,
    }
)

# action -> (statuses it may follow, status it leads to; None keeps the status)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "note": (frozenset({"open", "investigating", "resolved"}), None),
    "investigate": (frozenset({"open"}), "investigating"),
    "resolve": (frozenset({"open", "investigating"}), "resolved"),
}


def status_after(actions: list[str]) -> str | None:
    """The status a discrepancy's events lead to, in order ("opened" first), or None if they
    could not have happened (an action from a status it may not follow, or no "opened")."""
    if not actions or actions[0] != "opened":
        return None
    status = "open"
    for action in actions[1:]:
        if action not in TRANSITIONS or status not in TRANSITIONS[action][0]:
            return None
        status = TRANSITIONS[action][1] or status
    return status
