"""Alembic, driven from code: each service keeps its own ``migrations/`` folder and database.

Replicas of a service start together and each migrates on start (or a one-shot ``ce migrate`` runs
beside them): on PostgreSQL the upgrade holds a transaction-level advisory lock, so one process
migrates while the others wait, then find the database at head and do nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from libs.common.db import create_engine
from libs.common.settings import Settings, own_database_env, read_setting_file

# pg_advisory_xact_lock key of every migration run; advisory locks are scoped to one database, so
# services on their own databases never wait for each other.
MIGRATION_LOCK_KEY = 0x6365_6D69_6772  # "cemigr"


def lock_for_migration(connection: Connection) -> None:
    """Serialise migrations of one PostgreSQL database until the transaction ends (no-op elsewhere).

    Taken before Alembic reads ``alembic_version``, so a waiter sees the winner's revision."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


class AmbiguousDatabase(ValueError):
    """Several services would migrate the one database CE_DATABASE_URL names."""


def migration_settings(
    services: Sequence[str], environ: Mapping[str, str] | None = None
) -> dict[str, Settings]:
    """The settings each service migrates with: its own ``CE_<SERVICE>_DATABASE_URL`` and
    ``CE_<SERVICE>_DATABASE_PASSWORD[_FILE]`` when set (as ``ce run`` and compose's ``migrate`` job
    give them: each service connects as a role of its own), else ``CE_DATABASE_URL`` for a single
    service, else the embedded SQLite file of each. ``CE_DATABASE_URL`` alone names one database,
    and every service has its own: migrating several services onto it is refused."""
    environ = os.environ if environ is None else environ
    out: dict[str, Settings] = {}
    for name in services:
        own_env = own_database_env(name, environ)
        own: dict[str, Any] = {}
        if "CE_DATABASE_URL" in own_env:
            own["database_url"] = own_env["CE_DATABASE_URL"]
        if "CE_DATABASE_PASSWORD" in own_env:
            own["database_password"] = own_env["CE_DATABASE_PASSWORD"]
        elif "CE_DATABASE_PASSWORD_FILE" in own_env:
            variable = f"CE_{name.upper()}_DATABASE_PASSWORD_FILE"
            own["database_password"] = read_setting_file(
                variable, own_env["CE_DATABASE_PASSWORD_FILE"]
            )
        settings = Settings(service=name, **own)
        if "database_url" not in own and settings.database_url and len(services) > 1:
            missing = [
                f"CE_{n.upper()}_DATABASE_URL"
                for n in services
                if not environ.get(f"CE_{n.upper()}_DATABASE_URL")
            ]
            raise AmbiguousDatabase(
                "CE_DATABASE_URL names one database but each service has its own: set "
                f"{', '.join(missing)} (or migrate one service at a time)"
            )
        out[name] = settings
    return out


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
