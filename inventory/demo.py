"""First start of a local instance: demo tokens to try the API with (and, once seeded, the demo
scenario). The secrets are kept in the instance folder, which never leaves the machine, so that
`make run` can print them again on every start."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from .domain.actors import Role, operator
from .services import reference, tokens
from .services.unit_of_work import Context, run_write
from .settings import Settings

DEMO_DEPOT = "D-NORTH"


def _secret(issued: tokens.IssuedToken, _uow: object) -> str:
    return issued.secret


def prepare(session: Session, settings: Settings) -> dict[str, str]:
    """Make the demo depot and one token per role on first start; return the tokens by role."""
    saved = Path(settings.instance_dir) / "demo-tokens.json"
    if saved.exists():
        stored: dict[str, str] = json.loads(saved.read_text())
        return stored
    context = Context(actor=operator("demo"), settings=settings)
    if reference.find_holder(session, "depot", DEMO_DEPOT) is None:
        run_write(
            session,
            context,
            lambda uow: reference.create_depot(uow, DEMO_DEPOT, "Northern Central Depot", "XX"),
            lambda _depot, _uow: None,
        )
    issued: dict[str, str] = {}
    for role in Role:
        issue = partial(
            tokens.create_token,
            name=f"demo {role}",
            role=str(role),
            depots=[DEMO_DEPOT] if role is Role.CLERK else [],
        )
        issued[str(role)] = run_write(session, context, issue, _secret).body
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(issued, indent=2))
    os.chmod(saved, 0o600)
    return issued
