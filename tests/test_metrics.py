"""`GET /metrics`: Prometheus text that prometheus_client's own parser reads, with the figures an
operator alerts on, for the roles that see every depot; summed over every `inventory serve`
process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .conftest import Api, unique
from .ledger_helpers import make_world
from .servers import Server, issue_token
from .test_subscriptions import lose


def scrape(api: Api, token: str | None = None) -> dict[str, dict[tuple[str, tuple], float]]:
    """{family name: {(sample name, sorted labels): value}}"""
    answer = api.get("/metrics", token=token)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("text/plain")
    return parse(answer.get_data(as_text=True))


def parse(text: str) -> dict[str, dict[tuple[str, tuple], float]]:
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples
        }
    return families


def value(families: dict, family: str, sample: str, **labels: str) -> float:
    return families.get(family, {}).get((sample, tuple(sorted(labels.items()))), 0.0)


def test_the_figures_an_operator_alerts_on(api: Api) -> None:
    before = scrape(api)
    world = make_world(api)
    serial = unique("SN")
    assert world.receive([serial]).status_code == 201
    lose(world, serial)
    assert api.post("/api/v1/audit/checkpoints").status_code == 201
    after = scrape(api)

    def grew(family: str, sample: str, **labels: str) -> float:
        return value(after, family, sample, **labels) - value(before, family, sample, **labels)

    assert grew("inventory_movements_posted", "inventory_movements_posted_total", kind="receipt")
    assert grew("inventory_movements_posted", "inventory_movements_posted_total", kind="loss")
    route = {"method": "POST", "route": "/api/v1/movements"}
    assert grew("inventory_http_requests", "inventory_http_requests_total", status="201", **route)
    assert (
        grew(
            "inventory_http_request_duration_seconds",
            "inventory_http_request_duration_seconds_count",
            **route,
        )
        >= 2
    )
    open_losses = value(
        after,
        "inventory_discrepancies_open",
        "inventory_discrepancies_open",
        kind="reported_loss",
        severity="critical",
    )
    assert open_losses >= 1
    assert value(after, "inventory_audit_head_seq", "inventory_audit_head_seq") > value(
        before, "inventory_audit_head_seq", "inventory_audit_head_seq"
    )
    age = value(
        after,
        "inventory_audit_last_checkpoint_age_seconds",
        "inventory_audit_last_checkpoint_age_seconds",
    )
    assert 0 <= age < 120
    for gauge in (
        "inventory_outbox_undispatched_events",
        "inventory_webhook_deliveries_pending",
        "inventory_outbox_oldest_undelivered_event_age_seconds",
    ):
        assert gauge in after
    # the loss's event waits for a worker: the backlog and its age show it
    assert value(
        after, "inventory_outbox_undispatched_events", "inventory_outbox_undispatched_events"
    ) >= 1


def test_who_may_read_the_metrics(api: Api, depot: str) -> None:
    assert api.get("/metrics", token="nope").status_code == 401
    assert api.client.get("/metrics").status_code == 401
    assert api.get("/metrics", token=api.token_for("clerk", [depot])).status_code == 403
    for role in ("auditor", "monitor"):
        assert api.get("/metrics", token=api.token_for(role)).status_code == 200


def test_every_serving_process_is_counted(database_url: str, tmp_path: Path) -> None:
    token = issue_token(database_url, "auditor")
    with Server(database_url, tmp_path, workers=2) as server:
        with ThreadPoolExecutor(6) as pool:  # concurrent connections: both processes answer
            answers = list(
                pool.map(
                    lambda _: server.request("GET", "/api/v1/depots", token=token).status,
                    range(30),
                )
            )
        assert answers == [200] * 30
        pids = {p.name.split("_")[1] for p in server.metrics_dir.glob("counter_*.db")}
        answer = server.request("GET", "/metrics", token=token)
    assert answer.status == 200
    families = parse(answer.body.decode())
    route = {"method": "GET", "route": "/api/v1/depots", "status": "200"}
    total = value(families, "inventory_http_requests", "inventory_http_requests_total", **route)
    assert total == 30 and len(pids) == 2, pids
