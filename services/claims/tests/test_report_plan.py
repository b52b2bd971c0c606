"""The compliance report's page statement on PostgreSQL right after a bulk import, before any
statistics exist (autovacuum has not analysed the new rows yet): each person's ledger rows are
found through the index, never by scanning the whole ledger for each person.

With the sums as a join, PostgreSQL without statistics chose a nested loop over a sequential scan
of the ledger: the city report of 20,000 people took 90 s instead of 0.6 s (bench
``system-pg.report_csv``). The plan is read with ``EXPLAIN``; nothing is timed here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from services.claims import compliance, rules
from services.claims.scope import CITY
from services.claims.tests.harness import claims_stack

pytestmark = pytest.mark.postgres

PERSONS = 3_000
LEDGER = 15_000


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


async def test_a_report_page_reads_each_persons_ledger_through_the_index_without_statistics(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    url = await asyncio.to_thread(make_pg_database, "report_plan")
    async with (
        claims_stack(tmp_path, url) as stack,
        stack.app.state.service.sessionmaker() as session,
    ):
        # a bulk import, as `ce import-persons` and a year of learning records leave it
        await session.execute(
            text(
                "INSERT INTO persons (id, id_number, name, affiliation_kind, org_id, "
                "created_at, updated_at) SELECT 'p' || lpad(g::text, 6, '0'), "
                "lpad(g::text, 18, '0'), '职工' || g, 'unit', 'org-u', now(), now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": PERSONS},
        )
        await session.execute(
            text(
                "INSERT INTO ledger (id, person_id, year, subject, hours, source, ref, "
                "created_at, updated_at) SELECT 'l' || g, "
                "'p' || lpad((g % :persons + 1)::text, 6, '0'), 2026, "
                "CASE WHEN g % 2 = 0 THEN 'public' ELSE 'professional' END, 0.5, "
                "'city_platform', 'r' || g, now(), now() FROM generate_series(1, :n) g"
            ),
            {"persons": PERSONS, "n": LEDGER},
        )
        await session.commit()
        analysed = await session.scalar(
            text(
                "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL "
                "FROM pg_stat_user_tables WHERE relname = 'ledger'"
            )
        )
        statement = compliance.chunk_statement(rules.load_ruleset(2026), CITY, None, 1001)
        sql = statement.compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
        [(plan,)] = (await session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"))).all()
        rows = (await session.execute(statement)).all()
    tree = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    shown = json.dumps(tree, indent=1)
    on_ledger = [n for n in nodes(tree) if n.get("Relation Name") == "ledger"]
    assert on_ledger, "the ledger is read"
    # every read of the ledger looks up one person's rows (the bad plan read all of the
    # year's rows and compared each with every person in a join filter)
    for node in on_ledger:
        assert "person_id" in node.get("Index Cond", ""), shown
    assert not any("ledger.person_id" in n.get("Join Filter", "") for n in nodes(tree)), shown
    assert analysed, "the point is a plan without statistics: nothing had analysed the ledger"
    # and the page is right: 1,001 persons in keyset order, 5 ledger rows of 0.5 h each
    assert len(rows) == 1001 and [r.id for r in rows] == sorted(r.id for r in rows)
    assert rows[0].id == "p000001"
    assert float(rows[0].public or 0) + float(rows[0].professional or 0) == 2.5
