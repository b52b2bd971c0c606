"""A revoked e-certificate stops counting everywhere: the claim it backed loses its credit, the
transcript drops the hours and the province record is voided (registry events are published onto
the embedded log from here, as the registry would)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from libs.common.eventlog import EmbeddedLog
from libs.common.events import CertificateIssued, CertificateRevoked, Payload, topic_of
from tests.e2e.stack import Stack, start_embedded
from tests.e2e.walkthrough import (
    ID_NUMBER,
    bearer,
    decide,
    open_task,
    setup_world,
    submit_training,
)
from tests.support import eventually

pytestmark = pytest.mark.e2e
CODE = "ZZCE-2026-000123"


def publish_as_registry(stack: Stack, payload: Payload, subject: str) -> None:
    async def go() -> None:
        log = EmbeddedLog(stack.data_dir / "events.db")
        await log.start()
        envelope = payload.envelope(source="registry", subject=subject, correlation_id=None)
        await log.publish(topic_of("registry"), subject, envelope.to_bytes(), {})
        await log.stop()

    asyncio.run(go())


def test_revoking_a_certificate_revokes_credit_and_voids_the_province_record(
    tmp_path: Path,
) -> None:
    stack = start_embedded(tmp_path / "var")
    try:
        stack.wait_healthy()
        publish_as_registry(
            stack,
            CertificateIssued(
                code=CODE,
                project_id="proj-1",
                project_name="数字化管理师（初级）培训班",
                id_number=ID_NUMBER,
                holder_name="张三",
                year=2026,
                subject="professional",
                hours=16,
            ),
            CODE,
        )
        with stack.client(timeout=10) as http:
            world = setup_world(stack, http)
            claims, me = stack.url("claims"), bearer(world.personnel)

            def submitted() -> dict[str, Any] | None:
                try:  # the certificate reaches claims as an event: retry while on its way
                    return submit_training(
                        stack, http, world, "数字化管理师（初级）", certificate_code=CODE
                    )
                except AssertionError:
                    return None

            claim = eventually(submitted, what="certificate replica in claims")
            assert claim["expected_credits"] == [{"subject": "professional", "hours": 16.0}]
            decide(
                stack,
                http,
                world.unit_admin,
                open_task(stack, http, world.unit_admin, claim["id"], "unit"),
                "approve",
            )
            task = open_task(stack, http, world.district_admin, claim["id"], "authority")
            decide(stack, http, world.district_admin, task, "approve")

            def province_hours() -> float:
                r = http.get(
                    f"{stack.url('province')}/province/v1/persons/{ID_NUMBER}/hours",
                    params={"year": 2026},
                )
                return float(r.json()["professional"])

            eventually(lambda: province_hours() == 16, what="registered on the province")

            publish_as_registry(stack, CertificateRevoked(code=CODE, reason="培训未完成"), CODE)
            revoked = eventually(
                lambda: (
                    (c := http.get(f"{claims}/v1/claims/{claim['id']}", headers=me).json())[
                        "status"
                    ]
                    == "revoked"
                    and c
                ),
                what="claim revoked",
            )
            assert "培训未完成" in revoked["rejection_reason"]
            transcript = http.get(
                f"{claims}/v1/persons/{world.person_id}/transcripts/2026", headers=me
            ).json()
            assert transcript["credited"]["professional"] == 0
            eventually(lambda: province_hours() == 0, what="province record voided")
            records = http.get(
                f"{stack.url('sync')}/v1/sync/records",
                params={"claim_id": claim["id"]},
                headers=bearer(stack.token("city_admin")),
            ).json()["items"]
            assert [r["status"] for r in records] == ["voided"]
            # the claim says so (issue 20 item 5), and so does the person's feed
            eventually(
                lambda: (
                    http.get(f"{claims}/v1/claims/{claim['id']}", headers=me).json()["sync_status"]
                    == "voided"
                ),
                what="claim sync_status voided",
            )
            feed = http.get(f"{claims}/v1/me/notifications", headers=me).json()["items"]
            assert feed[0]["kind"] == "province_voided" and feed[0]["claim_id"] == claim["id"]
    finally:
        codes = stack.stop()
    assert codes == [0], stack.tail()
