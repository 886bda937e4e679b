"""Finding a weapon (by serial, or by maker and type), its chain of custody, and for those the API
lets trace and record sightings: the trace and the sighting form."""

from __future__ import annotations

import uuid
from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..api.context import db_session
from ..api.pagination import keyset_page
from ..api.sightings import SightingInSchema
from ..db.models import Weapon
from ..services import custody, reference, sightings
from ..services.errors import Invalid
from ..services.unit_of_work import UnitOfWork
from .access import api_allows, require
from .base import actor, bp, run

PAGE_SIZE = 50


@bp.get("/weapons")
def weapon_search() -> ResponseReturnValue:
    who = actor()
    require(who, "stock.Weapons")
    filters = {
        k: v.strip()
        for k in ("serial", "manufacturer", "item_type")
        if (v := request.args.get(k, "")) and v.strip()
    }
    page = None
    if filters:
        session = db_session()
        stmt = custody.weapons_query(session, who, **filters)
        page = keyset_page(session, stmt, Weapon.id, {"limit": PAGE_SIZE, **_after()})
    return render_template(
        "console/weapons.html",
        filters=filters,
        page=page,
        item_types=reference.weapon_type_codes(db_session()),
    )


def _after() -> dict[str, Any]:
    after = request.args.get("after")
    return {"after": after} if after else {}


@bp.get("/weapons/<uuid:weapon_id>")
def weapon_detail(weapon_id: uuid.UUID) -> ResponseReturnValue:
    who, session = actor(), db_session()
    require(who, "stock.WeaponById")
    weapon = custody.get_weapon(session, who, weapon_id)
    history = custody.chain_of_custody(session, custody.weapon_history(session, who, weapon_id))
    trace = None
    if api_allows(who, "sightings.Trace"):
        trace = sightings.trace(session, who, weapon.serial, weapon.manufacturer)
    return render_template(
        "console/weapon.html",
        weapon=weapon,
        history=history,
        trace=trace,
        may_sight=api_allows(who, "sightings.Sightings", "post"),
        recorded=request.args.get("recorded"),
    )


@bp.post("/sightings")
def record_sighting() -> ResponseReturnValue:
    who = actor()
    require(who, "sightings.Sightings", "post")
    form = {
        k: v.strip()
        for k in ("serial", "manufacturer", "item_type", "place", "circumstances", "observed_at")
        if (v := request.form.get(k, "")) and v.strip()
    }
    if "observed_at" in form and len(form["observed_at"]) <= 16:  # datetime-local: no zone
        form["observed_at"] += ":00+00:00"
    errors = SightingInSchema().validate(form)
    if errors:
        raise Invalid("the sighting form is not complete", errors=errors)
    report = SightingInSchema().load(form)

    def record(uow: UnitOfWork) -> str:
        sighting = sightings.record_sighting(uow, report)
        return str(sighting.discrepancy.id) if sighting.discrepancy else ""

    discrepancy_id = run(record)
    if discrepancy_id:
        return redirect(
            url_for("console.discrepancy_detail", discrepancy_id=discrepancy_id, done="sighting"),
            code=303,
        )
    return redirect(url_for("console.weapon_search", serial=report.serial), code=303)
