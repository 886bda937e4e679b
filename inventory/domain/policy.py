"""The accountability policy: who may do each write, and what a write that takes stock out of
another depot's books must carry. One table; services ask `decide` and nothing else decides scope.

Every holder answers to one depot: a depot to itself, a unit to its home depot, a transit account to
the dispatching depot, `lost` to the depot the item was lost from; parties, `expended` and
`destroyed` answer to none. A write is done *for* one depot (its acting depot): the depot that
answers for the side the posting rules make responsible (a return's receiving depot, an issue's
issuing depot, a stocktake's depot...). A clerk may act only for their own depots; admins, auditors
and monitors are not depot-scoped, the table's roles say what they may do. The holders a write
touches are then related to the acting depot, and the table answers for each (action, from, to):

- ALLOWED: the write goes through.
- CROSS_DEPOT: it goes through (stock is recorded where it physically arrives) but needs a
  `document_ref`, and opens a discrepancy at the depot that answered for the stock, which alerts
  monitors and is visible to that depot's clerks.
- FORBIDDEN: anything the table does not list.

Pure Python: no Flask, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .actors import Actor, Role
from .discrepancies import DiscrepancyKind


class Action(StrEnum):
    # Movements posted to /movements.
    RECEIPT = "receipt"
    ISSUE = "issue"
    RETURN = "return"
    LOSS = "loss"
    RECOVERY = "recovery"
    EXPENDITURE = "expenditure"
    DESTRUCTION = "destruction"
    REVERSAL = "reversal"
    # Transfer steps.
    DISPATCH = "dispatch"
    RECEIVE = "receive"
    CANCEL = "cancel"
    # Everything else that writes.
    STOCKTAKE_OPEN = "stocktake.open"
    STOCKTAKE_COUNT = "stocktake.count"
    STOCKTAKE_CLOSE = "stocktake.close"
    DISCREPANCY_NOTE = "discrepancy.note"
    DISCREPANCY_INVESTIGATE = "discrepancy.investigate"
    DISCREPANCY_RESOLVE = "discrepancy.resolve"
    SIGHTING = "sighting.record"
    VERIFICATION_RESULT = "verification.result"
    SUBSCRIPTION_CREATE = "subscription.create"
    SUBSCRIPTION_DELETE = "subscription.delete"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    WITNESS_REGISTER = "log.witness.register"
    COSIGNATURE = "log.cosignature"


MOVEMENT_ACTIONS = (
    Action.RECEIPT,
    Action.ISSUE,
    Action.RETURN,
    Action.LOSS,
    Action.RECOVERY,
    Action.EXPENDITURE,
    Action.DESTRUCTION,
    Action.REVERSAL,
    Action.DISPATCH,
    Action.RECEIVE,
    Action.CANCEL,
)


class Relation(StrEnum):
    """How a holder stands to the depot a write is done for."""

    OWN_DEPOT = "own depot"
    OWN_UNIT = "own depot's unit"
    OTHER_DEPOT = "another depot"
    OTHER_UNIT = "another depot's unit"
    PARTY = "party"
    OWN_LOST = "lost from own depot"
    OTHER_LOST = "lost from another depot"
    LOST = "lost, never on the books"  # a recovered item no depot ever held
    EXPENDED = "expended"
    DESTROYED = "destroyed"
    OWN_TRANSIT = "own transit"
    OTHER_TRANSIT = "another's transit"


class Outcome(StrEnum):
    ALLOWED = "allowed"
    CROSS_DEPOT = "cross_depot"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class Answer:
    """A holder as the policy sees it: its kind and the depot that answers for it (None: none)."""

    kind: str
    depot: str | None


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    outcome: Outcome = Outcome.ALLOWED
    opens: DiscrepancyKind | None = None  # CROSS_DEPOT: what opens at the answering depot
    why: str = ""


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    acting_depot: str | None = None
    # CROSS_DEPOT: the depot whose books the stock leaves, and the discrepancy it gets.
    answering_depot: str | None = None
    opens: DiscrepancyKind | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.FORBIDDEN


ADMIN, CLERK, AUDITOR, MONITOR = Role.ADMIN, Role.CLERK, Role.AUDITOR, Role.MONITOR
_DEPOT_STAFF = frozenset({ADMIN, CLERK})
A, R = Action, Relation

# (action, from, to) for holder-moving writes, (action, None, None) for the rest.
TABLE: dict[tuple[Action, Relation | None, Relation | None], Rule] = {
    # Custody inside one depot's books: its clerks and admins.
    (A.RECEIPT, R.PARTY, R.OWN_DEPOT): Rule(_DEPOT_STAFF),
    (A.ISSUE, R.OWN_DEPOT, R.OWN_UNIT): Rule(_DEPOT_STAFF),
    (A.RETURN, R.OWN_UNIT, R.OWN_DEPOT): Rule(_DEPOT_STAFF),
    (A.LOSS, R.OWN_DEPOT, R.OWN_LOST): Rule(_DEPOT_STAFF),
    (A.LOSS, R.OWN_UNIT, R.OWN_LOST): Rule(_DEPOT_STAFF),
    (A.LOSS, R.OWN_TRANSIT, R.OWN_LOST): Rule(
        _DEPOT_STAFF, why="stock in transit is the dispatching depot's until received"
    ),
    (A.RECOVERY, R.OWN_LOST, R.OWN_DEPOT): Rule(_DEPOT_STAFF),
    (A.RECOVERY, R.LOST, R.OWN_DEPOT): Rule(_DEPOT_STAFF, why="no depot ever answered for it"),
    (A.RECOVERY, R.PARTY, R.OWN_DEPOT): Rule(_DEPOT_STAFF),
    (A.EXPENDITURE, R.OWN_DEPOT, R.EXPENDED): Rule(_DEPOT_STAFF),
    (A.EXPENDITURE, R.OWN_UNIT, R.EXPENDED): Rule(_DEPOT_STAFF),
    (A.DESTRUCTION, R.OWN_DEPOT, R.DESTROYED): Rule(_DEPOT_STAFF),
    # Stock arrives where it physically arrives, but never silently (see the module docstring).
    (A.RETURN, R.OTHER_UNIT, R.OWN_DEPOT): Rule(
        _DEPOT_STAFF,
        Outcome.CROSS_DEPOT,
        DiscrepancyKind.RETURNED_ELSEWHERE,
        "a unit handed in at the nearest depot",
    ),
    (A.RECOVERY, R.OTHER_LOST, R.OWN_DEPOT): Rule(
        _DEPOT_STAFF,
        Outcome.CROSS_DEPOT,
        DiscrepancyKind.RECOVERED_ELSEWHERE,
        "police bring a recovered weapon to the closest armoury",
    ),
    # A reversal is judged as the movement it mirrors would be: the mirrored return of a
    # unit's hand-in puts the stock back on the unit's depot's books, which the open
    # returned_elsewhere already tells them about; only an admin may do that.
    (A.REVERSAL, R.OWN_DEPOT, R.OWN_UNIT): Rule(_DEPOT_STAFF),  # undoes a return
    (A.REVERSAL, R.OWN_DEPOT, R.OTHER_UNIT): Rule(
        frozenset({ADMIN}), why="undoes a hand-in at another depot"
    ),
    (A.REVERSAL, R.OWN_UNIT, R.OWN_DEPOT): Rule(_DEPOT_STAFF),  # undoes an issue
    (A.REVERSAL, R.OWN_DEPOT, R.PARTY): Rule(_DEPOT_STAFF),  # undoes a receipt or recovery
    (A.REVERSAL, R.OWN_DEPOT, R.OWN_LOST): Rule(_DEPOT_STAFF),  # undoes a recovery
    (A.REVERSAL, R.OWN_DEPOT, R.LOST): Rule(_DEPOT_STAFF),
    (A.REVERSAL, R.OWN_DEPOT, R.OTHER_LOST): Rule(
        frozenset({ADMIN}), why="undoes a recovery of another depot's loss"
    ),
    (A.REVERSAL, R.OWN_LOST, R.OWN_DEPOT): Rule(_DEPOT_STAFF),  # undoes a loss
    (A.REVERSAL, R.OWN_LOST, R.OWN_UNIT): Rule(_DEPOT_STAFF),
    (A.REVERSAL, R.OWN_LOST, R.OWN_TRANSIT): Rule(_DEPOT_STAFF),
    (A.REVERSAL, R.EXPENDED, R.OWN_DEPOT): Rule(_DEPOT_STAFF),  # undoes an expenditure
    (A.REVERSAL, R.EXPENDED, R.OWN_UNIT): Rule(_DEPOT_STAFF),
    (A.REVERSAL, R.DESTROYED, R.OWN_DEPOT): Rule(_DEPOT_STAFF),  # undoes a destruction
    # Transfers: what moves between depots moves through a transit account, in the open.
    (A.DISPATCH, R.OWN_DEPOT, R.OTHER_DEPOT): Rule(_DEPOT_STAFF),
    (A.DISPATCH, R.OWN_DEPOT, R.PARTY): Rule(_DEPOT_STAFF, why="an export or donation"),
    (A.RECEIVE, R.OTHER_TRANSIT, R.OWN_DEPOT): Rule(_DEPOT_STAFF),
    (A.RECEIVE, R.OWN_TRANSIT, R.PARTY): Rule(
        frozenset({ADMIN, MONITOR}), why="delivery abroad is confirmed by end-use monitoring"
    ),
    (A.CANCEL, R.OWN_TRANSIT, R.OWN_DEPOT): Rule(_DEPOT_STAFF),
    # Writes that move no stock; for depot-scoped ones the acting depot is the thing's depot.
    (A.STOCKTAKE_OPEN, None, None): Rule(_DEPOT_STAFF),
    (A.STOCKTAKE_COUNT, None, None): Rule(_DEPOT_STAFF),
    (A.STOCKTAKE_CLOSE, None, None): Rule(_DEPOT_STAFF),
    (A.DISCREPANCY_NOTE, None, None): Rule(frozenset({ADMIN, AUDITOR, CLERK})),
    (A.DISCREPANCY_INVESTIGATE, None, None): Rule(frozenset({ADMIN, AUDITOR})),
    (A.DISCREPANCY_RESOLVE, None, None): Rule(frozenset({ADMIN, AUDITOR})),
    (A.SIGHTING, None, None): Rule(frozenset({ADMIN, MONITOR})),
    (A.VERIFICATION_RESULT, None, None): Rule(frozenset({ADMIN, MONITOR})),
    (A.SUBSCRIPTION_CREATE, None, None): Rule(frozenset({ADMIN, MONITOR})),
    (A.SUBSCRIPTION_DELETE, None, None): Rule(
        frozenset({ADMIN, MONITOR}), why="a monitor only its own subscriptions"
    ),
    (A.TOKEN_CREATE, None, None): Rule(frozenset({ADMIN})),
    (A.TOKEN_REVOKE, None, None): Rule(frozenset({ADMIN})),
    # The transparency log: admins register witnesses' keys; monitors (as witnesses) cosign.
    (A.WITNESS_REGISTER, None, None): Rule(frozenset({ADMIN})),
    (A.COSIGNATURE, None, None): Rule(frozenset({ADMIN, MONITOR})),
}

# Which side a holder-moving action is done for; the other side is related to that side's depot.
RESPONSIBLE_SIDE: dict[Action, str] = {
    A.RECEIPT: "to",
    A.ISSUE: "from",
    A.RETURN: "to",
    A.LOSS: "from",
    A.RECOVERY: "to",
    A.EXPENDITURE: "from",
    A.DESTRUCTION: "from",
    A.REVERSAL: "from",  # a reversal gives back what its acting depot took: judged from its side
    A.DISPATCH: "from",
    A.RECEIVE: "to",
    A.CANCEL: "to",
}


def relation(holder: Answer, acting_depot: str | None) -> Relation:
    """How `holder` stands to `acting_depot`."""
    if holder.kind in ("party", "expended", "destroyed"):
        return Relation(holder.kind)
    own = holder.depot is not None and holder.depot == acting_depot
    if holder.kind == "lost":
        if holder.depot is None:
            return Relation.LOST
        return Relation.OWN_LOST if own else Relation.OTHER_LOST
    names = {"depot": ("OWN_DEPOT", "OTHER_DEPOT"), "unit": ("OWN_UNIT", "OTHER_UNIT")}
    own_name, other_name = names.get(holder.kind, ("OWN_TRANSIT", "OTHER_TRANSIT"))
    return Relation[own_name if own else other_name]


def acting_depot_of(action: Action, source: Answer, destination: Answer) -> str | None:
    """The depot a holder-moving write is done for: the responsible side's, or, where that side
    answers to none (a delivery at a party), the other side's."""
    first, second = (
        (destination, source) if RESPONSIBLE_SIDE[action] == "to" else (source, destination)
    )
    return first.depot if first.depot is not None else second.depot


def decide(
    action: Action,
    actor: Actor,
    *,
    source: Answer | None = None,
    destination: Answer | None = None,
    depot: str | None = None,
) -> Decision:
    """May `actor` do `action`? For holder-moving actions give `source` and `destination`; for
    depot-scoped ones (stocktakes, discrepancy events) the `depot` the thing belongs to."""
    key: tuple[Action, Relation | None, Relation | None]
    if source is not None and destination is not None:
        depot = acting_depot_of(action, source, destination)
        key = (action, relation(source, depot), relation(destination, depot))
        what = f"a {action} from {key[1]} to {key[2]}"
    else:
        key = (action, None, None)
        what = f"{action}"
    rule = TABLE.get(key)
    if rule is None:
        return Decision(Outcome.FORBIDDEN, f"nobody may post {what}", depot)
    if actor.role not in rule.roles:
        roles = " or ".join(sorted(rule.roles))
        return Decision(
            Outcome.FORBIDDEN, f"role {actor.role} may not {action}; only {roles}", depot
        )
    if actor.role is Role.CLERK and depot_scoped(action) and depot not in actor.depots:
        mine = ", ".join(sorted(actor.depots)) or "none"
        return Decision(
            Outcome.FORBIDDEN,
            f"{what} is done for depot {depot or '(none)'}, which is not one of your depots "
            f"({mine})",
            depot,
        )
    if rule.outcome is Outcome.CROSS_DEPOT:
        assert source is not None and destination is not None
        taken_from = source if RESPONSIBLE_SIDE[action] == "to" else destination
        return Decision(
            Outcome.CROSS_DEPOT,
            f"{what}: {rule.why}; it needs a document_ref and opens {rule.opens} "
            f"at depot {taken_from.depot}",
            depot,
            answering_depot=taken_from.depot,
            opens=rule.opens,
        )
    return Decision(Outcome.ALLOWED, rule.why or what, depot)


def may_read(actor: Actor, depot: str | None) -> bool:
    """Reads: clerks see only their depots (and those depots' units); every other role reads all."""
    return actor.role is not Role.CLERK or (depot is not None and depot in actor.depots)


def readable_depots(actor: Actor) -> frozenset[str] | None:
    """The depots whose books `actor` may read; None means every depot."""
    return actor.depots if actor.role is Role.CLERK else None


def depot_scoped(action: Action) -> bool:
    """Whether a clerk may do `action` only for their own depots (every clerk action is)."""
    return action not in _UNSCOPED


_UNSCOPED = frozenset(
    {
        A.SIGHTING,
        A.VERIFICATION_RESULT,
        A.SUBSCRIPTION_CREATE,
        A.SUBSCRIPTION_DELETE,
        A.TOKEN_CREATE,
        A.TOKEN_REVOKE,
        A.WITNESS_REGISTER,
        A.COSIGNATURE,
    }
)


def roles_for(action: Action) -> dict[Role, str]:
    """What each role may do of `action`, in words, for the README's permissions table."""
    rules = [rule for (act, _, _), rule in TABLE.items() if act is action]
    answer: dict[Role, str] = {}
    for role in Role:
        mine = [rule for rule in rules if role in rule.roles]
        if not mine:
            answer[role] = "—"
        elif role is Role.CLERK:
            cross = any(rule.outcome is Outcome.CROSS_DEPOT for rule in mine)
            answer[role] = "own depots" + (" (+ cross-depot)" if cross else "")
        else:
            cross = any(rule.outcome is Outcome.CROSS_DEPOT for rule in mine)
            answer[role] = "yes" + (" (+ cross-depot)" if cross else "")
    return answer


def permissions_table() -> str:
    """The README's role × action table, in Markdown, made from TABLE."""
    roles = list(Role)
    lines = [
        "| action | " + " | ".join(str(r) for r in roles) + " |",
        "|---" * (len(roles) + 1) + "|",
    ]
    for action in Action:
        cells = roles_for(action)
        lines.append(f"| {action} | " + " | ".join(cells[r] for r in roles) + " |")
    return "\n".join(lines)
