"""End-use verifications of a transfer to an outside party, on both databases: delivery
confirmation schedules them, results open `end_use_missing`, and the schedule follows a moved
clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.db.engine import make_engine, make_session_factory
from inventory.db.models import Discrepancy, EndUseVerification, VerificationResult
from inventory.services import verifications

from .conftest import Api, unique
from .ledger_helpers import World, make_world
from .test_foundation import assert_problem

FIRST_CHECK, INTERVAL = timedelta(days=90), timedelta(days=365)  # Settings' defaults


@dataclass
class Export:
    world: World
    transfer: dict[str, Any]
    serials: list[str]
    monitor: str


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    db = make_session_factory(engine)()
    try:
        yield db
    finally:
        db.close()
        engine.dispose()


def now() -> str:
    return datetime.now(UTC).isoformat()


def export(api: Api, count: int = 3) -> Export:
    """Weapons dispatched to a recipient state and delivered, confirmed by a monitor."""
    world = make_world(api)
    recipient = unique("PARTNER")
    assert (
        api.post(
            "/api/v1/parties",
            json={"code": recipient, "name": "Partner", "country": "YY", "kind": "recipient"},
        ).status_code
        == 201
    )
    batch = unique("AK")
    serials = [f"{batch}-{i}" for i in range(count)]
    world.receive(serials)
    transfer = api.post(
        "/api/v1/transfers",
        json={
            "from": f"depot:{world.depot}",
            "to": f"party:{recipient}",
            "expected_by": (datetime.now(UTC) + timedelta(days=10)).isoformat(),
            "document_ref": unique("EXP"),
            "end_user_ref": unique("EUC"),
            "lines": [{"serial": s} for s in serials],
        },
    )
    assert transfer.status_code == 201, transfer.get_json()
    return Export(world, transfer.get_json(), serials, api.token_for("monitor"))


def confirm(export: Export, **extra: Any) -> Any:
    body = {"received_at": now(), "lines": [{"serial": s} for s in export.serials], **extra}
    return export.world.api.post(
        f"/api/v1/transfers/{export.transfer['id']}/receipt", json=body, token=export.monitor
    )


def scheduled(api: Api, token: str, transfer_id: str, status: str | None = None) -> list[Any]:
    query: dict[str, Any] = {"limit": 1000, **({"status": status} if status else {})}
    response = api.get("/api/v1/verifications", query_string=query, token=token)
    assert response.status_code == 200, response.get_json()
    return [v for v in response.get_json()["items"] if v["transfer_id"] == transfer_id]


def record(export: Export, verification_id: str, **body: Any) -> Any:
    body.setdefault("checked_at", now())
    return export.world.api.post(
        f"/api/v1/verifications/{verification_id}/result", json=body, token=export.monitor
    )


def test_confirming_delivery_to_a_party_schedules_the_first_check(api: Api) -> None:
    sale = export(api)
    clerk = api.token_for("clerk", [sale.world.depot])
    forbidden = api.post(
        f"/api/v1/transfers/{sale.transfer['id']}/receipt",
        json={"received_at": now(), "lines": [], "delivery_verification_ref": "DV-1"},
        token=clerk,
    )
    assert "monitor" in assert_problem(forbidden, 403)["detail"]
    unverified = assert_problem(confirm(sale), 422)
    assert "delivery_verification_ref" in unverified["errors"]
    response = confirm(sale, delivery_verification_ref=unique("DV"))
    assert response.status_code == 201, response.get_json()
    delivered = response.get_json()
    assert delivered["status"] == "received"
    assert sale.world.weapon(sale.serials[0])["status"] == "transferred_out"

    due = scheduled(api, sale.monitor, sale.transfer["id"], "due")
    assert [(v["number"], v["status"]) for v in due] == [(1, "due")]
    received_at = datetime.fromisoformat(delivered["received_at"])
    assert datetime.fromisoformat(due[0]["due_at"]) == received_at + FIRST_CHECK
    assert due[0]["party"] == sale.transfer["to"] and due[0]["end_user_ref"]
    assert scheduled(api, sale.monitor, sale.transfer["id"], "overdue") == []
    assert_problem(api.get("/api/v1/verifications", token=clerk), 403)


def test_a_result_must_account_for_every_delivered_weapon(api: Api) -> None:
    sale = export(api)
    assert confirm(sale, delivery_verification_ref=unique("DV")).status_code == 201
    [first] = scheduled(api, sale.monitor, sale.transfer["id"])
    seen, gone, skipped = sale.serials
    partial = assert_problem(
        record(sale, first["id"], seen=[{"serial": seen}], not_seen=[{"serial": gone}]), 422
    )
    assert skipped in partial["detail"] and "not_seen" in partial["errors"]
    stranger = unique("AK")
    foreign = assert_problem(
        record(
            sale,
            first["id"],
            seen=[{"serial": s} for s in sale.serials],
            not_seen=[{"serial": stranger}],
        ),
        422,
    )
    assert stranger in foreign["detail"] and "not_seen[0]" in foreign["errors"]
    twice = assert_problem(
        record(
            sale,
            first["id"],
            seen=[{"serial": s} for s in sale.serials],
            not_seen=[{"serial": seen}],
        ),
        422,
    )
    assert seen in twice["detail"]
    future = record(
        sale,
        first["id"],
        checked_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
        seen=[{"serial": s} for s in sale.serials],
    )
    assert "checked_at" in assert_problem(future, 422)["errors"]
    auditor = api.token_for("auditor")
    assert_problem(
        api.post(
            f"/api/v1/verifications/{first['id']}/result",
            json={"checked_at": now(), "seen": [{"serial": s} for s in sale.serials]},
            token=auditor,
        ),
        403,
    )


def test_weapons_not_seen_open_end_use_missing_and_the_next_check_is_scheduled(
    api: Api, session: Session
) -> None:
    sale = export(api)
    assert confirm(sale, delivery_verification_ref=unique("DV")).status_code == 201
    [first] = scheduled(api, sale.monitor, sale.transfer["id"])
    seen, gone = sale.serials[:2], sale.serials[2]
    checked_at = datetime.now(UTC)
    response = record(
        sale,
        first["id"],
        checked_at=checked_at.isoformat(),
        seen=[{"serial": s} for s in seen],
        not_seen=[{"serial": gone}],
        note="depot visit",
    )
    assert response.status_code == 201, response.get_json()
    result = response.get_json()
    assert (result["seen"], result["not_seen"], len(result["discrepancies"])) == (2, 1, 1)
    assert result["verification"]["status"] == "done"
    assert result["next"]["number"] == 2
    assert datetime.fromisoformat(result["next"]["due_at"]) == checked_at + INTERVAL
    assert_problem(record(sale, first["id"], seen=[{"serial": s} for s in sale.serials]), 409)

    session.rollback()
    missing = session.scalar(
        select(Discrepancy).where(Discrepancy.id == uuid.UUID(result["discrepancies"][0]))
    )
    assert missing is not None and missing.kind == "end_use_missing"
    assert missing.severity == "critical" and gone in missing.summary
    assert missing.depot is not None and missing.depot.code == sale.world.depot
    flags = session.execute(
        select(VerificationResult.seen).where(
            VerificationResult.verification_id == uuid.UUID(first["id"])
        )
    ).all()
    assert sorted(flag for (flag,) in flags) == [False, True, True]

    done = scheduled(api, sale.monitor, sale.transfer["id"], "done")
    assert [v["id"] for v in done] == [first["id"]]
    # The same weapon missing again at the next check stays one open discrepancy.
    again = record(
        sale,
        result["next"]["id"],
        seen=[{"serial": s} for s in seen],
        not_seen=[{"serial": gone}],
    )
    assert again.status_code == 201 and again.get_json()["discrepancies"] == []


def test_overdue_checks_follow_a_moved_clock(api: Api, session: Session) -> None:
    sale = export(api)
    assert confirm(sale, delivery_verification_ref=unique("DV")).status_code == 201
    [first] = scheduled(api, sale.monitor, sale.transfer["id"], "due")
    due_at = datetime.fromisoformat(first["due_at"])
    session.rollback()

    def listed(status: str, at: datetime) -> set[str]:
        query = verifications.verifications_query(session, status=status, now=at)
        query = query.where(EndUseVerification.transfer_id == uuid.UUID(sale.transfer["id"]))
        return {str(v.id) for v in session.scalars(query)}

    assert listed("overdue", due_at - timedelta(seconds=1)) == set()
    assert listed("due", due_at - timedelta(seconds=1)) == {first["id"]}
    assert listed("overdue", due_at + timedelta(days=1)) == {first["id"]}
    assert listed("due", due_at + timedelta(days=1)) == set()
    view = verifications.get_verification(
        session, uuid.UUID(first["id"]), due_at + timedelta(days=1)
    )
    assert view.status == "overdue" and view.overdue_by_seconds == 24 * 3600
