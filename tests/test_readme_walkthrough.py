"""The README's walkthrough runs as written: every fenced block containing `curl` (except those
marked `sh illustrative`) runs, in order, in one shell against a live `inventory serve` on a
fresh, seeded SQLite database. A block fails on a non-zero exit (its curls use
--fail-with-body)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BIN = Path(sys.executable).parent


def walkthrough_blocks(readme: str) -> list[str]:
    """The runnable blocks: fenced, containing `curl`, not marked illustrative."""
    return [
        body
        for info, body in FENCE.findall(readme)
        if "curl" in body and "illustrative" not in info.split()
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_healthy(url: str, server: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"inventory serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not become healthy in {seconds} s")


def test_the_parser_finds_blocks_and_skips_illustrative_ones() -> None:
    readme = (
        "```sh illustrative\ncurl $NOPE\n```\ntext\n```sh\ncurl -s a\n```\n```sh\nmake run\n```\n"
    )
    assert walkthrough_blocks(readme) == ["curl -s a\n"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_every_readme_curl_block_runs_against_a_live_server(tmp_path: Path) -> None:
    blocks = walkthrough_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "the README walkthrough lost its curl blocks"
    port = free_port()
    env = {
        **os.environ,
        "INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
        "INVENTORY_INSTANCE_DIR": str(tmp_path),
        "INVENTORY_SIGNING_KEY": str(tmp_path / "audit-signing-key.pem"),
        "INVENTORY_LOG_LEVEL": "WARNING",
        # The walkthrough's webhook host need not resolve here (tests run offline).
        "INVENTORY_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    for command in (["db", "upgrade"], ["demo", "prepare"]):
        subprocess.run(
            [BIN / "inventory", *command], env=env, cwd=tmp_path, check=True, capture_output=True
        )
    tokens = json.loads((tmp_path / "demo-tokens.json").read_text())
    server = subprocess.Popen(
        [BIN / "inventory", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, server)
        shell_env = {
            **env,
            "API": f"{base}/api/v1",
            **{role.upper(): secret for role, secret in tokens.items()},
        }
        for number, block in enumerate(blocks, start=1):
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                env=shell_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (
                f"README curl block {number} failed ({done.returncode}):\n{block}\n"
                f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
