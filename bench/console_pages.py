"""How long each console page takes to render on the demo scenario, per role: the first request
(cold: the overview's month-end reports not yet kept) and the best of five after.

    .venv/bin/python bench/console_pages.py [sqlite | postgresql+psycopg://...]

Server time only (Flask's test client, no network, no browser paint)."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from inventory import create_app, demo
from inventory.db.engine import make_engine, make_session_factory
from inventory.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import scratch_database  # noqa: E402

PAGES = (
    "/console/",
    "/console/discrepancies",
    "/console/discrepancies?depot=D-EAST&status=open",
    "/console/weapons?manufacturer=KOVAR+ARMS+WORKS&item_type=AKM",
    "/console/weapons/{weapon}",
    "/console/discrepancies/{case}",
    "/console/transfers",
    "/console/verifications",
    "/console/alerts",
    "/console/report",
    "/console/report?format=csv",
    "/console/report?format=pdf",
)
ROLES = ("auditor", "monitor", "clerk")


def main(server: str) -> None:
    with tempfile.TemporaryDirectory() as folder, scratch_database(server, "console") as url:
        settings = Settings(
            database_url=url,
            instance_dir=Path(folder),
            signing_key_path=Path(folder) / "key.pem",
            log_level="WARNING",
        )
        engine = make_engine(url)
        with make_session_factory(engine)() as session:
            tokens = demo.prepare(session, settings)
        engine.dispose()
        app = create_app({"SETTINGS": settings})
        print(f"{'role':8} {'cold ms':>8} {'best ms':>8}  page")
        for role in ROLES:
            client = app.test_client()
            form = client.get("/console/sign-in").get_data(as_text=True)
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert csrf
            client.post("/console/sign-in", data={"token": tokens[role], "csrf_token": csrf[1]})
            listing = client.get("/console/discrepancies").get_data(as_text=True)
            case = re.search(r"/console/discrepancies/([0-9a-f-]{36})", listing)
            found = client.get("/console/weapons?serial=KA94-01009").get_data(as_text=True)
            weapon = re.search(r"/console/weapons/([0-9a-f-]{36})", found)
            for page in PAGES:
                path = page.format(
                    case=case[1] if case else "none", weapon=weapon[1] if weapon else "none"
                )
                times = []
                for _ in range(6):
                    start = time.perf_counter()
                    response = client.get(path)
                    response.get_data()
                    times.append((time.perf_counter() - start) * 1000)
                    response.close()
                status = response.status_code
                print(f"{role:8} {times[0]:8.1f} {min(times[1:]):8.1f}  {status} {path}")
        app.extensions["inventory.engine"].dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite")
