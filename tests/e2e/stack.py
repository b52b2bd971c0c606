"""Run the real system as processes for end-to-end tests: ``ce run`` (embedded) or one
``ce serve`` per service (distributed), on free loopback ports, with a private data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ce.topology import CONSOLE, PROCESSES, SERVICES
from libs.common.auth import TokenService
from libs.common.settings import Settings
from tests.support import OpenApiResponses, free_port

ROOT = Path(__file__).resolve().parents[2]
NAMES = PROCESSES


@dataclass
class Stack:
    data_dir: Path
    ports: dict[str, int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def client(self, timeout: float) -> httpx.Client:
        """An HTTP client that checks every 2xx JSON response of a service against that
        service's own OpenAPI document (fetched once per service)."""
        service_of = {port: name for name, port in self.ports.items() if name in SERVICES}
        checkers: dict[int, OpenApiResponses] = {}

        def check(response: httpx.Response) -> None:
            port = response.request.url.port
            if port is None or port not in service_of:
                return
            if port not in checkers:
                document = httpx.get(f"{self.url(service_of[port])}/openapi.json", timeout=10)
                checkers[port] = OpenApiResponses(document.json())
            response.read()
            checkers[port].check(response)

        return httpx.Client(timeout=timeout, event_hooks={"response": [check]})

    def ce(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``ce`` CLI against this stack's data directory (its dev signing key)."""
        return subprocess.run(
            [sys.executable, "-m", "ce", *args],
            cwd=ROOT,
            env={**os.environ, "CE_DATA_DIR": str(self.data_dir)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def token(self, role: str, **kw: str | None) -> str:
        settings = Settings(data_dir=self.data_dir)
        return TokenService(settings).mint(role=role, **kw)  # type: ignore[arg-type]

    def wait_healthy(self, timeout_s: float = 60.0) -> float:
        start = time.monotonic()
        pending = set(NAMES)
        while pending:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a process exited early:\n{self.tail()}")
            for name in list(pending):
                try:
                    if httpx.get(self.url(name) + "/healthz", timeout=1).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"not healthy: {pending}\n{self.tail()}")
            time.sleep(0.2)
        return time.monotonic() - start

    def tail(self, chars: int = 6000) -> str:
        return "\n".join(p.read_text(errors="replace")[-chars:] for p in self.logs if p.exists())

    def stop(self, timeout_s: float = 20.0) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(None)
        return codes


def _env(stack: Stack, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CE_")}
    env.update({"CE_DATA_DIR": str(stack.data_dir), "PYTHONUNBUFFERED": "1"})
    env.update({f"CE_{n.upper()}_PORT": str(p) for n, p in stack.ports.items()})
    env["CE_PROVINCE_URL"] = stack.url("province")
    env.update(extra)
    return env


def start_embedded(
    data_dir: Path, extra_env: Mapping[str, str] | None = None, *, demo: bool = False
) -> Stack:
    """``ce run``: the README's way, one command for everything (the console included, on a
    free port of its own)."""
    stack = Stack(data_dir, {n: free_port() for n in (*NAMES, CONSOLE)})
    log = data_dir / "ce-run.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    stack.logs.append(log)
    stack.procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "ce", "run", *(["--demo"] if demo else [])],
            cwd=ROOT,
            env=_env(stack, extra_env or {}),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
    )
    return stack


def serve(stack: Stack, name: str, extra_env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``ce serve NAME`` for ``stack`` (its log appended to ``NAME.log``)."""
    env = _env(stack, {"CE_SERVICE": name, "CE_PORT": str(stack.ports[name]), **extra_env})
    log = stack.data_dir / f"{name}.log"
    if log not in stack.logs:
        stack.logs.append(log)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ce", "serve", name],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    stack.procs.append(proc)
    return proc


def start_distributed(
    data_dir: Path,
    database_urls: Mapping[str, str],
    bootstrap: str,
    extra_env: Mapping[str, str] | None = None,
) -> Stack:
    """One process per service on PostgreSQL and the Kafka-protocol broker (producer
    idempotence off: Tansu does not grant producer ids). The benchmark starts it this way too."""
    stack = Stack(data_dir, {n: free_port() for n in NAMES})
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        serve(
            stack,
            name,
            {
                "CE_BUS": "kafka",
                "CE_KAFKA_BOOTSTRAP": bootstrap,
                "CE_KAFKA_IDEMPOTENCE": "false",
                "CE_KAFKA_SEND_TIMEOUT_S": "3",
                "CE_KAFKA_FETCH_MAX_WAIT_MS": "50",  # Tansu holds a fetch for all of it
                **({"CE_DATABASE_URL": database_urls[name]} if name in database_urls else {}),
                **(extra_env or {}),
            },
        )
    return stack
