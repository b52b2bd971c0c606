"""The process supervisor of ``ce run``: one child process per service, the simulator and the
console (``python -m ce serve NAME``), each with its port and database, started together,
watched, and stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ce.topology import CONSOLE, SERVICES, SIMULATOR
from libs.common.settings import service_process_env


class Supervisor:
    """Starts, health-checks and stops the processes of ``ce run``.

    Each child gets ``CE_SERVICE``, ``CE_PORT``, its own database (``CE_<NAME>_DATABASE_URL`` and
    ``CE_<NAME>_DATABASE_PASSWORD[_FILE]``, else SQLite under the data directory) and the
    simulator's URL; the console gets ``CE_CONSOLE_PORT`` and every service's URL; output goes to
    ``<log_dir>/<name>.log``, or to this terminal when ``log_dir`` is ``None``."""

    def __init__(self, ports: dict[str, int], log_dir: Path | None) -> None:
        self.ports = ports
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def start(self) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        urls = self.urls()
        for name in self.ports:
            if name == CONSOLE:
                env = dict(os.environ, CE_CONSOLE_PORT=str(self.ports[name]))
                env.update({f"CE_{s.upper()}_URL": urls[s] for s in SERVICES if s in urls})
            else:
                env = service_process_env(name, os.environ)
                env.update({"CE_SERVICE": name, "CE_PORT": str(self.ports[name])})
                env.setdefault("CE_PROVINCE_URL", urls[SIMULATOR])
            out = None if self.log_dir is None else (self.log_dir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "ce", "serve", name],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
            )

    def wait_healthy(self, timeout: float) -> None:
        """Until every ``/healthz`` answers 200; raises if a process exits or time runs out."""
        deadline = time.monotonic() + timeout
        pending = dict(self.ports)
        while pending:
            for name, port in list(pending.items()):
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited with code {self.procs[name].returncode}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}")
            time.sleep(0.2)

    def wait_for_an_exit(self) -> list[str]:
        """Block while every process runs; the names of those that exited."""
        while all(p.poll() is None for p in self.procs.values()):
            time.sleep(0.5)
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to every process still running, then wait (killing the ones that hang)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
