"""Every service's migrations build exactly the schema its models declare, on SQLite and on
PostgreSQL, and downgrade cleanly: the models and the migration history never drift apart."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ce.topology import SERVICES
from libs.common.db import create_engine
from libs.common.migrations import alembic_config, upgrade


def _url(kind: str, service: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}"
    make: Callable[[str], str] = request.getfixturevalue("make_pg_database")
    return make(f"mig_{service}")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_models_and_downgrade(
    service: str, kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    module = importlib.import_module(f"services.{service}.main")
    models = importlib.import_module(f"services.{service}.models")
    url = _url(kind, service, tmp_path, request)
    upgrade(module.SPEC.migrations_dir, url)

    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, models.Base.metadata))

    assert asyncio.run(_inspect(url, diff)) == []

    from alembic import command

    command.downgrade(alembic_config(module.SPEC.migrations_dir, url), "base")
    tables = asyncio.run(_inspect(url, lambda c: inspect(c).get_table_names()))
    assert set(tables) <= {"alembic_version"}


async def _inspect(url: str, fn: Callable[[Any], Any]) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()
