"""Issue 17, finding 1, through the running registry: uvicorn on a free loopback port serves the
real app; a provider uploads each hostile roster file (built here, a few KB) while a monitor asks
the same server's ``/healthz`` every 10 ms. Each upload is answered with a 422 problem naming the
limit within a second, and every ``/healthz`` answers within 100 ms meanwhile (the parse runs off
the event loop and is bounded)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from libs.common.tabular import PARSE_CONCURRENCY, read_table
from services.registry.tests.support import Registry, new_id_number, registry_app
from tests import hostile_tables as hostile
from tests.support import assert_responsive, healthz_watched, served_on_loopback

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


@dataclass
class Served:
    registry: Registry
    base_url: str


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async with (
        registry_app(tmp_path_factory.mktemp("registry-hostile")) as registry,
        served_on_loopback(registry.app) as base_url,
    ):
        read_table(hostile.workbook(hostile.header_row()), required=())  # openpyxl imported
        yield Served(registry, base_url)


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
        healthz_watched(served.base_url) as latencies,
    ):

        async def upload() -> tuple[httpx.Response, float]:
            started = time.monotonic()
            r = await uploader.post(
                f"/v1/projects/{project['id']}/completions",
                files={"file": (f"roster.{ext}", data, "application/octet-stream")},
                headers=headers,
            )
            return r, time.monotonic() - started

        # as many at once as the parser's concurrency (more would wait their turn)
        answers = await asyncio.gather(*(upload() for _ in range(PARSE_CONCURRENCY)))
    for r, elapsed in answers:
        assert r.status_code == 422, r.text[:300]
        problem = r.json()
        assert problem["code"] == code and problem["limit"], problem
        assert r.headers["content-type"].startswith("application/problem+json")
        assert elapsed < 1.0, f"{attack}: answered in {elapsed:.2f}s"
    assert_responsive(latencies)
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


async def test_a_file_from_anyone_but_the_organiser_is_not_parsed(served: Served) -> None:
    """Another provider's upload is refused before its file is read: no parse to spend."""
    registry = served.registry
    project = await registry.approved_project()
    data = hostile.declared_dimension_bomb(2000)
    for who, status, code in [("P2", 404, "project_not_found"), ("P", 422, "sheet_too_large")]:
        r = await registry.http.post(
            f"/v1/projects/{project['id']}/completions",
            files={"file": ("roster.xlsx", data, "application/octet-stream")},
            headers=registry.auth("provider", who),
        )
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
