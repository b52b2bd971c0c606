"""``BulkInsert``, the multi-row insert of the learning-record ingest (and of claims booking a
chunk of them), on SQLite and on PostgreSQL: rows whose key exists are skipped, ``RETURNING``
names only the rows actually inserted, values go through their column types, and a batch larger
than the database's parameter limit is split into several statements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    event,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.db import (
    MAX_VARIABLES,
    BulkInsert,
    UTCDateTime,
    create_engine,
    create_sessionmaker,
    utcnow,
)

metadata = MetaData()
rows_table = Table(
    "bulk_rows",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source", String(20), nullable=False),
    Column("ref", String(40), nullable=False),
    Column("hours", Numeric(8, 1, asdecimal=True), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("note", String(40)),
    Column("n", Integer, default=0),
)
COLUMNS = ["id", "source", "ref", "hours", "at", "note", "n"]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bulk.db'}"
    make: Callable[[str], str] = request.getfixturevalue("make_pg_database")
    return make("bulk")


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[tuple[AsyncSession, list[str]]]:
    """A session on a fresh database with the table, and the INSERTs it runs."""
    engine = create_engine(database_url)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    async with create_sessionmaker(engine)() as s:
        yield s, statements
    await engine.dispose()


def _row(n: int, at: datetime, **overrides: Any) -> dict[str, Any]:
    return {
        "id": f"row-{n}",
        "source": "city",
        "ref": f"ref-{n}",
        "hours": Decimal("1.5"),
        "at": at,
        "note": None,
        "n": n,
        **overrides,
    }


async def test_existing_keys_are_skipped_and_returning_names_only_new_rows(
    session: tuple[AsyncSession, list[str]],
) -> None:
    s, statements = session
    bulk = BulkInsert(rows_table, COLUMNS, conflict=["id"], returning=["id", "n"])
    now = utcnow()
    async with s.begin():
        first = await bulk.execute(s, [_row(n, now) for n in range(5)])
    assert sorted(first) == [(f"row-{n}", n) for n in range(5)]
    assert len(statements) == 1  # one multi-row statement for the five

    later = now + timedelta(hours=1)
    # rows 3 and 4 again (with other values: the stored ones stay), 5 and 6 new, 6 twice
    again = [_row(n, later, ref="changed") for n in (3, 4, 5, 6)] + [_row(6, later)]
    async with s.begin():
        second = await bulk.execute(s, again[:4])
        third = await bulk.execute(s, again[4:])
    assert sorted(second) == [("row-5", 5), ("row-6", 6)]
    assert third == []
    async with s.begin():
        stored = {r.id: r for r in await s.execute(select(rows_table))}
    assert sorted(stored) == [f"row-{n}" for n in range(7)]
    assert stored["row-3"].ref == "ref-3" and stored["row-3"].at == now
    assert stored["row-5"].ref == "changed"
    # the column types did their work: an aware UTC time back, a decimal, a NULL
    assert stored["row-5"].at == later and stored["row-5"].at.tzinfo is not None
    assert stored["row-0"].hours == Decimal("1.5") and stored["row-0"].note is None


async def test_a_batch_beyond_the_parameter_limit_is_split_into_several_statements(
    session: tuple[AsyncSession, list[str]],
) -> None:
    s, statements = session
    dialect = s.get_bind().dialect.name
    bulk = BulkInsert(rows_table, COLUMNS, conflict=["id"], returning=["id"], chunk=100_000)
    per_statement = bulk.rows_per_statement(dialect)
    assert (
        per_statement * len(COLUMNS) <= MAX_VARIABLES[dialect] < (per_statement + 1) * len(COLUMNS)
    )
    count = per_statement * 2 + 7
    at = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    async with s.begin():
        new = await bulk.execute(s, [_row(n, at) for n in range(count)])
    assert len(new) == len({r[0] for r in new}) == count
    assert len(statements) == 3
    async with s.begin():
        stored = await s.scalar(select(func.count()).select_from(rows_table))
        sums = await s.scalar(select(func.sum(rows_table.c.n)))
    assert stored == count and sums == count * (count - 1) // 2


async def test_without_a_conflict_target_any_unique_conflict_is_skipped(
    session: tuple[AsyncSession, list[str]],
) -> None:
    s, _ = session
    bulk = BulkInsert(rows_table, COLUMNS)
    async with s.begin():
        assert await bulk.execute(s, [_row(1, utcnow())]) == []
        await bulk.execute(s, [_row(1, utcnow()), _row(2, utcnow())])
        assert await s.scalar(select(func.count()).select_from(rows_table)) == 2


def test_columns_are_checked_when_the_insert_is_declared() -> None:
    with pytest.raises(ValueError, match="no column nope"):
        BulkInsert(rows_table, [*COLUMNS, "nope"])
    # a column with a Python-side default must be given: the defaults are not applied
    with pytest.raises(ValueError, match="give n"):
        BulkInsert(rows_table, [c for c in COLUMNS if c != "n"])
