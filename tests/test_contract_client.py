"""A client generated from the served document by openapi-python-client, as an outside
developer would make one, driving the API in process over WSGI: it pages depots, posts a
movement with an Idempotency-Key and replays it, and reads a 409 and a 422 as `Problem`s.
`raise_on_unexpected_status` is on, so any status the document does not list fails the test."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from flask import Flask

from .conftest import Api, unique
from .ledger_helpers import ago, make_world

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
# No post hooks: the generated code is run, not read, so it needs no formatting.
CONFIG = "post_hooks: []\n"


@pytest.fixture(scope="module")
def generated(app: Flask, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated package, imported under a name of its own for this backend's run."""
    work = tmp_path_factory.mktemp("client")
    spec, config = work / "openapi.json", work / "config.yml"
    spec.write_bytes(app.test_client().get("/api/v1/openapi.json").get_data())
    config.write_text(CONFIG)
    name = f"stockpile_client_{backend}"
    done = subprocess.run(
        [GENERATOR, "generate", "--path", spec, "--config", config, "--meta", "none"]
        + ["--output-path", work / name],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(work))
    try:
        yield Generated(name)
    finally:
        sys.path.remove(str(work))
        for module in [m for m in sys.modules if m.split(".")[0] == name]:
            del sys.modules[module]


class Generated:
    """Modules of the generated package by their path under it: `generated["api.reference"]`."""

    def __init__(self, package: str) -> None:
        self.package = package

    def __getitem__(self, path: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{path}")


def client_for(generated: Generated, app: Flask, token: str) -> Any:
    return generated["client"].AuthenticatedClient(
        base_url="http://stockpile.test",
        token=token,
        raise_on_unexpected_status=True,
        httpx_args={"transport": httpx.WSGITransport(app=app)},
    )


def test_a_generated_client_pages_posts_replays_and_reads_problems(
    generated: Generated, app: Flask, api: Api
) -> None:
    world = make_world(api)  # two depots of its own, among every other test's
    client = client_for(generated, app, api.token)
    list_depots = generated["api.reference.list_depots"]
    post_movement = generated["api.movements.post_movement"]
    models = generated["models"]

    seen: list[str] = []
    after: Any = generated["types"].UNSET
    while True:
        page = list_depots.sync(client=client, limit=2, after=after)
        assert isinstance(page, models.DepotPage) and len(page.items) <= 2
        seen += [depot.code for depot in page.items]
        if not page.next_:  # `next` is a Python builtin: the generator names it next_
            break
        after = page.next_
    assert {world.depot, world.other_depot} <= set(seen) and len(seen) == len(set(seen))

    serial = unique("GEN")
    receipt = {
        "kind": "receipt",
        "from": f"party:{world.supplier}",
        "to": f"depot:{world.depot}",
        "occurred_at": ago(hours=1),
        "lines": [{"weapon": {"serial": serial, "manufacturer": "M", "item_type": world.rifle}}],
    }
    body = models.MovementIn.from_dict(receipt)
    assert body.from_ == receipt["from"]  # `from` is a keyword: the generator names it from_
    key = unique("key")
    first = post_movement.sync_detailed(client=client, body=body, idempotency_key=key)
    assert first.status_code == 201 and isinstance(first.parsed, models.MovementOut)
    assert first.headers["Location"] == f"/api/v1/movements/{first.parsed.id}"
    again = post_movement.sync_detailed(client=client, body=body, idempotency_key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.parsed.id == first.parsed.id

    refused = post_movement.sync(client=client, body=body)  # the same serial received twice
    assert isinstance(refused, models.Problem) and refused.status == 409
    assert refused.type_.endswith("/conflict") and serial in refused.detail

    other = models.MovementIn.from_dict({**receipt, "note": "another request"})
    reused = post_movement.sync(client=client, body=other, idempotency_key=key)
    assert isinstance(reused, models.Problem) and reused.status == 422
    assert reused.type_.endswith("/idempotency-key-reused")
    assert "Idempotency-Key" in reused.errors.to_dict() and reused.request_id
