"""Benchmark of the transparency log at a million audit records (PostgreSQL scratch database):
the back-fill of the Merkle tree, then proofs through the API (inclusion and consistency, p50 and
p95), then the cost of a later, small integration. Not part of `make test`.

    .venv/bin/python bench/transparency.py                       # 1,000,000 records
    .venv/bin/python bench/transparency.py --records 100000      # quicker
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import seed  # noqa: E402
from bench.scratch import scratch_database  # noqa: E402
from inventory import create_app  # noqa: E402
from inventory.db.engine import begin_write, make_engine, make_session_factory  # noqa: E402
from inventory.domain.actors import operator  # noqa: E402
from inventory.services import tokens, transparency  # noqa: E402
from inventory.services.unit_of_work import Context, run_write  # noqa: E402
from inventory.settings import Settings  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
        "n": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=500)
    parser.add_argument("--server", default=SERVER)
    args = parser.parse_args()
    report: dict[str, object] = {"records": args.records}
    with scratch_database(args.server, "transparency") as url:
        report["seed_s"] = round(seed.synthetic_audit(url, args.records), 1)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        session = sessions()
        began = time.perf_counter()
        begin_write(session)
        size = transparency.integrate(session)
        session.commit()
        report["backfill_s"] = round(time.perf_counter() - began, 1)
        report["tree_size"] = size
        began = time.perf_counter()
        root = transparency.root_hash(session, size)
        report["root_ms"] = round((time.perf_counter() - began) * 1000, 2)
        session.close()

        settings = Settings(
            database_url=url,
            signing_key_path=Path("/tmp/bench-transparency.pem"),
            log_level="WARNING",
        )
        token = run_write(
            sessions(),
            Context(actor=operator("bench"), settings=settings),
            lambda uow: tokens.create_token(uow, "bench monitor", "monitor", []),
            lambda issued, _uow: issued.secret,
        ).body
        app = create_app({"SETTINGS": settings})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        rng = random.Random(21)
        inclusion, consistency = [], []
        for _ in range(args.proofs):
            seq = rng.randint(1, size)
            began = time.perf_counter()
            reply = client.get(
                f"/api/v1/log/proof/inclusion?seq={seq}&tree_size={size}", headers=headers
            )
            inclusion.append(time.perf_counter() - began)
            assert reply.status_code == 200, reply.get_json()
            first = rng.randint(1, size)
            began = time.perf_counter()
            reply = client.get(
                f"/api/v1/log/proof/consistency?first={first}&second={size}", headers=headers
            )
            consistency.append(time.perf_counter() - began)
            assert reply.status_code == 200, reply.get_json()
        report["inclusion_api"] = percentiles(inclusion)
        # The proof alone (the service call, without HTTP, auth and JSON).
        session = sessions()
        alone = []
        for _ in range(args.proofs):
            seq = rng.randint(1, size)
            began = time.perf_counter()
            transparency.inclusion(session, seq, size)
            alone.append(time.perf_counter() - began)
            session.rollback()
        session.close()
        report["inclusion_service"] = percentiles(alone)
        report["consistency_api"] = percentiles(consistency)
        searches = []
        for _ in range(5):
            serial = f"{rng.randint(1, size):032x}"  # a request id: in every record's bytes
            began = time.perf_counter()
            reply = client.get(f"/api/v1/log/search?serial={serial}", headers=headers)
            searches.append(time.perf_counter() - began)
            assert reply.status_code == 200 and len(reply.get_json()["seqs"]) == 1
        report["search_api"] = percentiles(searches)
        app.extensions["inventory.engine"].dispose()

        # A later, hourly-sized integration: 10,000 more records.
        seed.synthetic_audit(url, 10_000)
        session = sessions()
        began = time.perf_counter()
        begin_write(session)
        transparency.integrate(session)
        session.commit()
        report["integrate_10k_s"] = round(time.perf_counter() - began, 2)
        session.close()
        engine.dispose()
        report["root"] = root.hex()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
