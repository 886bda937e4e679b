"""Model-based test of the custody ledger: Hypothesis drives random receipts, issues, returns,
losses, recoveries, expenditures, reversals and idempotent retries through the API; an in-memory
model of who holds what predicts every reply (201, 409 or 422), and after every step the books
must equal the model, conserve every lot and hold every weapon in exactly one place. At the end
the projection must agree with the ledger and the audit chain must verify.

`make test` runs a few short sequences; `INVENTORY_SOAK=1` (or `make soak`) runs many long ones.

Extending it: transfers (dispatch, receive with a shortfall, cancel) and stocktakes add rules to
`CustodyMachine` that post through their endpoints and move the model with `Books.move`, using
the transfer's own `transit:<id>` holder as the destination of a dispatch; the invariants need no
change.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from inventory.db.models import Holder, ItemType, Lot, LotHolding, Weapon, WeaponHolding
from inventory.services import audit_log, projection

from .conftest import Api, unique
from .ledger_helpers import ago

SOAK = os.environ.get("INVENTORY_SOAK") == "1"
SETTINGS = settings(
    max_examples=150 if SOAK else 5,
    stateful_step_count=60 if SOAK else 25,
    deadline=None,
    database=None,  # failures print their reproduction blob; nothing is written into the tree
    print_blob=True,
)
LOST, EXPENDED = "lost:LOST", "expended:EXPENDED"
# Where each kind may take stock from and to, in the world the machine builds (see __init__).
ROUTES = {
    "issue": (["depot_a", "depot_b"], ["unit_a", "unit_b"]),
    "return": (["unit_a", "unit_b"], ["depot_a", "depot_b"]),
    "loss": (["depot_a", "depot_b", "unit_a", "unit_b"], ["lost"]),
    "recovery": (["lost", "party"], ["depot_a", "depot_b"]),
    "expenditure": (["depot_a", "depot_b", "unit_a", "unit_b"], ["expended"]),
}


@dataclass
class Posted:
    """A movement the books accepted, as the model needs it to predict its reversal."""

    id: str
    kind: str
    source: str
    destination: str
    serials: list[str]
    lots: dict[str, int]
    reversed: bool = False


@dataclass
class Books:
    """What the ledger should say: each weapon's holder and each lot's rounds per holder."""

    where: dict[str, str] = field(default_factory=dict)
    rounds: Counter[tuple[str, str]] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    posted: list[Posted] = field(default_factory=list)

    def can_move(self, source: str, serials: list[str], lots: dict[str, int]) -> bool:
        return all(self.where[s] == source for s in serials) and all(
            self.rounds[(lot, source)] >= q for lot, q in lots.items()
        )

    def move(self, source: str, destination: str, serials: list[str], lots: dict[str, int]) -> None:
        for serial in serials:
            self.where[serial] = destination
        for lot, quantity in lots.items():
            self.rounds[(lot, source)] -= quantity
            self.rounds[(lot, destination)] += quantity

    def balances(self) -> dict[tuple[str, str], int]:
        return {key: q for key, q in self.rounds.items() if q}


@dataclass
class Keyed:
    """A request sent with an Idempotency-Key that succeeded: its replay must be identical."""

    key: str
    body: dict[str, Any]
    status: int
    reply: Any


class CustodyMachine(RuleBasedStateMachine):
    app: ClassVar[Flask]
    token: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.api = Api(self.app.test_client(), self.token)
        self.books = Books()
        self.keyed: list[Keyed] = []
        self.requests = 0
        # Names follow creation order, so a replayed example draws the same things (Hypothesis
        # needs that); the prefix keeps them apart from every other test's.
        self.prefix, self.made = unique("M"), 0
        codes = {name: unique(name[:1].upper()) for name in ("depot_a", "depot_b")}
        for code in codes.values():
            self._setup("/api/v1/depots", {"code": code, "name": code})
        for unit, depot in (("unit_a", "depot_a"), ("unit_b", "depot_b")):
            codes[unit] = unique("U")
            self._setup("/api/v1/units", {"code": codes[unit], "name": unit, "depot": codes[depot]})
        codes["party"] = unique("SUP")
        self._setup(
            "/api/v1/parties",
            {"code": codes["party"], "name": "Arsenal", "country": "XX", "kind": "supplier"},
        )
        self.rifle, self.ammo, self.maker = unique("RIFLE"), unique("AMMO"), unique("MAKER")
        self._setup(
            "/api/v1/item-types", {"code": self.rifle, "category": "weapon", "name": "rifle"}
        )
        self._setup(
            "/api/v1/item-types", {"code": self.ammo, "category": "ammunition", "name": "ball"}
        )
        self.ref = {
            "depot_a": f"depot:{codes['depot_a']}",
            "depot_b": f"depot:{codes['depot_b']}",
            "unit_a": f"unit:{codes['unit_a']}",
            "unit_b": f"unit:{codes['unit_b']}",
            "party": f"party:{codes['party']}",
            "lost": LOST,
            "expended": EXPENDED,
        }

    def _new(self, what: str) -> str:
        self.made += 1
        return f"{self.prefix}-{what}{self.made:05d}"

    def _setup(self, path: str, body: dict[str, Any]) -> None:
        response = self.api.post(path, json=body)
        assert response.status_code == 201, response.get_json()

    def _post(self, body: dict[str, Any], key: str | None = None) -> Any:
        self.requests += 1
        headers = {"Idempotency-Key": key} if key else {}
        return self.api.post("/api/v1/movements", json=body, headers=headers)

    def _post_expecting(self, data: st.DataObject, body: dict[str, Any], expected: int) -> Any:
        """Post (sometimes with an Idempotency-Key) and check the status the model predicted."""
        key = unique("KEY") if data.draw(st.booleans(), label="keyed") else None
        response = self._post(body, key)
        reply = response.get_json()
        assert response.status_code == expected, (body, reply)
        if expected >= 400:
            assert response.content_type == "application/problem+json", reply
        elif key:
            self.keyed.append(Keyed(key, body, response.status_code, reply))
        return reply

    def _lines(self, serials: list[str], lots: dict[str, int]) -> list[dict[str, Any]]:
        return [{"serial": s} for s in serials] + [
            {"lot_number": n, "item_type": self.ammo, "quantity": q} for n, q in lots.items()
        ]

    def _remember(self, reply: Any, kind: str, source: str, destination: str, **what: Any) -> None:
        assert reply["kind"] == kind and reply["from"] == source, reply
        assert reply["to"] == destination, reply
        posted_serials = [line["serial"] for line in reply["lines"] if line.get("serial")]
        assert posted_serials == what["serials"], reply
        self.books.posted.append(Posted(reply["id"], kind, source, destination, **what))

    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        depot = self.ref[data.draw(st.sampled_from(["depot_a", "depot_b"]), label="depot")]
        serials = [self._new("S") for _ in range(data.draw(st.integers(0, 3), label="weapons"))]
        known_lots = sorted(self.books.received)
        lots: dict[str, int] = {}
        for _ in range(data.draw(st.integers(0 if serials else 1, 2), label="lot lines")):
            top_up = known_lots and data.draw(st.booleans(), label="top up a known lot")
            lot = data.draw(st.sampled_from(known_lots)) if top_up else self._new("LOT")
            lots[lot] = data.draw(st.integers(1, 500), label="rounds")
        duplicate = None
        if self.books.where and data.draw(st.integers(0, 9), label="duplicate?") == 0:
            duplicate = data.draw(st.sampled_from(sorted(self.books.where)), label="duplicate")
        # The service normalises markings: a padded lower-case serial is the same serial.
        sent = [f"  {s.lower()} " if data.draw(st.booleans()) else s for s in serials]
        body = {
            "kind": "receipt",
            "from": self.ref["party"],
            "to": depot,
            "occurred_at": ago(minutes=10),
            "document_ref": unique("GRN"),
            "lines": [
                {"weapon": {"serial": s, "manufacturer": self.maker, "item_type": self.rifle}}
                for s in sent + ([duplicate] if duplicate else [])
            ]
            + [
                {"lot": {"lot_number": n, "item_type": self.ammo}, "quantity": q}
                for n, q in lots.items()
            ],
        }
        reply = self._post_expecting(data, body, 409 if duplicate else 201)
        if duplicate:
            assert duplicate in reply["detail"] and "already registered" in reply["detail"]
            return
        self.books.where.update(dict.fromkeys(serials, depot))
        for lot, quantity in lots.items():
            self.books.rounds[(lot, depot)] += quantity
            self.books.received[lot] += quantity
        self._remember(reply, "receipt", self.ref["party"], depot, serials=serials, lots=lots)

    @rule(data=st.data(), kind=st.sampled_from(sorted(ROUTES)))
    def move(self, data: st.DataObject, kind: str) -> None:
        sources, destinations = ROUTES[kind]
        source_name = data.draw(st.sampled_from(sources), label="from")
        source = self.ref[source_name]
        destination = self.ref[data.draw(st.sampled_from(destinations), label="to")]
        if kind == "issue":  # a depot issues to its own units (the policy refuses others')
            destination = self.ref[source_name.replace("depot", "unit")]
        serials: list[str] = []
        if kind != "expenditure" and self.books.where:
            everything = sorted(self.books.where)
            # Mostly weapons the source holds, so moves succeed as often as they conflict.
            here = [s for s in everything if self.books.where[s] == source] or everything
            pool = here if data.draw(st.integers(0, 3), label="from elsewhere?") else everything
            serials = data.draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
        lots: dict[str, int] = {}
        if self.books.received:
            chosen = data.draw(
                st.lists(st.sampled_from(sorted(self.books.received)), max_size=2, unique=True)
            )
            for lot in chosen:
                held = self.books.rounds[(lot, source)]
                lots[lot] = data.draw(st.integers(1, held + 20), label=f"rounds of {lot}")
        if not serials and not lots:
            return
        body: dict[str, Any] = {
            "kind": kind,
            "from": source,
            "occurred_at": ago(minutes=5),
            "lines": self._lines(serials, lots),
            "document_ref": unique("DOC"),  # a return or recovery may cross depots
        }
        if kind in ("issue", "return", "recovery"):
            body["to"] = destination
        body.update(
            {
                "issue": {"due_back_at": ago(days=-30)},
                "loss": {"case_ref": unique("CASE")},
                "recovery": {"case_ref": unique("CASE")},  # it may settle an open loss
                "expenditure": {"reason": "training"},
            }.get(kind, {})
        )
        ok = self.books.can_move(source, serials, lots)
        reply = self._post_expecting(data, body, 201 if ok else 409)
        if ok:
            self.books.move(source, destination, serials, lots)
            self._remember(reply, kind, source, destination, serials=serials, lots=lots)
        else:
            assert "lines[" in str(reply.get("errors")), reply  # the 409 names the line

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        if not self.books.posted:
            return
        original = data.draw(st.sampled_from(self.books.posted), label="reverses")
        body = {
            "kind": "reversal",
            "reverses": original.id,
            "reason": "posted in error",
            "occurred_at": ago(minutes=1),
        }
        ok = (
            original.kind != "reversal"
            and not original.reversed
            and self.books.can_move(original.destination, original.serials, original.lots)
        )
        reply = self._post_expecting(data, body, 201 if ok else 409)
        if ok:
            original.reversed = True
            source, destination = original.destination, original.source
            self.books.move(source, destination, original.serials, original.lots)
            self._remember(
                reply, "reversal", source, destination, serials=original.serials, lots=original.lots
            )

    @rule(data=st.data())
    def retry_the_same_request(self, data: st.DataObject) -> None:
        """A client on a bad link retries blindly: the first reply comes back, nothing is posted."""
        if not self.keyed:
            return
        earlier = data.draw(st.sampled_from(self.keyed), label="retry")
        response = self._post(earlier.body, earlier.key)
        assert response.status_code == earlier.status
        assert response.get_json() == earlier.reply
        assert response.headers["Idempotent-Replayed"] == "true"

    @rule(data=st.data())
    def reuse_a_key_for_another_request(self, data: st.DataObject) -> None:
        if not self.keyed:
            return
        earlier = data.draw(st.sampled_from(self.keyed), label="reuse key")
        response = self._post({**earlier.body, "note": unique("other")}, earlier.key)
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["type"].endswith("/idempotency-key-reused")
        assert earlier.key in response.get_json()["detail"]

    @rule(
        data=st.data(),
        case=st.sampled_from(
            ["no due date", "from lost", "weapon expended", "twice", "unknown unit"]
        ),
    )
    def refused_by_the_rules(self, data: st.DataObject, case: str) -> None:
        """Requests the posting rules refuse (422, naming the field) change nothing."""
        serial = data.draw(st.sampled_from(sorted(self.books.where))) if self.books.where else None
        serial = serial or unique("NEVER")
        issue = {
            "kind": "issue",
            "from": self.ref["depot_a"],
            "to": self.ref["unit_a"],
            "occurred_at": ago(minutes=5),
            "due_back_at": ago(days=-3),
            "lines": [{"serial": serial}],
        }
        body, field_named = {
            "no due date": ({k: v for k, v in issue.items() if k != "due_back_at"}, "due_back_at"),
            "from lost": ({**issue, "kind": "loss", "from": LOST, "case_ref": "C"}, "from"),
            "weapon expended": (
                {**issue, "kind": "expenditure", "from": self.ref["unit_a"], "reason": "x"},
                "lines[0]",
            ),
            "twice": ({**issue, "lines": [{"serial": serial}] * 2}, "lines[1]"),
            "unknown unit": ({**issue, "to": f"unit:{unique('NOPE')}"}, "to"),
        }[case]
        if case == "weapon expended":
            del body["to"], body["due_back_at"]
        reply = self._post_expecting(data, body, 422)
        assert field_named in reply["errors"], (case, reply)

    @invariant()
    def books_equal_the_model(self) -> None:
        session: Session = self.app.extensions["inventory.sessions"]()
        try:
            self._check_books(session)
        finally:
            session.close()

    def _check_books(self, session: Session) -> None:
        holder = aliased(Holder)
        weapons = session.execute(
            select(Weapon.serial, holder.kind + ":" + holder.code)
            .join(ItemType, ItemType.id == Weapon.item_type_id)
            .outerjoin(WeaponHolding, WeaponHolding.weapon_id == Weapon.id)
            .outerjoin(holder, holder.id == WeaponHolding.holder_id)
            .where(ItemType.code == self.rifle)
        ).all()
        assert len(weapons) == len({serial for serial, _ in weapons}), "a weapon has two holders"
        assert dict(weapons) == self.books.where
        lots = session.execute(
            select(Lot.lot_number, holder.kind + ":" + holder.code, LotHolding.quantity)
            .join(ItemType, ItemType.id == Lot.item_type_id)
            .join(LotHolding, LotHolding.lot_id == Lot.id)
            .join(holder, holder.id == LotHolding.holder_id)
            .where(ItemType.code == self.ammo)
        ).all()
        assert all(quantity >= 0 for _, _, quantity in lots), lots
        assert {(n, h): q for n, h, q in lots if q} == self.books.balances()
        totals: Counter[str] = Counter()
        for lot_number, _, quantity in lots:
            totals[lot_number] += quantity
        assert totals == self.books.received  # conservation per lot
        negative = session.scalar(
            select(func.count()).select_from(LotHolding).where(LotHolding.quantity < 0)
        )
        assert negative == 0

    def teardown(self) -> None:
        session: Session = self.app.extensions["inventory.sessions"]()
        try:
            assert projection.check(session) == []
            verdict = audit_log.verify(session)
            assert verdict.ok, verdict
        finally:
            session.close()
        RUNS.append(self.requests)


RUNS: list[int] = []


def test_the_books_follow_the_model(app: Flask, admin_token: str) -> None:
    machine = type(
        "CustodyBooks",
        (CustodyMachine,),
        {"app": app, "token": admin_token, "__module__": __name__},
    )
    RUNS.clear()
    run_state_machine_as_test(machine, settings=SETTINGS)
    print(f"model-based: {len(RUNS)} sequences, {sum(RUNS)} movement requests")
    assert sum(RUNS) > 0
