"""Every service's migrations build exactly the schema its models declare, on SQLite and on
PostgreSQL, and downgrade cleanly: the models and the migration history never drift apart."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
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

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow


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


async def _advisory_waiters(conn: Any, key: int) -> int:
    # a bigint key shows in pg_locks as classid (high 32 bits) and objid (low 32 bits)
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid::bigint = $1 AND objid::bigint = $2",
            key >> 32,
            key & 0xFFFFFFFF,
        )
    )


@pytest.mark.postgres
def test_two_processes_migrating_one_database_both_succeed(
    make_pg_database: Callable[[str], str],
) -> None:
    """Two replicas of claims starting together on a fresh database: both migrate, one waits for
    the other's advisory lock. The test holds the lock first so that both are provably waiting for
    it (without the lock they would race straight into ``CREATE TABLE`` and one would fail)."""
    url = make_pg_database("mig_race")
    asyncio.run(_migrate_twice_at_once(url))


REPO = Path(__file__).resolve().parents[1]


async def _migrate_twice_at_once(url: str) -> None:
    import asyncpg

    from libs.common.migrations import MIGRATION_LOCK_KEY

    module = importlib.import_module("services.claims.main")
    script = (
        "import sys; from pathlib import Path; from libs.common.migrations import upgrade; "
        "upgrade(Path(sys.argv[1]), sys.argv[2])"
    )
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    holder = await asyncpg.connect(dsn)
    procs: list[asyncio.subprocess.Process] = []
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        for _ in range(2):
            procs.append(
                await asyncio.create_subprocess_exec(
                    *(sys.executable, "-c", script, str(module.SPEC.migrations_dir), url),
                    cwd=REPO,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            )
        for _ in range(300):  # both processes queue behind the lock (bounded: 30 s)
            if await _advisory_waiters(holder, MIGRATION_LOCK_KEY) == 2:
                break
            assert all(p.returncode is None for p in procs), "a migration ran without the lock"
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the two migrations never waited for the advisory lock")
        assert await holder.fetchval("SELECT to_regclass('alembic_version')") is None
        await tx.commit()  # release: both start at once
        results = [await asyncio.wait_for(p.communicate(), timeout=120) for p in procs]
        for proc, (_, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err.decode()[-2000:]
        heads = await holder.fetch("SELECT version_num FROM alembic_version")
        assert len(heads) == 1
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await holder.close()

    def diff(sync_conn: Any) -> list[Any]:
        models = importlib.import_module("services.claims.models")
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, models.Base.metadata))

    assert await _inspect(url, diff) == []


def test_each_service_migrates_its_own_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from libs.common.migrations import AmbiguousDatabase, migration_settings

    for key in [k for k in os.environ if k.startswith("CE_")]:
        monkeypatch.delenv(key)
    own = {f"CE_{n.upper()}_DATABASE_URL": f"postgresql+asyncpg://ce@db/{n}" for n in SERVICES}
    chosen = migration_settings(SERVICES, own)
    assert {n: s.effective_database_url for n, s in chosen.items()} == {
        n: f"postgresql+asyncpg://ce@db/{n}" for n in SERVICES
    }
    # one CE_DATABASE_URL is one service's database: fine for one, refused for all
    monkeypatch.setenv("CE_DATABASE_URL", "postgresql+asyncpg://ce@db/shared")
    assert migration_settings(["review"], {})["review"].database_url.endswith("/shared")  # type: ignore[union-attr]
    with pytest.raises(AmbiguousDatabase, match="CE_CLAIMS_DATABASE_URL"):
        migration_settings(SERVICES, {"CE_REVIEW_DATABASE_URL": "postgresql+asyncpg://ce@db/r"})
    monkeypatch.delenv("CE_DATABASE_URL")
    embedded = migration_settings(SERVICES, {})
    assert all(s.effective_database_url.endswith(f"/{n}.db") for n, s in embedded.items())


def test_each_service_logs_in_with_its_own_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each service's own role and password: ``CE_<SERVICE>_DATABASE_PASSWORD[_FILE]`` beats the
    shared one, for ``ce migrate`` and for the processes ``ce run`` starts."""
    from libs.common.migrations import migration_settings
    from libs.common.settings import service_process_env

    for key in [k for k in os.environ if k.startswith("CE_")]:
        monkeypatch.delenv(key)
    (tmp_path / "review").write_text("review-secret\n")
    monkeypatch.setenv("CE_DATABASE_PASSWORD", "shared")
    environ = {
        "CE_DATABASE_PASSWORD": "shared",
        "CE_CLAIMS_DATABASE_URL": "postgresql+asyncpg://claims@db/claims",
        "CE_CLAIMS_DATABASE_PASSWORD": "claims-secret",
        "CE_REVIEW_DATABASE_URL": "postgresql+asyncpg://review@db/review",
        "CE_REVIEW_DATABASE_PASSWORD_FILE": str(tmp_path / "review"),
        "CE_SYNC_DATABASE_URL": "postgresql+asyncpg://ce@db/sync",
    }
    chosen = migration_settings(["claims", "review", "sync"], environ)
    assert {n: s.effective_database_url for n, s in chosen.items()} == {
        "claims": "postgresql+asyncpg://claims:claims-secret@db/claims",
        "review": "postgresql+asyncpg://review:review-secret@db/review",
        "sync": "postgresql+asyncpg://ce:shared@db/sync",  # no own password: the shared one
    }
    review = service_process_env("review", environ)
    assert "CE_DATABASE_PASSWORD" not in review, "a shared value would beat the own file"
    assert review["CE_DATABASE_PASSWORD_FILE"] == str(tmp_path / "review")
    assert review["CE_DATABASE_URL"] == environ["CE_REVIEW_DATABASE_URL"]
    assert service_process_env("sync", environ)["CE_DATABASE_PASSWORD"] == "shared"
    missing = {"CE_CLAIMS_DATABASE_PASSWORD_FILE": str(tmp_path / "nope")}
    with pytest.raises(ValueError, match=r"CE_CLAIMS_DATABASE_PASSWORD_FILE=.*nope"):
        migration_settings(["claims"], missing)


def _ce_migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CE_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ce"), "migrate"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


@pytest.mark.postgres
def test_ce_migrate_applies_each_service_to_its_own_database(
    make_pg_database: Callable[[str], str], tmp_path: Path
) -> None:
    """`ce migrate` without a name, as compose's `migrate` job runs it: every service on its own
    CE_<SERVICE>_DATABASE_URL (one URL for all used to fail with "Can't locate revision")."""
    urls = {name: make_pg_database(f"cli_{name}") for name in SERVICES}
    env = {f"CE_{n.upper()}_DATABASE_URL": u for n, u in urls.items()}
    done = _ce_migrate({**env, "CE_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [w for n in SERVICES for w in (f"{n}:", "migrated")]
    for name, url in urls.items():
        models = importlib.import_module(f"services.{name}.models")
        tables = asyncio.run(_inspect(url, lambda c: set(inspect(c).get_table_names())))
        assert tables == {*models.Base.metadata.tables, "alembic_version"}, name
    again = _ce_migrate({**env, "CE_DATA_DIR": str(tmp_path)})
    assert again.returncode == 0, again.stderr[-2000:]

    shared = make_pg_database("cli_shared")
    refused = _ce_migrate({"CE_DATABASE_URL": shared, "CE_DATA_DIR": str(tmp_path)})
    assert refused.returncode == 2
    assert "CE_CLAIMS_DATABASE_URL" in refused.stderr
    tables = asyncio.run(_inspect(shared, lambda c: inspect(c).get_table_names()))
    assert tables == [], "nothing was migrated onto the shared database"
