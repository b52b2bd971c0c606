"""deploy/postgres/init-databases.sh, run for real (bash + psql) on a PostgreSQL cluster of this
module's own that asks passwords over TCP (scram-sha-256), as the postgres image runs it: one
login role per service, owner of its own database only, its password from its secret file.

Each role migrates its database through `ce migrate` (as compose's `migrate` job does, with
``CE_<SERVICE>_DATABASE_PASSWORD_FILE``), uses it, is no superuser, and cannot connect to another
service's database or the maintenance ones. A database the superuser migrated before (a volume of
the old init script) is handed over to its role by running the script again."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from ce.cli import app
from ce.topology import SERVICES
from tests.fixtures.private_postgres import SUPERUSER_PASSWORD, PrivatePostgres

REPO = Path(__file__).resolve().parents[1]
INIT_SCRIPT = REPO / "deploy" / "postgres" / "init-databases.sh"

pytestmark = pytest.mark.subprocess


def _write_secrets(directory: Path, suffix: str = "") -> dict[str, str]:
    directory.mkdir(exist_ok=True)
    passwords = {}
    for name in SERVICES:
        # quotes and a backslash: the script must never build SQL out of a password
        passwords[name] = f"pw-{name}-'\"\\;{suffix}"
        (directory / f"postgres_{name}_password").write_text(passwords[name] + "\n")
    return passwords


def _run_init(libpq_env: dict[str, str], secrets: Path) -> subprocess.CompletedProcess[str]:
    """The script as the postgres image runs it: as the superuser, over the local socket."""
    return subprocess.run(
        ["bash", str(INIT_SCRIPT)],
        env={**os.environ, **libpq_env, "CE_PG_SECRETS_DIR": str(secrets)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _connect(
    cluster: PrivatePostgres, user: str, password: str, db: str
) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1", port=cluster.port, user=user, password=password, database=db, timeout=10
    )


async def _refusal(cluster: PrivatePostgres, user: str, password: str, db: str) -> str:
    """Why ``user`` may not open ``db`` ("" if it may)."""
    try:
        conn = await _connect(cluster, user, password, db)
    except asyncpg.PostgresError as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return ""


def _migrate(
    cluster: PrivatePostgres, secrets: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """`ce migrate` (every service), each as its own role with its own password file."""
    for key in [k for k in os.environ if k.startswith("CE_")]:
        monkeypatch.delenv(key)
    env = {"CE_DATA_DIR": str(tmp_path / "var")}
    for name in SERVICES:
        env[f"CE_{name.upper()}_DATABASE_URL"] = cluster.url(name, user=name)
        env[f"CE_{name.upper()}_DATABASE_PASSWORD_FILE"] = str(
            secrets / f"postgres_{name}_password"
        )
    result = CliRunner().invoke(app, ["migrate"], env=env)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def test_each_service_gets_a_role_of_its_own_owning_its_database_only(
    private_postgres_with_passwords: PrivatePostgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = private_postgres_with_passwords
    # a volume from before: claims' database created and migrated by the superuser
    cluster.psql("CREATE DATABASE claims")
    for key in [k for k in os.environ if k.startswith("CE_")]:
        monkeypatch.delenv(key)
    legacy = CliRunner().invoke(
        app,
        ["migrate", "claims"],
        env={"CE_DATABASE_URL": cluster.url("claims"), "CE_DATABASE_PASSWORD": SUPERUSER_PASSWORD},
    )
    assert legacy.exit_code == 0, legacy.output
    assert (
        cluster.psql("SELECT count(*) FROM pg_tables WHERE tableowner = 'postgres'", "claims")
        != "0"
    )

    secrets = tmp_path / "secrets"
    passwords = _write_secrets(secrets)
    init = _run_init(cluster.libpq_env(), secrets)
    assert init.returncode == 0, init.stderr

    roles = cluster.psql(
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,"
        " rolcanlogin FROM pg_roles WHERE rolname IN ('claims', 'review', 'registry', 'sync')"
        " ORDER BY rolname"
    )
    assert roles.splitlines() == [f"{n}|f|f|f|f|f|t" for n in sorted(SERVICES)]
    owners = cluster.psql(
        "SELECT datname || '=' || pg_get_userbyid(datdba) FROM pg_database"
        " WHERE datname IN ('claims', 'review', 'registry', 'sync') ORDER BY datname"
    )
    assert owners.splitlines() == [f"{n}={n}" for n in sorted(SERVICES)]

    output = _migrate(cluster, secrets, monkeypatch, tmp_path)
    assert output.split() == [w for n in SERVICES for w in (f"{n}:", "migrated")]

    async def check() -> None:
        for name in SERVICES:
            conn = await _connect(cluster, name, passwords[name], name)
            try:
                assert await conn.fetchval("SELECT current_user") == name
                # every table and sequence is the role's, the old superuser-made ones too
                strangers = await conn.fetch(
                    "SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v')"
                    " AND pg_get_userbyid(relowner) <> $1",
                    name,
                )
                assert strangers == [], (name, strangers)
                tables = await conn.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                )
                assert tables > 1, name  # alembic_version and the service's own
                # using it: write and read back, in a table the migration made
                head = await conn.fetchval("SELECT version_num FROM alembic_version")
                async with conn.transaction():
                    await conn.execute("UPDATE alembic_version SET version_num = version_num")
                    await conn.execute("CREATE TABLE scratch (x int)")
                    await conn.execute("DROP TABLE scratch")
                assert await conn.fetchval("SELECT version_num FROM alembic_version") == head
                # no superuser's powers
                for sql in ("CREATE DATABASE stolen", "CREATE ROLE intruder"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.execute(sql)
            finally:
                await conn.close()
            # nowhere else: no other service's database, no maintenance database
            for other in (*SERVICES, "postgres", "template1"):
                if other != name:
                    refusal = await _refusal(cluster, name, passwords[name], other)
                    assert "InsufficientPrivilegeError" in refusal, (name, other, refusal)
                    assert "CONNECT privilege" in refusal
            # and only with its own password
            other_password = passwords["sync" if name != "sync" else "claims"]
            wrong = await _refusal(cluster, name, other_password, name)
            assert "InvalidPasswordError" in wrong, wrong

    asyncio.run(check())

    # Run again (new secrets: a rotation): the new passwords hold, the old ones no longer, and
    # the data stays.
    rotated = _write_secrets(secrets, suffix="-rotated")
    again = _run_init(cluster.libpq_env(), secrets)
    assert again.returncode == 0, again.stderr

    async def check_rotation() -> None:
        for name in SERVICES:
            assert await _refusal(cluster, name, rotated[name], name) == ""
            assert "InvalidPasswordError" in await _refusal(cluster, name, passwords[name], name)

    asyncio.run(check_rotation())
    assert cluster.psql("SELECT count(*) FROM alembic_version", "claims") == "1"


def test_a_missing_secret_fails_the_script_before_it_changes_anything(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    _write_secrets(secrets)
    (secrets / "postgres_claims_password").write_text("")
    # no server at all: the script stops before its first connection
    unreachable = {"PGHOST": str(tmp_path), "PGPORT": "1", "PGUSER": "postgres"}
    done = _run_init(unreachable, secrets)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"init-databases: {secrets}/postgres_claims_password is missing or empty"
        " (deploy/make-secrets.sh writes it)"
    )
