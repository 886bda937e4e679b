"""First start of a local instance: the demo scenario (seeds/demo: four depots, 5,000 weapons
and a story with something unaccounted for) and one token per role to try the API with. The
secrets are kept in the instance folder, which never leaves the machine, so that `make run` can
print them again on every start."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from . import seed
from .clock import utcnow
from .domain.actors import Role, operator
from .services import tokens
from .services.unit_of_work import Context, run_write
from .settings import Settings

DEMO_DEPOT = "D-NORTH"
# Given the number of steps, a context whose value is told after each step (e.g. a progress bar).
ProgressBar = Callable[[int], AbstractContextManager[Callable[[int], None]]]


def _secret(issued: tokens.IssuedToken, _uow: object) -> str:
    return issued.secret


def load_scenario(
    session: Session, settings: Settings, progress_bar: ProgressBar | None = None
) -> seed.LoadReport:
    """Load the demo scenario unless it is already on the books."""
    scenario = seed.read("demo", utcnow())
    if seed.is_loaded(session, scenario):
        return seed.LoadReport(scenario.name, loaded=False)
    if progress_bar is None:
        return seed.load(session, settings, scenario)
    with progress_bar(seed.steps_in(scenario)) as advance:
        return seed.load(session, settings, scenario, progress=advance)


def prepare(
    session: Session, settings: Settings, progress_bar: ProgressBar | None = None
) -> dict[str, str]:
    """Load the demo scenario on first start and make one token per role (the clerk's scoped to
    D-NORTH); return the tokens by role. Tokens saved by an earlier start are reused while they
    still open this database."""
    load_scenario(session, settings, progress_bar)
    saved = Path(settings.instance_dir) / "demo-tokens.json"
    if saved.exists():
        stored: dict[str, str] = json.loads(saved.read_text())
        if all(tokens.authenticate(session, secret) for secret in stored.values()):
            session.rollback()
            return stored
    context = Context(actor=operator("demo"), settings=settings)
    issued: dict[str, str] = {}
    for role in Role:
        issue = partial(
            tokens.create_token,
            name=tokens.free_name(session, f"demo {role}"),
            role=str(role),
            depots=[DEMO_DEPOT] if role is Role.CLERK else [],
        )
        issued[str(role)] = run_write(session, context, issue, _secret).body
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(issued, indent=2))
    os.chmod(saved, 0o600)
    return issued
