"""The interpretations on record (issue 20 item 13): the readings of the notice in the year's rule
data, listed in docs/rules.md, and shown on the transcript where they apply; the subjects of the
categories the notice names none for (item 12) come from the rule data too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.claims import rules
from services.claims.tests.harness import Person, Stack, claims_stack
from tests.support import assert_problem

RULES_MD = Path(__file__).resolve().parents[3] / "docs" / "rules.md"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("interpretations")) as s:
        s.orgs["unit"] = await s.add_org("unit", await s.add_org("district"))
        yield s


@pytest.fixture
async def person(stack: Stack) -> Person:
    return await stack.register(stack.orgs["unit"])


async def test_the_special_leave_reading_is_on_the_transcript_of_a_leave(
    stack: Stack, person: Person
) -> None:
    body = {
        "year": 2026,
        "category": "special_leave",
        "title": "产假",
        "months": 3,
        "start_date": "2026-03-01",
        "end_date": "2026-05-31",
        "leave_kind": "maternity",
        "evidence_ids": [await stack.upload(person)],
    }
    await stack.approve(await stack.submit(person, body))
    transcript = await stack.transcript(person.id)
    shown = {i["id"]: i for i in transcript["interpretations"]}
    leave = shown["special_leave_time_off_post"]
    assert "按实际在岗时间折算" in leave["text"] and leave["section"] == "附件1.7"
    assert "declaration_window" in shown  # a general one, on every transcript
    assert "aid_deployment_prorated" not in shown  # no aid deployment here
    [entry] = [e for e in transcript["entries"] if e["subject"] == "public"]
    assert "special_leave_time_off_post" in entry["interpretations"]


async def test_a_transcript_without_entries_shows_only_the_general_readings(
    stack: Stack, person: Person
) -> None:
    transcript = await stack.transcript(person.id)
    general = [i.id for i in rules.load_ruleset(2026).interpretations if i.general]
    assert [i["id"] for i in transcript["interpretations"]] == general


async def test_subjects_the_notice_names_none_for_come_from_the_rule_data(
    stack: Stack, person: Person
) -> None:
    """Item 12: study, exam cards, achievements and competitions credit what the rule data's
    ``allowed_subjects`` say (professional today); a public claim is ``invalid_subject``."""
    ruleset = rules.load_ruleset(2026)
    for name in ("study", "qualification_exam", "achievement", "competition", "exam_staff"):
        assert ruleset.categories[name].allowed_subjects == ("professional",)
    body = {
        "person_id": person.id,
        "year": 2026,
        "category": "study",
        "title": "单位集中学习",
        "subject": "public",
        "hours": 4,
        "evidence_ids": [await stack.upload(person)],
    }
    r = await stack.http.post("/v1/claims", json=body, headers=person.auth)
    assert assert_problem(r, 422, "invalid_subject")["allowed"] == ["professional"]


def test_every_interpretation_in_the_rule_data_is_in_docs_rules_md() -> None:
    text = RULES_MD.read_text(encoding="utf-8")
    for interpretation in rules.load_ruleset(2026).interpretations:
        assert f"`{interpretation.id}`" in text, interpretation.id
