"""Races that only a real multi-connection database shows (PostgreSQL): the same roster uploaded
twice at the same moment (a double click, two replicas) still gives each passed person exactly
one certificate and one event, because recording completions locks the project; two decisions on
one filing at once give one decision and one conflict."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from services.registry.tests.support import new_id_number, registry_app


async def test_concurrent_uploads_issue_one_certificate_per_person(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    url = await asyncio.to_thread(make_pg_database, "registry_race")
    async with registry_app(tmp_path, database_url=url) as registry:
        project = await registry.approved_project()
        roster = [
            {"id_number": new_id_number(), "name": f"学员{i}", "hours": 16, "passed": True}
            for i in range(200)
        ]

        async def upload() -> dict[str, int]:
            r = await registry.http.post(
                f"/v1/projects/{project['id']}/completions",
                json=roster,
                headers=registry.auth("provider", "P"),
            )
            assert r.status_code == 200, r.text
            body = r.json()
            return {k: body[k] for k in ("issued", "unchanged", "rejected")}

        outcomes = await asyncio.gather(upload(), upload(), upload())
        assert sorted(o["issued"] for o in outcomes) == [0, 0, 200]
        assert sorted(o["unchanged"] for o in outcomes) == [0, 200, 200]
        issued = [e for e in await registry.outbox() if e.type == "certificate.issued"]
        assert len(issued) == 200 == await registry.count("certificates")
        assert len({e.data["id_number"] for e in issued}) == 200

        filed = await registry.file()
        await registry.submit(filed)
        decisions = await asyncio.gather(
            registry.decide(filed, "approve", "同意"), registry.decide(filed, "reject", "不同意")
        )
        assert sorted(r.status_code for r in decisions) == [200, 409]
        assert (
            len([e for e in await registry.outbox(filed["id"]) if e.type != "project.submitted"])
            == 1
        )
