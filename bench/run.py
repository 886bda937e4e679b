"""`make bench`: build a register in a scratch database, measure the hot paths, print a table and
write bench/results/<timestamp>.json.

    .venv/bin/python bench/run.py                       # PostgreSQL 1,000,000 weapons, then SQLite
    .venv/bin/python bench/run.py --weapons 100000 --audit 20000 --skip-sqlite   # quicker
    .venv/bin/python bench/run.py --only-sqlite

Numbers depend on the machine and on what else runs on it; every figure is the median of
`--repeats` runs and the load average is recorded beside it. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402
import scratch  # noqa: E402
import seed  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RESULTS = Path(__file__).resolve().parent / "results"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--weapons", type=int, default=1_000_000)
    parser.add_argument("--depots", type=int, default=50)
    parser.add_argument("--lots", type=int, default=2_000)
    parser.add_argument("--big-depot", type=int, default=100_000, help="weapons in the stocktake")
    parser.add_argument("--audit", type=int, default=200_000, help="synthetic audit records")
    parser.add_argument(
        "--workers", type=int, default=None, help="server processes (default: inventory serve's)"
    )
    parser.add_argument("--seconds", type=int, default=10, help="per wrk/pgbench run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--memory-seconds", type=int, default=600, help="measurement 8: issue/return this long"
    )
    parser.add_argument("--sqlite-weapons", type=int, default=100_000)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--only-sqlite", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated measurement numbers")
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",") if x}

    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "uptime": subprocess.getoutput("uptime").strip()},
        "args": vars(args),
        "backends": {},
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    if not args.only_sqlite:
        check_consistency(args.server)
        scale = seed.Scale(args.weapons, args.depots, args.lots, args.big_depot, args.audit)
        report["backends"]["postgresql"] = run_backend(args.server, scale, args, only)
        path.write_text(json.dumps(report, indent=2))  # kept even if the SQLite run fails
    if not args.skip_sqlite:
        weapons = args.sqlite_weapons
        scale = seed.Scale(weapons, 10, 200, min(args.big_depot, weapons // 2), args.audit // 4)
        report["backends"]["sqlite"] = run_backend("sqlite", scale, args, only)
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nwritten to {path}")


def check_consistency(server: str) -> None:
    """The set-based seeding at a small scale agrees with `projection.check` and `verify`."""
    from inventory.db.engine import make_engine, make_session_factory
    from inventory.services import audit_log, projection

    scale = seed.Scale(20_000, 5, 50, 5_000, 1_000)
    with scratch.scratch_database(server, "benchcheck") as url:
        seed.reference_data(url, scale)
        seed.seed_postgres(url, scale)
        seed.synthetic_audit(url, scale.audit_records)
        engine = make_engine(url)
        session = make_session_factory(engine)()
        differences = projection.check(session)
        audit_log.read_snapshot(session)
        verdict = audit_log.verify(session)
        session.close()
        engine.dispose()
    if differences or not verdict.ok:
        raise SystemExit(f"seeding is inconsistent: {differences[:5]} {verdict}")
    print(f"seeding check at {scale.weapons:,} weapons: projection agrees, audit chain verifies")


def run_backend(server: str, scale: seed.Scale, args: argparse.Namespace, only: set[int]) -> Any:
    backend = "sqlite" if server == "sqlite" else "postgresql"
    result: dict[str, Any] = {"scale": vars(scale), "measurements": {}}
    measured = result["measurements"]
    want: Callable[[int], bool] = lambda n: not only or n in only  # noqa: E731
    with scratch.scratch_database(server) as url:
        began = time.perf_counter()
        token = seed.reference_data(url, scale)
        if backend == "postgresql":
            result["seed"] = seed.seed_postgres(url, scale)
        else:
            result["seed"] = seed.seed_sqlite(url, scale)
        result["seed"]["audit_s"] = seed.synthetic_audit(url, scale.audit_records)
        result["seed"]["total_s"] = time.perf_counter() - began
        print(f"[{backend}] seeded {scale.weapons:,} weapons in {result['seed']['total_s']:.0f} s")

        threads = 8
        plans = wrk_plans(url, scale, threads)
        port = random.randint(20000, 40000)
        with load.Server(url, args.workers, port) as server:
            if want(1):
                # Warm up: every worker connects and the ledger grows past its seeded 50
                # movements, so the first measured run does not start from one-page tables.
                load.return_all(url, port, token, plans)
                load.wrk(port, token, plans, 3)
                for clients in (1, 8):
                    hot_path(measured, server, url, port, token, plans, clients, scale, args)
            elif want(2) and backend == "postgresql":
                for clients in (1, 8):
                    runs = [raw_run(url, clients, scale, args) for _ in range(args.repeats)]
                    measured[f"2_raw_sql_c{clients}"] = summarise(
                        runs, ["transactions_per_s", "p50_ms", "p95_ms"]
                    )
            if backend == "postgresql" and (want(1) or want(2)):
                result["analyze_after_load_s"] = analyze(url)
            if want(3):
                measured["3_movement_1000_lines"] = big_movement(port, token, url, args.repeats)
                print(f"  3. 1,000 lines: {measured['3_movement_1000_lines']}")
            if want(4):
                measured["4_stocktake_close"] = stocktake(port, token, scale, args.repeats)
                print(f"  4. stocktake: {measured['4_stocktake_close']}")
            if want(5):
                measured["5_report"] = report_timings(port, token, args.repeats)
                print(f"  5. report: {measured['5_report']}")
            if want(6):
                measured["6_trace"] = trace_timings(port, token, scale)
                print(f"  6. trace: {measured['6_trace']}")
            if want(8):
                measured["8_memory"] = memory_over_time(server, url, port, token, plans, args)
                print(f"  8. memory: {measured['8_memory']}")
        if want(7):
            measured["7_audit_verify"] = verify_timings(url, args.repeats)
            print(f"  7. verify: {measured['7_audit_verify']}")
    return result


def hot_path(
    measured: dict[str, Any],
    server: load.Server,
    url: str,
    port: int,
    token: str,
    plans: list[dict[str, Any]],
    clients: int,
    scale: seed.Scale,
    args: argparse.Namespace,
) -> None:
    """1: single-weapon issues and returns over HTTP at `clients` clients, with the CPU each
    request cost the server and PostgreSQL; 2 (PostgreSQL): the same transaction as raw SQL
    right before and right after each HTTP run, and the ratio of HTTP to the mean of the two
    (the machine's speed drifts within minutes: only a ratio measured around its subject
    means anything)."""
    postgres = url != "sqlite" and not url.startswith("sqlite")
    runs, raws, ratios = [], [], []
    for _ in range(args.repeats):
        load.return_all(url, port, token, plans)
        before = raw_run(url, clients, scale, args) if postgres else None
        if postgres:
            analyze(url)  # the previous runs added thousands of movements
        cpu = load.cpu_seconds(server)
        http = load.wrk(port, token, plans[:clients], args.seconds)
        used = load.cpu_between(cpu, load.cpu_seconds(server))
        per_request = {
            f"{name}_cpu_ms": round(seconds / http["requests"] * 1000, 2)
            for name, seconds in used.items()
        }
        runs.append({**http, **per_request, "load": loadavg()})
        if postgres and before is not None:
            after = raw_run(url, clients, scale, args)
            raws += [before, after]
            reference = (before["transactions_per_s"] + after["transactions_per_s"]) / 2
            ratios.append(http["requests_per_s"] / reference)
    name = f"1_http_issue_return_c{clients}"
    measured[name] = summarise(
        runs, ["requests_per_s", "p50_ms", "p95_ms", "server_cpu_ms", "postgres_cpu_ms"]
    )
    print(f"  1. HTTP c={clients}: {measured[name]}")
    if raws:
        measured[f"2_raw_sql_c{clients}"] = summarise(
            raws, ["transactions_per_s", "p50_ms", "p95_ms"]
        )
        measured[f"2_ratio_service_over_raw_c{clients}"] = round(statistics.median(ratios), 3)
        measured[f"2_ratio_runs_c{clients}"] = [round(r, 3) for r in ratios]
        print(f"  2. raw c={clients}: {measured[f'2_raw_sql_c{clients}']}; ratios {ratios}")


def memory_over_time(
    server: load.Server,
    url: str,
    port: int,
    token: str,
    plans: list[dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Issues and returns at 8 clients for --memory-seconds, the server's resident memory read
    every 30 s: it should level off, not climb."""
    load.return_all(url, port, token, plans)
    samples = [round(load.resident_mb(server), 1)]
    requests = 0
    for _ in range(max(1, args.memory_seconds // 30)):
        requests += load.wrk(port, token, plans, 30)["requests"]
        samples.append(round(load.resident_mb(server), 1))
    half = samples[len(samples) // 2 :]
    return {
        "first_mb": samples[0],
        "last_mb": samples[-1],
        "second_half_growth_mb": round(max(half) - min(half), 1),
        "samples_mb": samples,
        "requests": requests,
        "load": loadavg(),
    }


def raw_run(url: str, clients: int, scale: seed.Scale, args: argparse.Namespace) -> Any:
    return {
        **load.pgbench(url, clients, args.seconds, scale.depots, scale.big_depot),
        "load": loadavg(),
    }


def analyze(url: str) -> float:
    """ANALYZE the scratch database, as autovacuum would: it is off on this machine's server.

    The seeded register has 50 movements (one receipt per depot); each HTTP or pgbench run adds
    thousands. With statistics still saying 50, the foreign-key checks against `movements` keep
    the plans each connection made while the table was one page: sequential scans, which slowed
    every posting as the table grew (the 1,000-line movement took 0.2-1 s per statement instead
    of a few milliseconds). ANALYZE updates the statistics and invalidates those plans."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    began = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - began


def summarise(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {key: round(median_of(runs, key), 2) for key in keys}
    summary["runs"] = runs
    return summary


def wrk_plans(url: str, scale: seed.Scale, threads: int) -> list[dict[str, Any]]:
    """Thread i drives 20 weapons of depot 1 + i % (depots - 1) that no other thread touches."""
    wanted: dict[int, list[int]] = {}
    for t in range(threads):
        d = 1 + t % (scale.depots - 1)
        # k >= 200 in each depot: pgbench's raw clients use k < 100 (up to 49 clients)
        first = 200 + (t // (scale.depots - 1)) * 20
        wanted[t] = [scale.big_depot + d + k * (scale.depots - 1) for k in range(first, first + 20)]
    ids = seed.weapon_ids(url, [x for v in wanted.values() for x in v])
    return [
        {
            "depot": f"depot:D{1 + t % (scale.depots - 1):02d}",
            "unit": f"unit:U{1 + t % (scale.depots - 1):02d}",
            "weapons": [ids[x] for x in wanted[t]],
        }
        for t in range(threads)
    ]


def _ok(status: int, body: Any, what: str) -> Any:
    if not 200 <= status < 300:
        raise RuntimeError(f"{what}: {status} {body}")
    return body


def big_movement(port: int, token: str, url: str, repeats: int) -> dict[str, Any]:
    """Issue 1,000 weapons of D00 to U00 in one movement and return them in another."""
    ids = list(seed.weapon_ids(url, list(range(1, 1001))).values())
    runs = []
    for _ in range(repeats):
        at = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
        lines = [{"weapon_id": i} for i in ids]
        issue = {
            "kind": "issue",
            "from": "depot:D00",
            "to": "unit:U00",
            "occurred_at": at,
            "due_back_at": due,
            "document_ref": "BENCH-1000",
            "lines": lines,
        }
        back = {
            "kind": "return",
            "from": "unit:U00",
            "to": "depot:D00",
            "occurred_at": at,
            "lines": lines,
        }
        status, body, issue_s = load.request(port, "POST", "/api/v1/movements", issue, token)
        _ok(status, body, "1,000-line issue")
        status, body, return_s = load.request(port, "POST", "/api/v1/movements", back, token)
        _ok(status, body, "1,000-line return")
        runs.append(
            {
                "issue_s": issue_s,
                "return_s": return_s,
                "lines_per_s": 2000 / (issue_s + return_s),
                "load": loadavg(),
            }
        )
    return summarise(runs, ["lines_per_s", "issue_s", "return_s"])


def stocktake(port: int, token: str, scale: seed.Scale, repeats: int) -> dict[str, Any]:
    """Count every weapon of D00 in batches of 10,000 serials, then close; the close is timed."""
    serials = [f"AK-{n:07d}" for n in range(1, scale.big_depot + 1)]
    runs = []
    for _ in range(repeats):
        status, opened, _s = load.request(
            port, "POST", "/api/v1/stocktakes", {"depot": "D00"}, token
        )
        stocktake_id = _ok(status, opened, "open stocktake")["id"]
        counting = 0.0
        for start in range(0, len(serials), 10_000):
            lines = [{"serial": s} for s in serials[start : start + 10_000]]
            status, body, seconds = load.request(
                port, "POST", f"/api/v1/stocktakes/{stocktake_id}/counts", {"lines": lines}, token
            )
            _ok(status, body, "count batch")
            counting += seconds
        status, body, close_s = load.request(
            port, "POST", f"/api/v1/stocktakes/{stocktake_id}/close", None, token
        )
        _ok(status, body, "close stocktake")
        runs.append(
            {"close_s": close_s, "count_s": counting, "serials": len(serials), "load": loadavg()}
        )
    return summarise(runs, ["close_s", "count_s"])


def report_timings(port: int, token: str, repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, path in (
        ("all_depots", "/api/v1/reports/accountability"),
        ("one_depot", "/api/v1/reports/accountability?depot=D01"),
    ):
        seconds = []
        for _ in range(max(repeats, 5)):
            status, body, elapsed = load.request(port, "GET", path, None, token)
            _ok(status, body, name)
            seconds.append(elapsed)
        result[f"{name}_p50_ms"] = round(statistics.median(seconds) * 1000, 1)
        result[f"{name}_runs_ms"] = [round(s * 1000, 1) for s in seconds]
    result["load"] = loadavg()
    return result


def trace_timings(port: int, token: str, scale: seed.Scale) -> dict[str, Any]:
    rng = random.Random(9)
    seconds = []
    for _ in range(50):
        serial = f"AK-{rng.randint(1, scale.weapons):07d}"
        status, body, elapsed = load.request(
            port, "GET", f"/api/v1/trace?serial={serial}", None, token
        )
        _ok(status, body, "trace")
        seconds.append(elapsed)
    seconds.sort()
    return {
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(seconds[int(len(seconds) * 0.95)] * 1000, 1),
        "requests": len(seconds),
        "load": loadavg(),
    }


def verify_timings(url: str, repeats: int) -> dict[str, Any]:
    """7: `audit_log.verify` over the whole chain, and beside each run the floor: SHA-256 of each
    record's previous hash and body by hashlib in one Python thread, the least any verifier
    must do per record. The machine's speed drifts by 2x within an hour; the ratio of the two,
    measured together, compares across runs and days."""
    from inventory.db.engine import make_engine, make_session_factory
    from inventory.services import audit_log

    engine = make_engine(url)
    session = make_session_factory(engine)()
    sample = hashing_sample(engine)
    runs = []
    for _ in range(repeats):
        floor_before = hashing_floor(sample)
        audit_log.read_snapshot(session)
        began = time.perf_counter()
        verdict = audit_log.verify(session)
        seconds = time.perf_counter() - began
        if not verdict.ok:
            raise RuntimeError(f"audit chain does not verify: {verdict}")
        floor = (floor_before + hashing_floor(sample)) / 2
        runs.append(
            {
                "records": verdict.length,
                "seconds": seconds,
                "records_per_s": verdict.length / seconds,
                "floor_records_per_s": floor,
                "over_floor": verdict.length / seconds / floor,
                "load": loadavg(),
            }
        )
    session.close()
    engine.dispose()
    summary = summarise(runs, ["records_per_s", "seconds", "floor_records_per_s"])
    summary["over_floor"] = round(median_of(runs, "over_floor"), 3)
    return summary


def hashing_sample(engine: Any, records: int = 100_000) -> list[tuple[bytes, bytes]]:
    """The first `records` records' previous hash (raw) and body, read once."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT prev_hash, body FROM audit_records ORDER BY seq LIMIT :n"), {"n": records}
        )
        return [(bytes.fromhex(prev), bytes(body)) for prev, body in rows]


def hashing_floor(sample: list[tuple[bytes, bytes]]) -> float:
    """Records per second hashlib hashes `sample` at, as `chain_hash` does."""
    import hashlib

    began = time.perf_counter()
    for prev, body in sample:
        hashlib.sha256(prev + body).hexdigest()
    return len(sample) / (time.perf_counter() - began)


TARGETS = {
    "2_ratio_service_over_raw_c8": ("≥ 0.25 (milestone; goal 0.5)", lambda v: v >= 0.25),
    "3_movement_1000_lines.lines_per_s": ("≥ 20,000", lambda v: v >= 20_000),
    "4_stocktake_close.close_s": ("≤ 5 s", lambda v: v <= 5),
    "5_report.all_depots_p50_ms": ("≤ 1,000 ms", lambda v: v <= 1000),
    "5_report.one_depot_p50_ms": ("≤ 100 ms", lambda v: v <= 100),
    "6_trace.p50_ms": ("≤ 20 ms", lambda v: v <= 20),
    "7_audit_verify.records_per_s": ("≥ 200,000", lambda v: v >= 200_000),
    "8_memory.second_half_growth_mb": ("≤ 20 MB (flat)", lambda v: v <= 20),
}


def print_table(report: dict[str, Any]) -> None:
    print(f"\nload at start: {report['machine']['uptime']}")
    for backend, result in report["backends"].items():
        print(
            f"\n{backend} ({result['scale']['weapons']:,} weapons, "
            f"{result['scale']['audit_records']:,} synthetic audit records)"
        )
        print(f"  {'measurement':58} {'value':>12}  target")
        seeded = result.get("seed", {}).get("total_s")
        if seeded is not None:
            verdict = "met" if seeded <= 900 else "MISSED"
            print(f"  {'seed.total_s':58} {seeded:>12,.2f}  ≤ 900 s (15 min) {verdict}")
        for name, value in result["measurements"].items():
            if isinstance(value, list):
                continue  # the runs behind a figure, kept in the JSON
            rows = value.items() if isinstance(value, dict) else [("", value)]
            for key, figure in rows:
                if not isinstance(figure, int | float):
                    continue
                if key in ("runs", "load") or key.endswith("_runs_ms"):
                    continue
                label = f"{name}.{key}" if key else name
                target, met = TARGETS.get(label, ("", None))
                verdict = "" if met is None else ("met" if met(figure) else "MISSED")
                print(f"  {label:58} {figure:>12,.2f}  {target} {verdict}")


if __name__ == "__main__":
    main()
