"""Case 2: the claim rules (``services.claims.rules.assess``), pure CPU.

Subject: ``rules.assess(load_ruleset(2026), claim, credited, now=...)`` over a fixed, realistic
mix of claims (training most common, then study, exam staff, expert activity, the item
categories, the prorated ones and transfer-in), assessed against a person who already has
credits (so caps are computed, one study claim is cut with a warning) plus a few claims the
rules refuse (a daily cap exceeded, a date in the future), which raise ``RuleViolation``.

Baseline: validating the same claims, as JSON request bodies, into the claims API's request
model, the claim command (``services.claims.commands.ClaimCommand.model_validate``). Every
submission pays both on the same path, so the ratio says how the rules' cost compares with
request-body validation (pydantic v2, compiled core): a ratio of 0.25 means assessing a claim
costs about four validations.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bench.common import Result, interleave_sync
from libs.common.errors import RuleViolation
from services.claims import rules
from services.claims.commands import ClaimCommand
from services.claims.service import Verified, claim_input

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # fixed: results must not depend on the date
BASELINE_FACTOR = 4
PERSON = "0b7e3a5c-1111-4c22-9333-444455556666"


def _body(category: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "person_id": PERSON,
        "year": 2026,
        "category": category,
        "title": f"{category} #{n}",
        "evidence_ids": [f"ev-{category}-{n}"],
        **fields,
    }


def claim_mix() -> list[tuple[dict[str, Any], int]]:
    """(request body, evidence count) pairs; weights follow what a city sees most."""
    mix: list[tuple[dict[str, Any], int]] = []
    for n in range(10):  # training, one- to three-day courses, mostly professional
        day = 1 + n * 2
        mix.append(
            (
                _body(
                    "training",
                    n,
                    subject="public" if n % 4 == 0 else "professional",
                    # a public training cites its public e-certificate (verified in run())
                    certificate_code=f"ZZ2026-PUB-{n:04d}" if n % 4 == 0 else None,
                    hours=[6, 8, 12.5, 16, 24][n % 5],
                    start_date=f"2026-{3 + n % 8:02d}-{day:02d}",
                    end_date=f"2026-{3 + n % 8:02d}-{day + 2:02d}",
                ),
                1,
            )
        )
    for n in range(4):  # study: one of them is cut by the 40-hour cap
        mix.append((_body("study", n, hours=[2, 4, 8, 3][n]), 1))
    for n in range(3):  # exam staff: verified card hours, or not yet verified
        mix.append((_body("exam_staff", n, hours=6, exam_card_no=f"KW2026-{n:04d}"), 0))
    for n in range(2):
        mix.append(
            (
                _body(
                    "expert_activity", n, hours=8, start_date="2026-06-10", end_date="2026-06-11"
                ),
                1,
            )
        )
    mix.append((_body("qualification_exam", 0, certificate_code="ZG-2026-001"), 1))
    mix.append((_body("achievement", 0, reference_no="ZL202610001234"), 1))
    mix.append((_body("competition", 0, hours=10), 1))
    # declared by dates (the months follow from them), the months credited once
    mix.append((_body("aid_deployment", 0, start_date="2026-01-01", end_date="2026-06-30"), 1))
    mix.append(
        (
            _body(
                "special_leave",
                0,
                months=4,
                leave_kind="maternity",
                start_date="2026-07-01",
                end_date="2026-10-31",
            ),
            1,
        )
    )
    mix.append(
        (
            _body(
                "transfer_in",
                0,
                transfer_date="2026-04-01",
                issuing_authority="济南市人力资源和社会保障局",
                credits=[
                    {"subject": "public", "hours": 12},
                    {"subject": "professional", "hours": 30},
                ],
            ),
            1,
        )
    )
    # refused by the rules (RuleViolation): over the daily cap, and a date in the future
    mix.append((_body("training", 90, hours=20, start_date="2026-05-04", end_date="2026-05-05"), 1))
    mix.append((_body("training", 91, hours=8, start_date="2026-12-01", end_date="2026-12-01"), 1))
    return mix


def _verified(body: dict[str, Any]) -> Verified | None:
    """A public training counts as public only with its verified public e-certificate."""
    if body.get("subject") != "public":
        return None
    return Verified(
        certificate_hours=Decimal(str(body["hours"])), certified_subject="public", any=True
    )


def credited() -> rules.CreditedSoFar:
    """A person part-way through the year: some training, 34 study hours, one achievement
    (52 professional hours credited: under the 60 required, so no "requirement met" notes)."""
    c = rules.Credit
    return rules.CreditedSoFar.from_approved(
        [
            ("training", [c("public", Decimal(12))]),
            ("training", [c("professional", Decimal(8))]),
            ("study", [c("professional", Decimal(34))]),
            ("achievement", [c("professional", Decimal(10))]),
        ],
        outside_claims={"public": Decimal("6.5")},
    )


def run(*, ops: int, rounds: int) -> list[Result]:
    """``ops`` assessments (and ``BASELINE_FACTOR`` × as many validations) per round."""
    ruleset = rules.load_ruleset(2026)
    ledger = credited()
    mix = claim_mix()
    inputs = [
        claim_input(ClaimCommand.model_validate(body), count, _verified(body))
        for body, count in mix
    ]
    bodies = [body for body, _ in mix]

    # check the mix once: the expected refusals, so a rules change that alters it shows up here
    refused = warned = 0
    for item in inputs:
        try:
            warned += bool(rules.assess(ruleset, item, ledger, now=NOW).warnings)
        except RuleViolation:
            refused += 1
    for body in bodies:
        ClaimCommand.model_validate(body)
    if refused != 2:
        raise RuntimeError(f"the claim mix should have 2 refusals, the rules gave {refused}")

    def subject() -> int:
        assess = rules.assess
        size = len(inputs)
        for i in range(ops):
            try:
                assess(ruleset, inputs[i % size], ledger, now=NOW)
            except RuleViolation:
                pass
        return ops

    # validation is several times faster: give it more calls so its rounds last about as long
    baseline_ops = ops * BASELINE_FACTOR

    def baseline() -> int:
        validate = ClaimCommand.model_validate
        size = len(bodies)
        for i in range(baseline_ops):
            validate(bodies[i % size])
        return baseline_ops

    subject()
    baseline()  # warm-up
    start = time.perf_counter()
    result = interleave_sync(rounds, subject, baseline)
    elapsed = time.perf_counter() - start
    return [
        Result(
            case="rules.assess",
            metric=f"assess() on a {len(mix)}-claim mix",
            unit="call/s",
            figure=result.subject_median,
            baseline=result.baseline_median,
            baseline_label="ClaimCommand.model_validate of the same bodies",
            better="higher",
            details={
                "ops_per_round": ops,
                "baseline_ops_per_round": baseline_ops,
                "mix_size": len(mix),
                "mix_refused": refused,
                "mix_with_warnings": warned,
                "categories": sorted({b["category"] for b in bodies}),
                "seconds": round(elapsed, 3),
                **result.details(),
            },
        )
    ]
