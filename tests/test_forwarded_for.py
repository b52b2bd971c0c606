"""A client's ``X-Forwarded-For`` never resets a per-address limit.

In process: the server ``ce serve`` builds (uvicorn, its configuration from the settings)
believes no forwarding header by default, so 75 public certificate lookups with a fresh
``X-Forwarded-For`` each still spend one address's budget; behind a trusted proxy the client is
the right-most untrusted entry. Through a real nginx (Debian's, with a configuration generated
from deploy/nginx/nginx.conf) in front of ``ce serve registry``: nginx replaces what the client
wrote, so the limit holds there too."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from ce.cli import server_config
from libs.common.settings import Settings
from services.registry.main import create_app
from tests.support import eventually, free_port

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LOOKUP = "/v1/certificates/ZZCE2026-AAAA-BBBB-CCCC-DDDD"  # a well-formed code nobody holds


@asynccontextmanager
async def served_registry(tmp_path: Path, **settings: str) -> AsyncIterator[str]:
    """The registry app served by uvicorn as ``ce serve`` configures it, on a free port."""
    config = Settings(
        service="registry",
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        port=free_port(),
        **settings,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(server_config(create_app(config), config))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(300):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def statuses(url: str, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=url, timeout=10) as http:
        return [
            http.get(LOOKUP, headers={"X-Forwarded-For": value}).status_code for value in forwarded
        ]


async def test_a_fresh_forwarded_for_per_request_gets_429s(tmp_path: Path) -> None:
    """The embedded default trusts no forwarding header: 75 lookups (60 a minute allowed per
    address) from one address with 75 different X-Forwarded-For are refused past the budget."""
    async with served_registry(tmp_path) as url:
        codes = await asyncio.to_thread(statuses, url, [f"198.51.100.{i}" for i in range(75)])
    assert set(codes) == {404, 429}
    assert codes[:60] == [404] * 60 and codes.count(429) >= 10, codes


async def test_behind_a_proxy_the_client_is_the_right_most_untrusted_entry(
    tmp_path: Path,
) -> None:
    """Trusting the proxy on 127.0.0.1, the client is the entry the proxy appended (the
    right-most not trusted), not the one the client wrote in front of it."""
    async with served_registry(tmp_path, forwarded_allow_ips="127.0.0.1") as url:
        forged = [f"198.51.100.{i}, 203.0.113.7" for i in range(75)]
        codes = await asyncio.to_thread(statuses, url, forged)
        assert codes.count(429) >= 10, codes
        # another client behind the same proxy has a budget of its own
        assert await asyncio.to_thread(statuses, url, ["203.0.113.8"]) == [404]


def nginx_config(conf: str, tmp: Path, listen: int, upstreams: dict[str, int]) -> str:
    """deploy/nginx/nginx.conf for one machine without Docker: loopback ports instead of the
    compose DNS names (no resolver; `resolve` needs nginx 1.27.3+), files under ``tmp``."""
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;")
    conf = re.sub(r"^\s*resolver(_timeout)? [^;]*;\n", "", conf, flags=re.M)
    for name, port in upstreams.items():
        conf, n = re.subn(rf"server {name}:\d+ resolve", f"server 127.0.0.1:{port}", conf)
        assert n == 1, name
    conf, n = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen};", conf)
    assert n == 1
    conf = conf.replace("access_log /dev/stdout;", f"access_log {tmp}/access.log;")
    conf = conf.replace("error_log /dev/stderr warn;", f"error_log {tmp}/error.log warn;")
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return conf.replace("http {\n", "http {\n" + temp_paths, 1)


@pytest.mark.subprocess
def test_through_nginx_a_client_written_forwarded_for_does_not_reset_the_limit(
    tmp_path: Path,
) -> None:
    ports = {name: free_port() for name in ("claims", "review", "registry", "sync", "console")}
    gateway = free_port()
    conf_text = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(conf_text, tmp_path, gateway, ports), encoding="utf-8")
    env = {
        **os.environ,
        "CE_SERVICE": "registry",
        "CE_PORT": str(ports["registry"]),
        "CE_DATA_DIR": str(tmp_path / "data"),
        "CE_FORWARDED_ALLOW_IPS": "127.0.0.1",  # the proxy, and only it
        "CE_REGISTRY_VERIFY_LIMIT": "20",
    }
    log = (tmp_path / "registry.log").open("wb")
    registry = subprocess.Popen(
        [sys.executable, "-m", "ce", "serve", "registry"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    nginx: subprocess.Popen[bytes] | None = None
    try:

        def healthy() -> bool:
            assert registry.poll() is None, (tmp_path / "registry.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{ports['registry']}/healthz").is_success
            except httpx.HTTPError:
                return False

        eventually(healthy, 60, "the registry")
        args = [NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)]
        check = subprocess.run(
            [*args, "-t"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stderr
        nginx = subprocess.Popen(
            [*args, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{gateway}/registry"

        def through() -> bool:
            try:
                return httpx.get(f"{base}/healthz").is_success
            except httpx.HTTPError:
                return False

        eventually(through, 30, "nginx")
        codes = statuses(base, [f"198.51.100.{i}" for i in range(30)])
        assert codes[:20] == [404] * 20 and codes.count(429) >= 8, codes
        with httpx.Client(timeout=10) as http:
            refused = http.get(base + LOOKUP, headers={"X-Forwarded-For": "192.0.2.1"})
        # the service's own limit answered (a problem), not nginx's coarser one
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    finally:
        for proc in (nginx, registry):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log.close()
