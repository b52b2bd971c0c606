"""Alembic, driven from code: each service keeps its own ``migrations/`` folder and database.

Replicas of a service start together and each migrates on start (or a one-shot ``ce migrate`` runs
beside them): on PostgreSQL the upgrade holds a transaction-level advisory lock, so one process
migrates while the others wait, then find the database at head and do nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from libs.common.db import create_engine

# pg_advisory_xact_lock key of every migration run; advisory locks are scoped to one database, so
# services on their own databases never wait for each other.
MIGRATION_LOCK_KEY = 0x6365_6D69_6772  # "cemigr"


def lock_for_migration(connection: Connection) -> None:
    """Serialise migrations of one PostgreSQL database until the transaction ends (no-op elsewhere).

    Taken before Alembic reads ``alembic_version``, so a waiter sees the winner's revision."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def alembic_config(migrations_dir: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


def upgrade(migrations_dir: Path, url: str, revision: str = "head") -> None:
    """Run in a thread of its own: env.py starts its own event loop."""
    command.upgrade(alembic_config(migrations_dir, url), revision)


async def upgrade_async(migrations_dir: Path, url: str) -> None:
    await asyncio.to_thread(upgrade, migrations_dir, url)


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def do_run(connection: Connection) -> None:
        lock_for_migration(connection)  # opens the transaction the whole upgrade runs in
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def run_async() -> None:
        engine = create_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())
