"""The embedded stack listens on loopback only: ``ce serve`` by default, and ``ce run``'s
children whatever ``CE_HOST`` the environment sets (it has the dev sign-in and no proxy in
front; production runs behind nginx, see deploy/README.md)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ce.supervisor import Supervisor
from ce.topology import PROCESSES, run_ports
from tests.support import eventually, free_port

ROOT = Path(__file__).resolve().parents[1]


def listening_on(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on ``port`` (from /proc/net)."""
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        if not os.path.exists(table):
            continue
        with open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                    continue
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_ce_run_children_listen_on_loopback_whatever_the_environment() -> None:
    supervisor = Supervisor(run_ports({}), None)
    for name in PROCESSES:
        env = supervisor.child_env(name, {**os.environ, "CE_HOST": "0.0.0.0"})
        assert env["CE_HOST"] == "127.0.0.1", name


@pytest.mark.subprocess
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_ce_serve_binds_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CE_HOST"}
    env.update({"CE_SERVICE": "province", "CE_PORT": str(port), "CE_DATA_DIR": str(tmp_path)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ce", "serve", "province"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up() -> bool:
            assert proc.poll() is None, "ce serve exited"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").is_success
            except httpx.HTTPError:
                return False

        eventually(up, 60, "ce serve province")
        assert listening_on(port) == {"127.0.0.1"}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
