"""The correlation id travels: from the HTTP request into the events it causes, and from a
consumed event into the events its handler emits (so one claim's journey greps as one id)."""

from __future__ import annotations

from pathlib import Path

from libs.common.events import ClaimApproved, topic_of
from services.claims.tests.harness import claims_stack, one_day_training


async def test_correlation_id_from_request_to_events_and_through_handlers(tmp_path: Path) -> None:
    async with claims_stack(tmp_path) as stack:
        unit = await stack.add_org("unit")
        person = await stack.register(unit)
        evidence = await stack.upload(person)
        r = await stack.http.post(
            "/v1/claims",
            json={"person_id": person.id, **one_day_training([evidence])},
            headers={**person.auth, "X-Correlation-ID": "req-7f3a"},
        )
        assert r.status_code == 201, r.text
        assert r.headers["X-Correlation-ID"] == "req-7f3a"
        claim = r.json()
        [submitted] = await stack.outbox(claim["id"])
        assert submitted.type == "claim.submitted" and submitted.correlation_id == "req-7f3a"

        approval = ClaimApproved(
            claim_id=claim["id"], revision=1, person_id=person.id, org_id="d", actor="t"
        ).envelope(source="review", subject=claim["id"], correlation_id="req-7f3a")
        await stack.app.state.service.bus.publish(
            topic_of("review"), claim["id"], approval.to_bytes(), {"event_type": approval.type}
        )
        await stack.until_handled(approval)
        credited = [e for e in await stack.outbox(claim["id"]) if e.type == "claim.credited"]
        assert [e.correlation_id for e in credited] == ["req-7f3a"]
