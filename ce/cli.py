"""``ce``: run the whole system, one service, migrations, dev tokens."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from ce.topology import CONSOLE, DEFAULT_PORTS, SERVICES, app_module, port_of, run_ports
from libs.common.errors import DomainError
from libs.common.settings import Settings

app = typer.Typer(help="Zaozhuang continuing-education hours platform", no_args_is_help=True)


def _service_module(name: str) -> Any:
    try:
        return app_module(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _migrations_dir(name: str) -> Path:
    """The migrations of a service (the simulator has none)."""
    if name not in SERVICES:
        raise typer.BadParameter(f"{name!r} has no migrations; one of {', '.join(SERVICES)}")
    migrations: Path = _service_module(name).SPEC.migrations_dir
    return migrations


@app.command()
def serve(
    service: Annotated[
        str, typer.Argument(help="claims, review, registry, sync, province or console")
    ],
) -> None:
    """Run one service (or the province simulator, or the web console) in the foreground."""
    import uvicorn

    if service == CONSOLE:
        _serve_console()
        return
    settings = Settings(service=service)
    port = port_of(settings)
    settings = settings.model_copy(update={"port": port})
    asgi = _service_module(service).create_app(settings)
    uvicorn.run(
        asgi,
        host=settings.host,
        port=port,
        log_config=None,
        access_log=False,  # it would carry ID numbers (the province's person-hours path has them)
        timeout_graceful_shutdown=10,
        loop=settings.server_loop,
        http=settings.server_http,
        # the client address (per-address rate limits, logs) from X-Forwarded-For of these peers
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def _serve_console() -> None:
    """The web console at 127.0.0.1:CE_CONSOLE_PORT (8000), a client of the services."""
    import uvicorn

    from console.app import create_app
    from console.settings import ConsoleSettings

    settings = ConsoleSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.console_port,
        log_config=None,
        access_log=False,  # query strings may carry a person's name or masked ID
        timeout_graceful_shutdown=10,
        forwarded_allow_ips="127.0.0.1",
    )


@app.command()
def migrate(
    service: Annotated[str | None, typer.Argument(help="one service; all when omitted")] = None,
) -> None:
    """Upgrade the database of one service (or all, each on its own CE_<SERVICE>_DATABASE_URL)
    to the newest migration."""
    from libs.common.migrations import AmbiguousDatabase, migration_settings, upgrade

    names = [service] if service else list(SERVICES)
    migrations = {name: _migrations_dir(name) for name in names}
    try:
        chosen = migration_settings(names)
    except AmbiguousDatabase as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for name, settings in chosen.items():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(migrations[name], settings.effective_database_url)
        typer.echo(f"{name}: migrated")


@app.command("make-migration")
def make_migration(service: str, message: str) -> None:
    """(developers) Autogenerate a migration for SERVICE against a scratch SQLite database."""
    import tempfile

    from alembic import command

    from libs.common.migrations import alembic_config, upgrade

    migrations = _migrations_dir(service)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/scratch.db"
        upgrade(migrations, url)
        command.revision(alembic_config(migrations, url), message=message, autogenerate=True)


@app.command()
def token(
    role: Annotated[str, typer.Option(help="personnel, unit_admin, …, city_admin, system, ops")],
    org: Annotated[str | None, typer.Option(help="org id (org-scoped roles)")] = None,
    person: Annotated[str | None, typer.Option(help="person id (personnel)")] = None,
    sub: Annotated[str | None, typer.Option(help="subject; defaults from role and org")] = None,
    id_number: Annotated[
        str | None,
        typer.Option(help="(personnel --sub) the ID number the identity provider verified"),
    ] = None,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 8 * 3600,
) -> None:
    """Print a bearer token the running stack accepts (dev key of CE_DATA_DIR)."""
    from libs.common.auth import TokenService

    try:
        value = TokenService(Settings()).mint(
            role=role, sub=sub, org_id=org, person_id=person, id_number=id_number, ttl_s=ttl
        )
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(value)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


@app.command()
def run(
    demo: Annotated[bool, typer.Option("--demo", help="also load demo data")] = False,
    logs: Annotated[
        bool, typer.Option("--logs", help="stream the services' JSON logs here too")
    ] = False,
) -> None:
    """Run the whole system on the embedded default: four services, the province simulator and
    the web console (http://127.0.0.1:8000)."""
    from ce.supervisor import Supervisor
    from libs.common.auth import load_or_create_dev_key

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        load_or_create_dev_key(settings.data_dir)  # created once, before the services race for it
    log_dir = settings.data_dir / "logs"
    supervisor = Supervisor(run_ports(os.environ), None if logs else log_dir)
    started = time.monotonic()
    try:
        supervisor.start()
        supervisor.wait_healthy(timeout=90)
        typer.echo(
            json.dumps(
                {
                    "status": "healthy",
                    "seconds": round(time.monotonic() - started, 1),
                    "urls": supervisor.urls(),
                    "data_dir": str(settings.data_dir.resolve()),
                    "logs": None if logs else str(log_dir.resolve()),
                }
            )
        )
        signal.signal(signal.SIGTERM, _interrupt)
        if demo:
            from ce.demo import load_demo

            try:
                load_demo(supervisor.urls(), settings)
            except httpx.HTTPError as exc:
                typer.echo(f"demo data could not be loaded: {exc}", err=True)
        typer.echo("Ctrl-C stops everything.")
        dead = supervisor.wait_for_an_exit()
        typer.echo(f"stopping: {', '.join(dead)} exited", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("stopping…", err=True)
    finally:
        supervisor.stop()


def _bearer(token: str | None, role: str = "city_admin") -> dict[str, str]:
    """``--token`` (or ``CE_TOKEN``) if given, else a dev token minted with this data dir's key."""
    if not token:
        from libs.common.auth import TokenService

        token = TokenService(Settings()).mint(role=role, sub="ce-cli", ttl_s=3600)
    return {"Authorization": f"Bearer {token}"}


@app.command("import-persons")
def import_persons(
    file: Annotated[
        Path,
        typer.Argument(help="CSV or XLSX: id_number,name,phone,affiliation_kind,org_id"),
    ],
    url: Annotated[str, typer.Option(help="the claims service")] = "http://127.0.0.1:8001",
    token: Annotated[str | None, typer.Option(envvar="CE_TOKEN", help="bearer token")] = None,
) -> None:
    """Register many persons from a CSV or XLSX file (header row), 1,000 a request, with
    progress on stderr. Safe to run again: a person registered before is not registered twice."""
    from ce.imports import import_persons as run_import

    try:
        with httpx.Client(timeout=120) as http:
            ok, failed = run_import(http, file, url, _bearer(token), typer.echo)
    except (RuntimeError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except DomainError as exc:  # the file itself: encoding, header
        typer.echo(f"error: {exc.code}: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps({"registered": ok, "failed": failed}))
    if failed:
        raise typer.Exit(1)


@app.command("import-learning")
def import_learning(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or XLSX: record_id,id_number,year,subject,hours,course,completed_at"
        ),
    ],
    report: Annotated[
        Path | None,
        typer.Option(help="where refused rows go (CSV); default FILE.errors.csv"),
    ] = None,
    url: Annotated[str, typer.Option(help="the sync service")] = "http://127.0.0.1:8004",
    token: Annotated[str | None, typer.Option(envvar="CE_TOKEN", help="bearer token")] = None,
) -> None:
    """Send the city e-learning platform's export to sync, 1,000 records a request. Refused
    rows go to the report file; safe to run again (records seen before count as duplicates)."""
    from ce.imports import import_learning as run_import

    report = report or file.with_name(file.name + ".errors.csv")
    try:
        with httpx.Client(timeout=120) as http:
            totals = run_import(http, file, url, _bearer(token, role="system"), report)
    except (RuntimeError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except DomainError as exc:
        typer.echo(f"error: {exc.code}: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps({**totals, "report": str(report)}))
    if totals["rejected"]:
        raise typer.Exit(1)


@app.command("import-orgs")
def import_orgs(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="CSV (UTF-8, UTF-8 with BOM or GBK) or XLSX: code,name,type,parent_code",
        ),
    ],
    url: Annotated[str, typer.Option(help="the review service")] = "http://127.0.0.1:8002",
    token: Annotated[str | None, typer.Option(envvar="CE_TOKEN", help="bearer token")] = None,
) -> None:
    """Create or update the org directory from a file (POST /v1/orgs/import): all or nothing,
    parents by code. Safe to run again: an unchanged row is a no-op. A refused file prints every
    bad row with its line and rule, and imports nothing."""
    with httpx.Client(timeout=300) as http:
        r = http.post(
            f"{url}/v1/orgs/import",
            files={"file": (file.name, file.read_bytes())},
            headers=_bearer(token),
        )
    body = r.json() if "json" in r.headers.get("content-type", "") else {}
    if r.status_code != 200:
        detail = body.get("detail") or r.text[:500]
        typer.echo(f"error {r.status_code} {body.get('code', '')}: {detail}", err=True)
        for row in body.get("rows", []):
            for error in row["errors"]:
                typer.echo(
                    f"line {row['line']} ({row['code']}): {error['code']}: {error['detail']}"
                )
        raise typer.Exit(1)
    typer.echo(json.dumps({k: body[k] for k in ("created", "updated", "unchanged")}))


@app.command()
def report(
    year: Annotated[int, typer.Option(help="rule year")],
    org: Annotated[str | None, typer.Option(help="org id; the whole city when omitted")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or xlsx")] = "csv",
    out: Annotated[Path | None, typer.Option(help="file to write (stdout for json/csv)")] = None,
    url: Annotated[str, typer.Option(help="the claims service")] = "http://127.0.0.1:8001",
    token: Annotated[str | None, typer.Option(envvar="CE_TOKEN", help="bearer token")] = None,
) -> None:
    """Download the compliance report of everyone under an org: CSV or XLSX (the whole scope)
    or JSON (one page, with ``next_cursor``)."""
    params: dict[str, Any] = {"year": year, "format": fmt, **({"org_id": org} if org else {})}
    with httpx.Client(timeout=300) as http:
        r = http.get(f"{url}/v1/reports/compliance", params=params, headers=_bearer(token))
        if r.status_code != 200:
            typer.echo(f"error {r.status_code}: {r.text[:500]}", err=True)
            raise typer.Exit(1)
        if out is not None:
            out.write_bytes(r.content)
            typer.echo(f"written to {out}")
        elif fmt == "xlsx":
            typer.echo("xlsx is binary: give --out FILE", err=True)
            raise typer.Exit(2)
        else:
            sys.stdout.buffer.write(r.content)


dead_letters = typer.Typer(
    help="Events a service could not handle: list them, replay them after a fix",
    no_args_is_help=True,
)
app.add_typer(dead_letters, name="dead-letters")


def _service_url(service: str, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return f"http://127.0.0.1:{DEFAULT_PORTS[service]}"


def _dead_letter_ids(http: httpx.Client, base: str) -> list[str]:
    r = http.get(f"{base}/v1/admin/dead-letters")
    if r.status_code != 200:
        typer.echo(f"error {r.status_code}: {r.text[:500]}", err=True)
        raise typer.Exit(1)
    return [str(item["id"]) for item in r.json()["items"]]


@dead_letters.command("list")
def dead_letters_list(
    service: Annotated[str, typer.Argument(help="claims, review, registry or sync")],
    url: Annotated[str | None, typer.Option(help="the service's URL")] = None,
    token: Annotated[str | None, typer.Option(envvar="CE_TOKEN", help="bearer token")] = None,
) -> None:
    """Print the service's dead letters, newest first, one JSON object a line."""
    base = _service_url(service, url)
    r = httpx.get(f"{base}/v1/admin/dead-letters", headers=_bearer(token, "ops"), timeout=30)
    if r.status_code != 200:
        typer.echo(f"error {r.status_code}: {r.text[:500]}", err=True)
        raise typer.Exit(1)
    for item in r.json()["items"]:
        typer.echo(json.dumps(item, ensure_ascii=False))


@dead_letters.command("replay")
def dead_letters_replay(
    args: Annotated[list[str], typer.Argument(help="ID SERVICE, or SERVICE with --all")],
    every: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    url: Annotated[str | None, typer.Option(help="the service's URL")] = None,
    token: Annotated[str | None, typer.Option(envvar="CE_TOKEN", help="bearer token")] = None,
) -> None:
    """Handle dead letters again through the service's inbox (never a second effect):
    ``replay ID SERVICE`` one, ``replay --all SERVICE`` every one. Exits 1 if any failed again."""
    if every and len(args) == 1:
        service, chosen = args[0], None
    elif not every and len(args) == 2:
        service, chosen = args[1], [args[0]]
    else:
        raise typer.BadParameter("give ID SERVICE, or --all SERVICE")
    base = _service_url(service, url)
    failed: set[str] = set()
    tried: set[str] = set()
    with httpx.Client(timeout=60, headers=_bearer(token, "ops")) as http:
        while True:  # the list shows 200 at a time: go on while there are untried ones
            ids = chosen or [i for i in _dead_letter_ids(http, base) if i not in tried]
            if not ids:
                break
            for letter_id in ids:
                tried.add(letter_id)
                r = http.post(f"{base}/v1/admin/dead-letters/{letter_id}/replay")
                if r.status_code == 200:
                    typer.echo(json.dumps(r.json(), ensure_ascii=False))
                else:
                    failed.add(letter_id)
                    typer.echo(f"{letter_id}: error {r.status_code}: {r.text[:500]}", err=True)
            if chosen:
                break
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
