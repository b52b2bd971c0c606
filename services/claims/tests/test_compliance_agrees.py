"""One definition of "compliant" (services/claims/compliance.py), property-based: for random
ledgers, the compliance report (its rows, and its summary, which SQL computes) and each person's
transcript agree with each other and with the rule worked out here by hand, on SQLite (whose sums
are floats) and on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.claims.tests.harness import Stack, claims_stack

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

REQUIRED = {"public": Decimal(30), "professional": Decimal(60)}
_examples = itertools.count(1)

# one-decimal hours, with the values that sit on the requirement's edge well represented
hours = st.one_of(
    st.integers(1, 650).map(lambda tenths: Decimal(tenths) / 10),
    st.sampled_from([Decimal(v) for v in ("0.1", "0.2", "29.9", "30", "30.1", "59.9", "60")]),
)
Entry = tuple[str, Decimal, int, bool, str]  # subject, hours, year, counts, source
entries = st.lists(
    st.tuples(
        st.sampled_from(["public", "professional"]),
        hours,
        st.sampled_from([2026, 2026, 2026, 2025]),  # other years never count
        st.sampled_from([True, True, True, False]),  # counts (False: revoked)
        st.sampled_from(["claim", "city_platform"]),
    ),
    max_size=6,
)


@st.composite
def exactly_required(draw: st.DrawFn, subject: str) -> list[Entry]:
    """Live entries summing to exactly the requirement, in 2–6 parts: the sums a float adds up
    to a hair under the requirement (7.9 + 2.8 + 18.2 + 13.2 + 17.9 < 60 in binary floats)."""
    target = int(REQUIRED[subject] * 10)
    parts = draw(st.lists(st.integers(1, target // 2), min_size=1, max_size=5))
    while sum(parts) >= target:
        parts.pop()
    parts.append(target - sum(parts))
    return [(subject, Decimal(p) / 10, 2026, True, "claim") for p in parts]


@st.composite
def person_ledgers(draw: st.DrawFn) -> list[Entry]:
    ledger = draw(entries)
    for subject in REQUIRED:
        if draw(st.booleans()):
            ledger += draw(exactly_required(subject))
    return ledger


pending = st.lists(st.tuples(st.sampled_from(["public", "professional"]), hours), max_size=2)
ledgers = st.lists(st.tuples(person_ledgers(), pending), min_size=1, max_size=4)


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None: SQLite in the stack's directory."""
    if request.param != "postgres":
        return None
    make_pg_database: Callable[[str], str] = request.getfixturevalue("make_pg_database")
    return make_pg_database("claims_agree")


@pytest.fixture(scope="module")
async def stack(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("agree"), database_url) as s:
        await s.add_orgs(("city", "枣庄市人社局", "city", None))
        yield s


def by_hand(ledger: list[Entry]) -> dict[str, Decimal]:
    credited = {"public": Decimal(0), "professional": Decimal(0)}
    for subject, h, year, counts, _ in ledger:
        if year == 2026 and counts:
            credited[subject] += h
    return credited


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(persons=ledgers)
async def test_report_summary_rows_and_transcripts_agree(
    stack: Stack,
    persons: list[tuple[list[tuple[str, Decimal, int, bool, str]], list[tuple[str, Decimal]]]],
) -> None:
    n = next(_examples)
    district, unit = f"d{n}", f"u{n}"
    await stack.add_orgs(
        (district, f"区 {n}", "district", "city"), (unit, f"单位 {n}", "unit", district)
    )
    expected: dict[str, bool] = {}
    for ledger, in_review in persons:
        person = await stack.register(stack.orgs[unit])
        for subject, h, year, counts, source in ledger:
            await stack.credit(
                person.id, subject, str(h), year=year, source=source, revoked=not counts
            )
        for subject, h in in_review:
            await stack.pending_claim(person.id, float(h), subject)
        credited = by_hand(ledger)
        expected[person.id] = all(credited[s] >= REQUIRED[s] for s in REQUIRED)

    report = await stack.http.get(
        "/v1/reports/compliance",
        params={"year": 2026, "org_id": stack.orgs[district]},
        headers=stack.auth("district_admin", org=district),
    )
    assert report.status_code == 200, report.text
    body = report.json()
    rows = {item["id"]: item for item in body["items"]}
    assert set(rows) == set(expected)
    summary = body["summary"]  # computed in SQL, not from the rows
    assert summary["persons"] == len(expected)
    assert summary["compliant"] == sum(expected.values())
    # the SQL's summed gaps agree with the rows' (each the transcript's, checked below)
    gaps: dict[str, Decimal] = {
        s: round(sum((Decimal(str(r["gaps"][s])) for r in rows.values()), Decimal(0)), 1)
        for s in ("public", "professional")
    }
    assert summary["by_org"] == [
        {
            "org_id": stack.orgs[unit],
            "org_name": f"单位 {n}",
            "parent_id": stack.orgs[district],
            "self_appraising": False,
            "persons": len(expected),
            "compliant": sum(expected.values()),
            "non_compliant": len(expected) - sum(expected.values()),
            "gaps": {s: float(g) for s, g in gaps.items()},
        }
    ]
    for person_id, compliant in expected.items():
        response = await stack.http.get(
            f"/v1/persons/{person_id}/transcripts/2026", headers=stack.city
        )
        transcript = response.json()
        row = rows[person_id]
        assert transcript["compliant"] is row["compliant"] is compliant, (transcript, row)
        for key in ("credited", "pending", "gaps"):
            assert transcript[key] == row[key], key
