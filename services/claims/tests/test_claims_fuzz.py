"""Any claim body, well-formed or not, gets a 201 or a problem document naming a rule, never a
500, and a refused claim leaves nothing behind (property-based, through the real API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.claims.tests.harness import Person, Stack, claims_stack

CATEGORIES = [
    "training",
    "study",
    "qualification_exam",
    "achievement",
    "expert_activity",
    "aid_deployment",
    "competition",
    "exam_staff",
    "special_leave",
    "transfer_in",
    "sabbatical",  # not a category
]
hours = st.one_of(
    st.none(),
    st.integers(-5, 200),
    st.floats(-10, 300, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.05, 2.25, 7.9, 8.0, 16.0, 1e9]),
)
dates = st.one_of(st.none(), st.dates().map(lambda d: d.isoformat()), st.just("2026-02-30"))
texts = st.one_of(st.none(), st.text(max_size=20))


@st.composite
def claim_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "year": draw(st.sampled_from([2026, 2026, 2026, 2025, 2027])),
        "category": draw(st.sampled_from(CATEGORIES)),
        "title": draw(st.text(min_size=0, max_size=40)),
        "hours": draw(hours),
        "start_date": draw(dates),
        "end_date": draw(dates),
        "months": draw(st.one_of(st.none(), st.integers(-2, 14))),
        "subject": draw(st.one_of(st.none(), st.sampled_from(["public", "professional", "x"]))),
        "reference_no": draw(texts),
        "certificate_code": draw(texts),
        "exam_card_no": draw(texts),
        "leave_kind": draw(
            st.one_of(st.none(), st.sampled_from(["abroad", "sick", "maternity", "other", "x"]))
        ),
        "leave_reason": draw(texts),
        "credits": draw(
            st.one_of(
                st.none(),
                st.lists(
                    st.fixed_dictionaries(
                        {"subject": st.sampled_from(["public", "professional"]), "hours": hours}
                    ),
                    max_size=3,
                ),
            )
        ),
    }
    return {k: v for k, v in body.items() if v is not None or draw(st.booleans())}


@pytest.fixture(scope="module")
async def fuzz_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Stack, Person, str]]:
    async with claims_stack(tmp_path_factory.mktemp("fuzz")) as stack:
        unit = await stack.add_org("unit")
        person = await stack.register(unit)
        yield stack, person, await stack.upload(person)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=claim_bodies(), with_evidence=st.booleans())
async def test_any_claim_body_is_accepted_or_refused_cleanly(
    fuzz_stack: tuple[Stack, Person, str], body: dict[str, Any], with_evidence: bool
) -> None:
    stack, person, evidence = fuzz_stack
    body = {"person_id": person.id, **body, "evidence_ids": [evidence] if with_evidence else []}
    before = len(await stack.claims_of(person.id))
    outbox_before = await stack.outbox_count()
    r = await stack.http.post("/v1/claims", json=body, headers=person.auth)
    assert r.status_code in (201, 409, 422), (r.status_code, r.text, body)
    after = len(await stack.claims_of(person.id))
    if r.status_code == 201:
        assert after == before + 1
        claim = r.json()
        # a claim that was accepted can be withdrawn, freeing its evidence for the next example
        w = await stack.http.post(f"/v1/claims/{claim['id']}/withdraw", headers=person.auth)
        assert w.status_code == 200, w.text
        return
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] and problem["detail"], problem
    assert after == before and await stack.outbox_count() == outbox_before
