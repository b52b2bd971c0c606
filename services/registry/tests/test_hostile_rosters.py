"""Issue 17, finding 1, through the running registry: uvicorn on a free loopback port serves the
real app; a provider uploads each hostile roster file (built here, a few KB) while a monitor asks
the same server's ``/healthz`` every 10 ms. Each upload is answered with a 422 problem naming the
limit within a second, and every ``/healthz`` answers within 100 ms meanwhile (the parse runs off
the event loop and is bounded)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import uvicorn

from services.registry.tests.support import Registry, new_id_number, registry_app
from tests import hostile_tables as hostile
from tests.support import free_port, until

ATTACKS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "dimension A1:XFD2000": (
        lambda: hostile.declared_dimension_bomb(2000),
        "xlsx",
        "sheet_too_large",
    ),
    "dimension A1:XFD1048576": (
        lambda: hostile.declared_dimension_bomb(1_048_576),
        "xlsx",
        "sheet_too_large",
    ),
    "cell in column XFD, undeclared": (
        lambda: hostile.declared_dimension_bomb(2000, declared=False),
        "xlsx",
        "too_many_columns",
    ),
    "row 1,048,576, undeclared": (lambda: hostile.far_row(), "xlsx", "sheet_too_large"),
    "shared strings bomb": (
        lambda: hostile.shared_strings_bomb(4),
        "xlsx",
        "compression_ratio_too_high",
    ),
    "16,000-column CSV header": (
        lambda: hostile.wide_csv_header(16_000),
        "csv",
        "too_many_columns",
    ),
    "CSV cell of 131,073 characters": (
        lambda: hostile.long_cell_csv(131_073),
        "csv",
        "cell_too_large",
    ),
}


class Served:
    def __init__(self, registry: Registry, base_url: str) -> None:
        self.registry = registry
        self.base_url = base_url


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async with registry_app(tmp_path_factory.mktemp("registry-hostile")) as registry:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                registry.app, host="127.0.0.1", port=port, lifespan="off", log_config=None
            )
        )
        serving = asyncio.create_task(server.serve())
        try:
            await until(lambda: _started(server))
            yield Served(registry, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            await serving


async def _started(server: uvicorn.Server) -> bool:
    return bool(server.started)


async def _monitor(http: httpx.AsyncClient, stop: asyncio.Event, seen: list[float]) -> None:
    """``/healthz`` every 10 ms until ``stop``: each answer's latency in seconds."""
    while not stop.is_set():
        started = time.monotonic()
        r = await http.get("/healthz")
        seen.append(time.monotonic() - started)
        assert r.status_code == 200
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_hostile_roster_is_refused_fast_and_healthz_keeps_answering(
    served: Served, attack: str
) -> None:
    build, ext, code = ATTACKS[attack]
    data = build()
    registry = served.registry
    project = await registry.approved_project()
    headers = registry.auth("provider", "P")
    async with (
        httpx.AsyncClient(base_url=served.base_url, timeout=30) as uploader,
        httpx.AsyncClient(base_url=served.base_url, timeout=30) as watcher,
    ):
        await watcher.get("/healthz")  # the connection is open before the attack
        stop, latencies = asyncio.Event(), list[float]()
        monitor = asyncio.create_task(_monitor(watcher, stop, latencies))
        await asyncio.sleep(0.05)

        async def upload() -> tuple[httpx.Response, float]:
            started = time.monotonic()
            r = await uploader.post(
                f"/v1/projects/{project['id']}/completions",
                files={"file": (f"roster.{ext}", data, "application/octet-stream")},
                headers=headers,
            )
            return r, time.monotonic() - started

        # three at once: more than the parser's concurrency, so one waits its turn
        answers = await asyncio.gather(upload(), upload(), upload())
        await asyncio.sleep(0.05)
        stop.set()
        await monitor
    for r, elapsed in answers:
        assert r.status_code == 422, r.text[:300]
        problem = r.json()
        assert problem["code"] == code and problem["limit"], problem
        assert r.headers["content-type"].startswith("application/problem+json")
        assert elapsed < 1.0, f"{attack}: answered in {elapsed:.2f}s"
    assert latencies and max(latencies) < 0.1, f"/healthz waited {max(latencies):.3f}s"
    # nothing was recorded from the refused file
    listed = await registry.http.get(
        "/v1/certificates", params={"project_id": project["id"]}, headers=registry.city
    )
    assert listed.status_code == 200 and listed.json()["items"] == []


async def test_an_honest_roster_file_still_issues_certificates(served: Served) -> None:
    """The same path with a proper CSV: every row read, as before."""
    registry = served.registry
    project = await registry.approved_project()
    people = [new_id_number() for _ in range(3)]
    for person in people:
        await registry.add_person(person)
    csv = "身份证号,姓名,学时,是否合格\r\n" + "".join(f"{p},张三,16,合格\r\n" for p in people)
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        r = await http.post(
            f"/v1/projects/{project['id']}/completions",
            files={"file": ("roster.csv", csv.encode("gbk"), "text/csv")},
            headers=registry.auth("provider", "P"),
        )
    assert r.status_code == 200, r.text
    assert r.json()["issued"] == 3
