"""The one-hop SQLite adapter (libs.common.sqlite_driver) behaves as the stock aiosqlite one:
rows, rowcount, lastrowid, RETURNING, executemany, errors, and transactions, through the engine
every service uses (``libs.common.db.create_engine``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from libs.common import sqlite_driver
from libs.common.db import create_engine

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), unique=True, nullable=False),
)


async def test_one_hop_statements_behave_like_the_stock_driver(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert isinstance(engine.dialect.dbapi, sqlite_driver.OneHopDbapi)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            first = await conn.execute(insert(items).values(name="a"))
            assert first.inserted_primary_key == (1,)  # lastrowid
            many = await conn.execute(insert(items), [{"name": f"n{i}"} for i in range(5)])
            assert many.rowcount == 5  # executemany
            back = await conn.execute(insert(items).values(name="r").returning(items.c.id))
            assert back.scalar_one() == 7  # RETURNING rows come back with the one hop
            changed = await conn.execute(
                update(items).where(items.c.name.like("n%")).values(name=items.c.name + "x")
            )
            assert changed.rowcount == 5
        async with engine.connect() as conn:
            rows = (await conn.execute(select(items.c.name).order_by(items.c.id))).all()
            assert [r.name for r in rows] == ["a", "n0x", "n1x", "n2x", "n3x", "n4x", "r"]
            result = await conn.execute(select(items).order_by(items.c.id))
            assert result.keys() == ["id", "name"]  # description survives the closed cursor
            assert result.fetchone() == (1, "a") and len(result.fetchmany(2)) == 2
            assert len(result.fetchall()) == 4
            assert (await conn.execute(text("SELECT count(*) FROM items"))).scalar() == 7
        # a failing statement raises the DBAPI error, wrapped as usual, and rolls back
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(items).values(name="z"))
                await conn.execute(insert(items).values(name="a"))
        async with engine.connect() as conn:
            names = (await conn.execute(select(items.c.name))).scalars().all()
            assert "z" not in names and len(names) == 7
    finally:
        await engine.dispose()


async def test_statements_holding_the_write_lock_run_on_the_loop_thread(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _thread_id_function(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("thread_id", 0, threading.get_ident)

    loop_thread = threading.get_ident()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            # inside BEGIN IMMEDIATE: no thread hop, and the statements still work as statements
            assert (await conn.execute(text("SELECT thread_id()"))).scalar() == loop_thread
            await conn.execute(insert(items).values(name="a"))
            assert (await conn.execute(select(func.count()).select_from(items))).scalar() == 1
        # what may wait runs in aiosqlite's thread: here the BEGIN waits for another process's
        # write lock, and the event loop goes on meanwhile
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())

        async def write() -> str | None:
            async with engine.begin() as conn:
                await conn.execute(insert(items).values(name="b"))
                thread: str | None = (await conn.execute(text("SELECT thread_id()"))).scalar()
                return thread

        writing = asyncio.create_task(write())
        await asyncio.sleep(0.2)
        assert not writing.done() and ticks >= 5  # waiting on the lock, not blocking the loop
        other.execute("COMMIT")
        other.close()
        assert await asyncio.wait_for(writing, 10) == loop_thread
        ticker.cancel()
        # a failed statement inside the transaction rolls back and the next one starts afresh
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(items).values(name="c"))
                await conn.execute(insert(items).values(name="a"))
        async with engine.connect() as conn:
            names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars()
            assert list(names) == ["a", "b"]
    finally:
        await engine.dispose()
