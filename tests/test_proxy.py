"""The compose file's nginx configuration (deploy/nginx/stockpile.conf) in front of a real
`inventory serve`, when an nginx binary is installed (Debian: `apt-get install nginx-light`):
it is valid, it buffers slow request bodies so they cost the app no thread, and it refuses
oversized bodies itself. Docker is not needed: the same file, with the upstream pointed at
loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .servers import Server, free_port, issue_token
from .test_serving import SLOW_SOCKETS

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def test_compose_publishes_only_the_proxy() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx/stockpile.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    assert services["api"]["environment"]["INVENTORY_TRUSTED_PROXIES"] == "1"
    conf = (ROOT / "deploy/nginx/stockpile.conf").read_text()
    for directive in (
        "client_max_body_size 8m;",
        "client_header_timeout",
        "client_body_timeout",
        "proxy_request_buffering on;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "server api:8000;",
    ):
        assert directive in conf, directive


@pytest.fixture
def proxied(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, int]]:
    if NGINX is None:
        pytest.skip("no nginx binary here (apt-get install nginx-light)")
    with Server(database_url, tmp_path / "app", workers=2) as server:
        port = free_port()
        site = (ROOT / "deploy/nginx/stockpile.conf").read_text()
        site = site.replace("server api:8000;", f"server 127.0.0.1:{server.port};")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
        run = tmp_path / "nginx"
        run.mkdir()
        run.chmod(0o777)
        (run / "site.conf").write_text(site)
        (run / "nginx.conf").write_text(
            f"""
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    include {run}/site.conf;
}}
"""
        )
        checked = subprocess.run(
            [NGINX, "-t", "-c", str(run / "nginx.conf"), "-p", str(run)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, checked.stderr
        nginx = subprocess.Popen(
            [NGINX, "-c", str(run / "nginx.conf"), "-p", str(run)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield server, port
        finally:
            nginx.terminate()
            nginx.wait(20)


def get(port: int, path: str) -> tuple[int, float]:
    began = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return 0, float("inf")
    return int(data.split(b" ", 2)[1]), time.monotonic() - began


def test_slow_bodies_wait_in_nginx_not_in_the_app(
    proxied: tuple[Server, int], database_url: str
) -> None:
    server, port = proxied
    token = issue_token(database_url, "admin")
    stop = threading.Event()
    slow = []
    for _ in range(SLOW_SOCKETS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(
            f"POST /api/v1/movements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[".encode()
        )
        slow.append(sock)

    def drip() -> None:
        while not stop.wait(1):
            for sock in slow:
                try:
                    sock.sendall(b" ")
                except OSError:
                    pass

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        time.sleep(1.5)
        answers = [get(port, "/healthz") for _ in range(20)]
    finally:
        stop.set()
        dripper.join()
        for sock in slow:
            sock.close()
    assert all(status == 200 for status, _ in answers), answers
    # served directly, 50 such bodies hold every app thread (notes/16.md); through nginx they
    # wait in nginx's buffers
    assert sorted(seconds for _, seconds in answers)[-2] < 2.5, answers


def test_nginx_refuses_oversized_bodies_itself(proxied: tuple[Server, int]) -> None:
    _server, port = proxied
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/movements HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 9437184\r\nConnection: close\r\n\r\n"
        )
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
