"""The README's walkthrough runs as written: every fenced block containing `curl` (except those
marked `sh illustrative`) runs, in order, in one shell against a live `inventory serve` on a
fresh, seeded SQLite database, twice over (re-running the walkthrough must be safe), with no
settings a newcomer would not have. A block fails on a non-zero exit (its curls use
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


DETAIL = re.compile(r'"detail": "([^"]*)"')


def expected_details(readme: str) -> dict[int, str]:
    """For runnable block i, the `detail` of the answer the README shows right after it (a
    `json illustrative` block), when it shows one: the walkthrough must answer just that."""
    fences = FENCE.findall(readme)
    expected: dict[int, str] = {}
    number = 0
    for index, (info, body) in enumerate(fences):
        if "curl" not in body or "illustrative" in info.split():
            continue
        number += 1
        following = fences[index + 1] if index + 1 < len(fences) else ("", "")
        if following[0].split()[:2] == ["json", "illustrative"]:
            if found := DETAIL.search(following[1]):
                expected[number] = found.group(1)
    return expected


def test_the_readme_carries_its_own_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme and "shared/" not in readme
    for page in ("docs/design.md", "docs/operations.md"):
        assert f"]({page})" in readme and (ROOT / page).is_file(), page


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


def newcomer_environment(instance: Path) -> dict[str, str]:
    """What a newcomer's shell has: no INVENTORY_* settings at all, except the instance folder
    (so that the test does not use the checkout's own `instance/`)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("INVENTORY_")}
    return {**env, "INVENTORY_INSTANCE_DIR": str(instance)}


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_every_readme_curl_block_runs_against_a_live_server_twice(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = walkthrough_blocks(readme)
    assert len(blocks) >= 5, "the README walkthrough lost its curl blocks"
    details = expected_details(readme)
    assert details, "the README shows no expected refusal (the webhook step shows one)"
    port = free_port()
    instance = tmp_path / "instance"
    env = newcomer_environment(instance)
    # What `make run` runs before it serves.
    for command in (["db", "upgrade"], ["keys", "init"], ["demo", "prepare"]):
        subprocess.run(
            [BIN / "inventory", *command], env=env, cwd=tmp_path, check=True, capture_output=True
        )
    tokens = json.loads((instance / "demo-tokens.json").read_text())
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
        runs = [(run, number, block) for run in (1, 2) for number, block in enumerate(blocks, 1)]
        for run, number, block in runs:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                env=shell_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (
                f"README curl block {number} failed on run {run} ({done.returncode}):\n{block}\n"
                f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
            )
            if number in details:
                assert details[number] in done.stdout, (number, details[number], done.stdout)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
