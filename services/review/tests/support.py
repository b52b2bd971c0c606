"""A real review app for tests (lifespan, outbox relay, consumer on the embedded log or Kafka-less
PostgreSQL), driven over HTTP through ``httpx.ASGITransport``, with a small org tree and helpers
to submit claims and move people as the claims service would (events on ``claims.events``).

Org labels tell the reviewer role: ``U…`` unit, ``D…`` district, ``P…`` department, ``A…`` agency.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from libs.common.events import (
    Affiliation,
    ClaimSubmitted,
    Envelope,
    Payload,
    PersonRegistered,
    PersonUpdated,
    topic_of,
)
from libs.common.settings import Settings
from services.review.main import create_app
from tests.support import OpenApiResponses, until

BASE_TREE = [
    ("C", "city", None),
    ("D1", "district", "C"),
    ("D2", "district", "C"),
    ("P", "department", "C"),
    ("U1", "unit", "D1"),
    ("U1b", "unit", "D1"),
    ("U2", "unit", "D2"),
    ("UP", "unit", "P"),
    ("A1", "agency", "D1"),
]
ROLE_OF_LABEL = {"U": "unit_admin", "D": "district_admin", "P": "department_admin"}


def csv_bytes(rows: Sequence[tuple[str, ...]], encoding: str = "utf-8-sig") -> bytes:
    lines = ["code,name,type,parent_code", *(",".join(r) for r in rows)]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def directory_of(size: int, tag: str, city: str) -> list[tuple[str, ...]]:
    """6 districts, 4 departments and units/agencies under them: ``size`` orgs in all."""
    rows: list[tuple[str, ...]] = [(f"{tag}-D{i}", f"区{i}", "district", city) for i in range(6)]
    rows += [(f"{tag}-P{i}", f"部门{i}", "department", city) for i in range(4)]
    n = 0
    while len(rows) < size:
        if n % 10 == 9:
            rows.append((f"{tag}-A{n}", f"服务中心{n}", "agency", f"{tag}-D{n % 6}"))
        else:
            parent = f"{tag}-D{n % 6}" if n % 3 else f"{tag}-P{n % 4}"
            rows.append((f"{tag}-U{n}", f"单位{n}", "unit", parent))
        n += 1
    return rows


def code() -> str:
    return f"T-{uuid.uuid4().hex[:10]}"


@dataclass
class Review:
    app: Any
    http: httpx.AsyncClient
    orgs: dict[str, str] = field(default_factory=dict)

    def auth(
        self, role: str, org: str | None = None, person_id: str | None = None
    ) -> dict[str, str]:
        token = self.app.state.tokens.mint(
            role=role, org_id=self.orgs[org] if org else None, person_id=person_id
        )
        return {"Authorization": f"Bearer {token}"}

    @property
    def city(self) -> dict[str, str]:
        return self.auth("city_admin")

    def reviewer(self, org: str) -> dict[str, str]:
        return self.auth(ROLE_OF_LABEL.get(org[0], "agency_admin"), org)

    async def create_org(self, type_: str, parent: str | None = None, **extra: Any) -> Any:
        body = {"code": code(), "name": f"{type_} org", "type": type_, "parent_id": parent, **extra}
        return await self.http.post("/v1/orgs", json=body, headers=self.city)

    async def add(self, label: str, type_: str, parent: str | None = None) -> str:
        """Create an org known by ``label`` in this test (parent by label)."""
        r = await self.create_org(type_, self.orgs[parent] if parent else None)
        assert r.status_code == 201, r.text
        self.orgs[label] = r.json()["id"]
        return self.orgs[label]

    async def patch(self, label: str, **body: Any) -> httpx.Response:
        return await self.http.patch(f"/v1/orgs/{self.orgs[label]}", json=body, headers=self.city)

    async def submit(
        self,
        org: str,
        *,
        kind: str = "unit",
        revision: int = 1,
        claim_id: str | None = None,
        person_id: str | None = None,
        verified: bool | None = None,
        category: str = "training",
        person_name: str = "张三",
        id_number_masked: str = "370402********0012",
        **fields: Any,
    ) -> str:
        """A ``claim.submitted`` from claims for a person of ``org``; returns once routed.
        ``fields``: more of the event's fields (``project_id``, ``leave_kind``, …)."""
        claim_id = claim_id or str(uuid.uuid4())
        envelope = ClaimSubmitted(
            claim_id=claim_id,
            revision=revision,
            person_id=person_id or f"person-{claim_id[:8]}",
            person_name=person_name,
            id_number_masked=id_number_masked,
            affiliation=Affiliation(kind=kind, org_id=self.orgs.get(org, org)),  # type: ignore[arg-type]
            year=2026,
            category=category,
            subject="professional",
            title="急诊医学新进展培训班",
            requested_hours=16,
            expected_credits=fields.pop("expected_credits", []),
            verified_evidence=revision == 1 if verified is None else verified,
            **fields,
        ).envelope(source="claims", subject=claim_id, correlation_id=None)
        await self.publish(envelope)

        async def routed() -> bool:
            return any(t["revision"] == revision for t in await self.tasks(claim_id, "open"))

        await until(routed)
        return claim_id

    async def person_event(
        self, person_id: str, org: str, *, kind: str = "unit", registered: bool = False
    ) -> None:
        """``person.registered`` / ``person.updated`` (a transfer, 调动) as claims publishes it;
        returns once review has handled it."""
        affiliation = Affiliation(kind=kind, org_id=self.orgs[org])  # type: ignore[arg-type]
        payload = (PersonRegistered if registered else PersonUpdated)(
            person_id=person_id,
            id_number="370402199001010012",
            name="张三",
            affiliation=affiliation,
        )
        envelope = payload.envelope(source="claims", subject=person_id, correlation_id=None)
        await self.publish(envelope)
        await self.until_handled(envelope)

    async def registry_event(self, payload: Payload, subject: str) -> None:
        """An event of the registry (``project.approved``, …) on ``registry.events``, as the
        registry publishes it; returns once review has handled it."""
        envelope = payload.envelope(source="registry", subject=subject, correlation_id=None)
        await self.publish(envelope, topic_of("registry"))
        await self.until_handled(envelope)

    async def until_handled(self, envelope: Envelope) -> None:
        state = self.app.state.service

        async def handled() -> bool:
            async with state.sessionmaker() as session:
                table = state.spec.infra.inbox
                return bool(
                    await session.scalar(
                        select(table.c.event_id).where(table.c.event_id == str(envelope.id))
                    )
                )

        await until(handled)

    async def publish(self, envelope: Envelope, topic: str = topic_of("claims")) -> None:
        await self.app.state.service.bus.publish(
            topic, envelope.subject, envelope.to_bytes(), {"event_type": envelope.type}
        )

    async def skipped(self, event_type: str) -> float:
        """How many events of this type the consumer skipped as redeliveries (``/metrics``)."""
        text = (await self.http.get("/metrics")).text
        for line in text.splitlines():
            if (
                line.startswith("events_handled_total")
                and f'event_type="{event_type}"' in line
                and 'outcome="skipped"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def tasks(self, claim_id: str, status: str | None = None) -> list[dict[str, Any]]:
        params = {"claim_id": claim_id, **({"status": status} if status else {})}
        r = await self.http.get("/v1/review-tasks", params=params, headers=self.city)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def open_task(self, claim_id: str) -> dict[str, Any]:
        [task] = await self.tasks(claim_id, "open")
        return task

    async def decide(
        self, task: dict[str, Any], org: str, decision: str = "approve", reason: str | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/review-tasks/{task['id']}/decision",
            json={"decision": decision, **({"reason": reason} if reason else {})},
            headers=self.reviewer(org),
        )

    async def history(self, claim_id: str) -> list[dict[str, Any]]:
        r = await self.http.get(f"/v1/claims/{claim_id}/history", headers=self.city)
        assert r.status_code == 200, r.text
        return list(r.json()["steps"])

    async def outbox(self, key: str) -> list[Envelope]:
        state = self.app.state.service
        table = state.spec.infra.outbox
        async with state.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(table.c.payload).where(table.c.key == key).order_by(table.c.id)
                )
            ).all()
        return [Envelope.from_bytes(bytes(r.payload)) for r in rows]


@asynccontextmanager
async def review_app(data_dir: Path, database_url: str | None = None) -> AsyncIterator[Review]:
    """A running review app with the base tree (``BASE_TREE``) created."""
    settings = Settings(
        service="review",
        data_dir=data_dir,
        database_url=database_url or f"sqlite+aiosqlite:///{data_dir / 'review.db'}",
        outbox_poll_s=0.2,
    )
    app = create_app(settings)
    # every 2xx JSON response any test fetches is checked against the app's OpenAPI document
    responses = OpenApiResponses(app.openapi())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://review",
            event_hooks={"response": [responses.hook]},
        ) as http:
            r = Review(app, http)
            for label, type_, parent in BASE_TREE:
                await r.add(label, type_, parent)
            yield r
    assert responses.checked > 0, "no response was checked against the OpenAPI document"
