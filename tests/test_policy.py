"""The accountability policy, pure: every holder relation × holder relation × holder-moving
action × role, each with the outcome written out below, and the README's table made from it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from inventory.domain.actors import Actor, Role
from inventory.domain.discrepancies import DiscrepancyKind
from inventory.domain.policy import (
    MOVEMENT_ACTIONS,
    Action,
    Answer,
    Outcome,
    decide,
    permissions_table,
)

OWN, OTHER = "D-OWN", "D-OTHER"
# Each relation as a concrete holder, seen from a clerk of D-OWN.
HOLDERS = {
    "own_depot": Answer("depot", OWN),
    "own_unit": Answer("unit", OWN),
    "other_depot": Answer("depot", OTHER),
    "other_unit": Answer("unit", OTHER),
    "party": Answer("party", None),
    "own_lost": Answer("lost", OWN),
    "other_lost": Answer("lost", OTHER),
    "lost": Answer("lost", None),
    "expended": Answer("expended", None),
    "destroyed": Answer("destroyed", None),
    "own_transit": Answer("transit", OWN),
    "other_transit": Answer("transit", OTHER),
}
# What each role gets when the write is done for D-OWN: clerk (of D-OWN), admin, auditor,
# monitor. Y allowed, X allowed but cross-depot, - forbidden. Every cell not listed: forbidden.
EXPECTED = """
receipt     party          own_depot    Y Y - -
issue       own_depot      own_unit     Y Y - -
return      own_unit       own_depot    Y Y - -
return      other_unit     own_depot    X X - -
loss        own_depot      own_lost     Y Y - -
loss        own_unit       own_lost     Y Y - -
loss        own_transit    own_lost     Y Y - -
recovery    own_lost       own_depot    Y Y - -
recovery    other_lost     own_depot    X X - -
recovery    lost           own_depot    Y Y - -
recovery    party          own_depot    Y Y - -
expenditure own_depot      expended     Y Y - -
expenditure own_unit       expended     Y Y - -
destruction own_depot      destroyed    Y Y - -
reversal    own_depot      own_unit     Y Y - -
reversal    own_depot      other_unit   - Y - -
reversal    own_unit       own_depot    Y Y - -
reversal    own_depot      party        Y Y - -
reversal    own_depot      own_lost     Y Y - -
reversal    own_depot      lost         Y Y - -
reversal    own_depot      other_lost   - Y - -
reversal    own_lost       own_depot    Y Y - -
reversal    own_lost       own_unit     Y Y - -
reversal    own_lost       own_transit  Y Y - -
reversal    expended       own_depot    Y Y - -
reversal    expended       own_unit     Y Y - -
reversal    destroyed      own_depot    Y Y - -
dispatch    own_depot      other_depot  Y Y - -
dispatch    own_depot      party        Y Y - -
receive     other_transit  own_depot    Y Y - -
receive     own_transit    party        - Y - Y
cancel      own_transit    own_depot    Y Y - -
"""
ROLE_COLUMNS = (Role.CLERK, Role.ADMIN, Role.AUDITOR, Role.MONITOR)
LETTER = {"Y": Outcome.ALLOWED, "X": Outcome.CROSS_DEPOT, "-": Outcome.FORBIDDEN}


def _expected() -> dict[tuple[str, str, str], dict[Role, Outcome]]:
    table = {}
    for line in EXPECTED.strip().splitlines():
        action, source, destination, *letters = line.split()
        table[(action, source, destination)] = {
            role: LETTER[letter] for role, letter in zip(ROLE_COLUMNS, letters, strict=True)
        }
    return table


EXPECTATIONS = _expected()
ACTORS = {
    Role.CLERK: Actor("clerk", Role.CLERK, frozenset({OWN})),
    Role.ADMIN: Actor("admin", Role.ADMIN),
    Role.AUDITOR: Actor("auditor", Role.AUDITOR),
    Role.MONITOR: Actor("monitor", Role.MONITOR),
}
RESPONSIBLE_TO = {"receipt", "return", "recovery", "receive", "cancel"}


def _mirror(relation: str) -> str:
    """The relation seen from the other depot."""
    if relation.startswith("own_"):
        return "other_" + relation[4:]
    if relation.startswith("other_"):
        return "own_" + relation[6:]
    return relation


def _acting_is_other(action: str, source: str, destination: str) -> bool:
    """Whether the write is done for D-OTHER (the responsible side, or failing that the other)."""
    first, second = (destination, source) if action in RESPONSIBLE_TO else (source, destination)
    if HOLDERS[first].depot is None:
        first = second
    return HOLDERS[first].depot == OTHER


def expected_outcome(action: str, source: str, destination: str, role: Role) -> Outcome:
    if _acting_is_other(action, source, destination):
        if role is Role.CLERK:  # a clerk of D-OWN never acts for D-OTHER
            return Outcome.FORBIDDEN
        source, destination = _mirror(source), _mirror(destination)
    cell = EXPECTATIONS.get((action, source, destination))
    return Outcome.FORBIDDEN if cell is None else cell[role]


CELLS = list(itertools.product(MOVEMENT_ACTIONS, HOLDERS, HOLDERS))


@pytest.mark.parametrize("role", ROLE_COLUMNS, ids=str)
def test_every_cell_of_relation_by_relation_by_action(role: Role) -> None:
    wrong = []
    for action, source, destination in CELLS:
        decision = decide(
            action, ACTORS[role], source=HOLDERS[source], destination=HOLDERS[destination]
        )
        expected = expected_outcome(action, source, destination, role)
        if decision.outcome is not expected:
            wrong.append(f"{action} {source}->{destination}: {decision.outcome}, not {expected}")
    assert not wrong, "\n".join(wrong)
    assert len(CELLS) == len(MOVEMENT_ACTIONS) * 12 * 12


def test_cross_depot_names_the_depot_that_answered_and_what_it_opens() -> None:
    clerk = ACTORS[Role.CLERK]
    returned = decide(
        Action.RETURN, clerk, source=HOLDERS["other_unit"], destination=HOLDERS["own_depot"]
    )
    assert (returned.answering_depot, returned.opens) == (
        OTHER,
        DiscrepancyKind.RETURNED_ELSEWHERE,
    )
    recovered = decide(
        Action.RECOVERY, clerk, source=HOLDERS["other_lost"], destination=HOLDERS["own_depot"]
    )
    assert (recovered.answering_depot, recovered.opens) == (
        OTHER,
        DiscrepancyKind.RECOVERED_ELSEWHERE,
    )
    assert recovered.acting_depot == OWN


def test_a_clerk_of_both_depots_still_opens_a_discrepancy_at_the_one_that_answered() -> None:
    both = Actor("clerk", Role.CLERK, frozenset({OWN, OTHER}))
    decision = decide(
        Action.RETURN, both, source=HOLDERS["other_unit"], destination=HOLDERS["own_depot"]
    )
    assert decision.outcome is Outcome.CROSS_DEPOT and decision.answering_depot == OTHER


# Writes that move no stock: (action, depot of the thing or None) → clerk of D-OWN, admin,
# auditor, monitor.
OTHER_WRITES = """
stocktake.open          own    Y Y - -
stocktake.open          other  - Y - -
stocktake.count         own    Y Y - -
stocktake.count         other  - Y - -
stocktake.close         own    Y Y - -
stocktake.close         other  - Y - -
discrepancy.note        own    Y Y Y -
discrepancy.note        other  - Y Y -
discrepancy.note        none   - Y Y -
discrepancy.investigate own    - Y Y -
discrepancy.resolve     own    - Y Y -
sighting.record         none   - Y - Y
verification.result     none   - Y - Y
subscription.create     none   - Y - Y
subscription.delete     none   - Y - Y
token.create            none   - Y - -
token.revoke            none   - Y - -
log.witness.register    none   - Y - -
log.cosignature         none   - Y - Y
"""


@pytest.mark.parametrize("line", OTHER_WRITES.strip().splitlines())
def test_writes_that_move_no_stock(line: str) -> None:
    action, where, *letters = line.split()
    depot = {"own": OWN, "other": OTHER, "none": None}[where]
    for role, letter in zip(ROLE_COLUMNS, letters, strict=True):
        decision = decide(Action(action), ACTORS[role], depot=depot)
        assert decision.outcome is LETTER[letter], (role, decision.reason)


def test_every_action_is_covered_by_a_test_table() -> None:
    tested = {line.split()[0] for line in OTHER_WRITES.strip().splitlines()}
    tested |= {str(action) for action in MOVEMENT_ACTIONS}
    assert tested == {str(action) for action in Action}


def test_the_readme_permissions_table_is_the_policy() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert permissions_table() in readme, "paste inventory.domain.policy.permissions_table()"
