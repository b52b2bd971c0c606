"""Who may do what on each claims endpoint (DOMAIN.md: a reviewer sees and acts only within its own
organisation's scope). A person out of scope is a 404 like a missing one, never a 403, so that
existence does not leak; a person in scope but an action the role may not take is a 403.

The org tree:  city ─┬─ district D1 ─┬─ unit U1a   (person a)
                     │               ├─ unit U1b   (person b)
                     │               └─ agency A1  (freelancer f)
                     ├─ district D2 ─── unit U2    (person c)
                     ├─ department P ── unit UP    (person d, a city-direct unit)
                     ├─ provider PR, exam_center EC

The role × endpoint matrix runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest

from services.claims.tests.harness import (
    Person,
    Stack,
    claims_stack,
    masked,
    new_id_number,
)
from tests.support import assert_problem

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

PERSONS = ("a", "b", "f", "c", "d")
# who sees whom: principal label -> person labels in scope
VISIBLE: dict[str, set[str]] = {
    "self_a": {"a"},
    "unit_U1a": {"a"},
    "unit_U2": {"c"},
    "district_D1": {"a", "b", "f"},
    "district_D2": {"c"},
    "department_P": {"d"},
    "agency_A1": {"f"},
    "city": set(PERSONS),
    "provider_PR": set(),
    "exam_center_EC": set(),
    # the e-learning platform's integration and the operators read no person (issue 7, item 6)
    "system": set(),
    "ops": set(),
}
PRINCIPALS = tuple(VISIBLE)


@dataclass
class World:
    stack: Stack
    orgs: dict[str, str] = field(default_factory=dict)
    persons: dict[str, Person] = field(default_factory=dict)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)  # person label -> claim

    def principal(self, label: str) -> dict[str, str]:
        if label == "self_a":
            return self.persons["a"].auth
        if label == "city":
            return self.stack.city
        if label in ("system", "ops"):
            return self.stack.auth(label)
        role, org = label.rsplit("_", 1)
        role = {"unit": "unit_admin", "district": "district_admin"}.get(role, role)
        role = {"department": "department_admin", "agency": "agency_admin"}.get(role, role)
        return self.stack.auth(role, org=self.orgs[org])


async def build_world(stack: Stack) -> World:
    w = World(stack)
    city = await stack.add_org("city")
    for label, type_, parent in [
        ("D1", "district", city),
        ("D2", "district", city),
        ("P", "department", city),
        ("PR", "provider", city),
        ("EC", "exam_center", city),
    ]:
        w.orgs[label] = await stack.add_org(type_, parent)
    for label, type_, parent in [
        ("U1a", "unit", "D1"),
        ("U1b", "unit", "D1"),
        ("A1", "agency", "D1"),
        ("U2", "unit", "D2"),
        ("UP", "unit", "P"),
    ]:
        w.orgs[label] = await stack.add_org(type_, w.orgs[parent])
    homes = {"a": "U1a", "b": "U1b", "f": "A1", "c": "U2", "d": "UP"}
    for label, home in homes.items():
        kind = "agency" if home == "A1" else "unit"
        person = await stack.register(w.orgs[home], kind=kind)
        w.persons[label] = person
        evidence = await stack.upload(person)
        w.claims[label] = await stack.submit(
            person,
            {
                "year": 2026,
                "category": "competition",
                "title": "技能竞赛",
                "evidence_ids": [evidence],
            },
        )
    return w


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None: the app's SQLite file; on PostgreSQL a fresh database (created outside the loop)."""
    if request.param == "sqlite":
        return None
    make: Callable[[str], str] = request.getfixturevalue("make_pg_database")
    return make("claims")


@pytest.fixture(scope="module")
async def world(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    async with claims_stack(tmp_path_factory.mktemp("scope"), database_url) as stack:
        yield await build_world(stack)


sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def expect_visible(response: Any, visible: bool, not_found_code: str) -> None:
    if visible:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 404, not_found_code)


@pytest.mark.postgres
class TestReadScope:
    """Reads: in scope → 200, out of scope (or a role without people) → 404."""

    @pytest.mark.parametrize("who", PRINCIPALS)
    async def test_get_person(self, world: World, who: str) -> None:
        for label in PERSONS:
            person = world.persons[label]
            r = await world.stack.http.get(f"/v1/persons/{person.id}", headers=world.principal(who))
            expect_visible(r, label in VISIBLE[who], "person_not_found")
            if r.status_code == 200:
                view = r.json()
                assert view["id_number"] == person.id_number
                assert view["id_number_masked"] == masked(person.id_number)
            else:
                assert person.id_number not in r.text

    @pytest.mark.parametrize("who", PRINCIPALS)
    async def test_transcript(self, world: World, who: str) -> None:
        for label in PERSONS:
            person = world.persons[label]
            r = await world.stack.http.get(
                f"/v1/persons/{person.id}/transcripts/2026", headers=world.principal(who)
            )
            expect_visible(r, label in VISIBLE[who], "person_not_found")
            if r.status_code == 200:
                assert r.json()["pending"]["professional"] == 10

    @pytest.mark.parametrize("who", PRINCIPALS)
    async def test_get_claim(self, world: World, who: str) -> None:
        for label in PERSONS:
            claim = world.claims[label]
            r = await world.stack.http.get(
                f"/v1/claims/{claim['id']}", headers=world.principal(who)
            )
            expect_visible(r, label in VISIBLE[who], "claim_not_found")
            if r.status_code == 404:  # exactly what a missing claim gives: no owner leaks
                assert claim["person_id"] not in r.text

    @pytest.mark.parametrize("who", PRINCIPALS)
    async def test_list_claims(self, world: World, who: str) -> None:
        for label in PERSONS:
            person = world.persons[label]
            r = await world.stack.http.get(
                "/v1/claims", params={"person_id": person.id}, headers=world.principal(who)
            )
            expect_visible(r, label in VISIBLE[who], "person_not_found")
            if r.status_code == 200:
                assert world.claims[label]["id"] in [c["id"] for c in r.json()["items"]]

    @pytest.mark.parametrize("who", PRINCIPALS)
    async def test_org_wide_lists(self, world: World, who: str) -> None:
        """``GET /v1/persons`` and ``GET /v1/claims`` without a person: exactly the persons (and
        their claims) the caller may see; roles that see no org's people → 403; a personnel
        token's claims list is its own."""
        headers = world.principal(who)
        persons = await world.stack.http.get("/v1/persons", headers=headers)
        claims = await world.stack.http.get("/v1/claims", headers=headers)
        by_id = {p.id: label for label, p in world.persons.items()}
        claim_of = {c["id"]: label for label, c in world.claims.items()}
        if who == "self_a":
            assert_problem(persons, 403, "role_not_allowed")
            assert {claim_of.get(c["id"]) for c in claims.json()["items"]} == {"a"}
            return
        if not VISIBLE[who]:
            assert_problem(persons, 403, "role_not_allowed")
            assert_problem(claims, 403, "role_not_allowed")
            return
        assert persons.status_code == 200 and claims.status_code == 200, persons.text
        listed = {by_id[p["id"]] for p in persons.json()["items"] if p["id"] in by_id}
        assert listed == VISIBLE[who] and persons.json()["total"] >= len(listed)
        assert all(world.persons[k].id_number not in persons.text for k in PERSONS)
        mine = {claim_of[c["id"]] for c in claims.json()["items"] if c["id"] in claim_of}
        assert mine == VISIBLE[who]
        # asking about an org outside the scope is the same 404 as an unknown one
        for org in ("D2", "nope"):
            if who == "city" or (org == "D2" and who == "district_D2"):
                continue
            r = await world.stack.http.get(
                "/v1/persons", params={"org_id": world.orgs.get(org, org)}, headers=headers
            )
            assert_problem(r, 404, "org_not_found")

    async def test_unknown_ids_are_the_same_404(self, world: World) -> None:
        for path in ("/v1/persons/nope", "/v1/persons/nope/transcripts/2026"):
            assert_problem(
                await world.stack.http.get(path, headers=world.stack.city), 404, "person_not_found"
            )
        r = await world.stack.http.get("/v1/claims/nope", headers=world.stack.city)
        assert_problem(r, 404, "claim_not_found")


@pytest.mark.postgres
class TestWriteScope:
    """Writes on someone's claims: only the person themselves; admins in scope get 403,
    everyone out of scope 404."""

    @pytest.mark.parametrize("who", PRINCIPALS)
    async def test_submit_claim(self, world: World, who: str) -> None:
        for label in PERSONS:
            person = world.persons[label]
            body = {
                "person_id": person.id,
                "year": 2026,
                "category": "competition",
                "title": "行业比赛",
                "evidence_ids": [],
            }
            r = await world.stack.http.post("/v1/claims", json=body, headers=world.principal(who))
            if label not in VISIBLE[who]:
                assert_problem(r, 404, "person_not_found")
            elif who == "self_a":
                # in scope and the claimant: the rules speak next (no evidence attached)
                assert_problem(r, 422, "evidence_required")
            else:
                assert_problem(r, 403, "not_claimant")

    @pytest.mark.parametrize("action", ["withdraw", "revisions"])
    @pytest.mark.parametrize("who", PRINCIPALS)
    async def test_withdraw_and_revise(self, world: World, who: str, action: str) -> None:
        for label in PERSONS:
            claim = world.claims[label]
            body = {
                "person_id": claim["person_id"],
                "year": 2026,
                "category": "competition",
                "title": "x",
                "evidence_ids": [],
            }
            if who == "self_a" and action == "withdraw" and label == "a":
                continue  # withdrawing works: see test_the_person_withdraws
            kwargs: dict[str, Any] = {"json": body} if action == "revisions" else {}
            r = await world.stack.http.post(
                f"/v1/claims/{claim['id']}/{action}", headers=world.principal(who), **kwargs
            )
            if label not in VISIBLE[who]:
                assert_problem(r, 404, "claim_not_found")
            elif who == "self_a":
                assert_problem(r, 409, "claim_not_rejected")
            else:
                assert_problem(r, 403, "not_claimant")
        # nothing changed
        for label in PERSONS:
            assert (await world.stack.claim(world.claims[label]["id"]))["status"] == "in_review"

    async def test_the_person_withdraws(self, world: World) -> None:
        person = world.persons["a"]
        evidence = await world.stack.upload(person)
        claim = await world.stack.submit(
            person,
            {
                "year": 2026,
                "category": "study",
                "title": "学习",
                "hours": 2,
                "evidence_ids": [evidence],
            },
        )
        r = await world.stack.http.post(f"/v1/claims/{claim['id']}/withdraw", headers=person.auth)
        assert r.status_code == 200 and r.json()["status"] == "withdrawn"

    @pytest.mark.parametrize(
        ("who", "home", "status", "code"),
        [
            ("city", "U2", 201, None),
            ("unit_U1a", "U1a", 201, None),
            ("unit_U1a", "U1b", 403, "outside_scope"),
            ("district_D1", "U1b", 201, None),
            ("district_D1", "A1", 201, None),
            ("district_D1", "U2", 403, "outside_scope"),
            ("department_P", "UP", 201, None),
            ("department_P", "U1a", 403, "outside_scope"),
            ("agency_A1", "A1", 201, None),
            ("agency_A1", "U1a", 403, "outside_scope"),
            ("provider_PR", "U1a", 403, "outside_scope"),
            ("exam_center_EC", "U1a", 403, "outside_scope"),
            ("self_a", "U1a", 409, "account_has_person"),
        ],
    )
    async def test_register_person(
        self, world: World, who: str, home: str, status: int, code: str | None
    ) -> None:
        id_number = new_id_number()
        body = {
            "id_number": id_number,
            "name": "新人",
            "affiliation": {
                "kind": "agency" if home == "A1" else "unit",
                "org_id": world.orgs[home],
            },
        }
        r = await world.stack.http.post("/v1/persons", json=body, headers=world.principal(who))
        if code is None:
            assert r.status_code == status, r.text
            assert r.json()["id_number"] == id_number
            assert r.json()["affiliation"]["org_id"] == world.orgs[home]
        else:
            assert_problem(r, status, code)

    @pytest.mark.parametrize(
        ("who", "start", "to", "status", "code"),
        [
            ("city", "U1a", "U2", 200, None),
            ("district_D1", "U1a", "U1b", 200, None),
            ("district_D1", "U1a", "U2", 403, "outside_scope"),  # D1 holds only the old org
            ("unit_U1a", "U1a", "U1b", 403, "outside_scope"),  # U1a holds only the old org
            ("unit_U2", "U1a", "U2", 404, "person_not_found"),  # the person is not theirs
            ("department_P", "U1a", "UP", 404, "person_not_found"),
            ("self", "U1a", "U1b", 403, "outside_scope"),
            ("provider_PR", "U1a", "U1b", 404, "person_not_found"),
        ],
    )
    async def test_transfer_person(
        self, world: World, who: str, start: str, to: str, status: int, code: str | None
    ) -> None:
        person = await world.stack.register(world.orgs[start])
        headers = person.auth if who == "self" else world.principal(who)
        r = await world.stack.http.post(
            f"/v1/persons/{person.id}/transfer",
            json={"affiliation": {"kind": "unit", "org_id": world.orgs[to]}},
            headers=headers,
        )
        moved = world.orgs[to] if code is None else world.orgs[start]
        if code is None:
            assert r.status_code == status, r.text
        else:
            assert_problem(r, status, code)
        r = await world.stack.http.get(f"/v1/persons/{person.id}", headers=world.stack.city)
        assert r.json()["affiliation"]["org_id"] == moved

    async def test_transfer_moves_the_scope(self, world: World) -> None:
        person = await world.stack.register(world.orgs["U1a"])
        r = await world.stack.http.post(
            f"/v1/persons/{person.id}/transfer",
            json={"affiliation": {"kind": "unit", "org_id": world.orgs["UP"]}},
            headers=world.stack.city,
        )
        assert r.status_code == 200, r.text
        path = f"/v1/persons/{person.id}"
        old = await world.stack.http.get(path, headers=world.principal("unit_U1a"))
        assert_problem(old, 404, "person_not_found")
        new = await world.stack.http.get(path, headers=world.principal("department_P"))
        assert new.status_code == 200
        events = [e.type for e in await world.stack.outbox(person.id)]
        assert events == ["person.registered", "person.updated"]


@sqlite_only
class TestMe:
    @pytest.mark.parametrize("who", [p for p in PRINCIPALS if p != "self_a"])
    async def test_only_personnel(self, world: World, who: str) -> None:
        r = await world.stack.http.get("/v1/me", headers=world.principal(who))
        assert_problem(r, 403, "role_not_allowed")

    async def test_me_is_the_callers_person_with_the_years_summary(self, world: World) -> None:
        person = world.persons["a"]
        r = await world.stack.http.get("/v1/me", headers=person.auth)
        assert r.status_code == 200, r.text
        me = r.json()
        assert (me["id"], me["id_number"], me["year"]) == (person.id, person.id_number, 2026)
        assert me["id_number_masked"] == masked(person.id_number)
        assert me["summary"]["required"] == {"public": 30, "professional": 60, "total": 90}
        assert me["summary"]["compliant"] is False

    async def test_a_token_naming_an_unknown_person(self, world: World) -> None:
        r = await world.stack.http.get("/v1/me", headers=world.stack.auth("personnel", person="x"))
        assert_problem(r, 404, "person_not_found")

    async def test_self_registration_with_a_login_only(self, world: World) -> None:
        stack = world.stack
        id_number = new_id_number()
        login = stack.auth("personnel", sub=f"wechat:{uuid.uuid4().hex}", id_number=id_number)
        assert_problem(await stack.http.get("/v1/me", headers=login), 404, "person_not_registered")
        body = {
            "id_number": id_number,
            "name": "自注册",
            "phone": "13800000000",
            "affiliation": {"kind": "unit", "org_id": world.orgs["U2"]},
        }
        r = await stack.http.post("/v1/persons", json=body, headers=login)
        assert r.status_code == 201, r.text
        person_id = r.json()["id"]
        me = await stack.http.get("/v1/me", headers=login)
        assert me.status_code == 200 and me.json()["id"] == person_id
        assert me.json()["id_number"] == id_number
        assert (await stack.http.get(f"/v1/persons/{person_id}", headers=login)).status_code == 200
        # the login cannot see anyone else, nor register a second person
        other = world.persons["c"].id
        assert_problem(
            await stack.http.get(f"/v1/persons/{other}", headers=login), 404, "person_not_found"
        )
        again = await stack.http.post(
            "/v1/persons", json={**body, "id_number": new_id_number()}, headers=login
        )
        assert_problem(again, 409, "account_has_person")
        # and it claims for itself with its own evidence
        upload = await stack.http.post(
            "/v1/evidence",
            files={"file": ("c.pdf", b"%PDF-1.4\nself\n%%EOF\n", "application/pdf")},
            headers=login,
        )
        assert upload.status_code == 201
        claim = await stack.http.post(
            "/v1/claims",
            json={
                "person_id": person_id,
                "year": 2026,
                "category": "competition",
                "title": "技术比武",
                "evidence_ids": [upload.json()["id"]],
            },
            headers=login,
        )
        assert claim.status_code == 201, claim.text
        # the unit of U2 sees the new person
        seen = await stack.http.get(f"/v1/persons/{person_id}", headers=world.principal("unit_U2"))
        assert seen.status_code == 200


@sqlite_only
class TestMasking:
    async def test_review_gets_only_the_masked_id_number(self, world: World) -> None:
        person = world.persons["a"]
        [submitted] = [
            e
            for e in await world.stack.outbox(world.claims["a"]["id"])
            if e.type == "claim.submitted"
        ]
        assert submitted.data["id_number_masked"] == masked(person.id_number)
        assert person.id_number not in submitted.to_bytes().decode()


@sqlite_only
class TestAuthentication:
    ENDPOINTS = (
        ("POST", "/v1/persons"),
        ("GET", "/v1/persons/x"),
        ("POST", "/v1/persons/x/transfer"),
        ("GET", "/v1/me"),
        ("POST", "/v1/evidence"),
        ("POST", "/v1/claims"),
        ("GET", "/v1/claims/x"),
        ("GET", "/v1/claims?person_id=x"),
        ("POST", "/v1/claims/x/withdraw"),
        ("POST", "/v1/claims/x/revisions"),
        ("GET", "/v1/persons/x/transcripts/2026"),
    )

    def bad_tokens(self, world: World) -> dict[str, tuple[dict[str, str], str]]:
        now = int(time.time())
        foreign = jwt.encode(
            {"sub": "x", "role": "city_admin", "iss": "zz-ce", "iat": now, "exp": now + 60},
            "another-key-that-is-long-enough-for-hs256",
            algorithm="HS256",
        )
        expired = world.stack.token("city_admin", ttl_s=-60)
        return {
            "missing": ({}, "missing_token"),
            "not-bearer": ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_token"),
            "empty-bearer": ({"Authorization": "Bearer "}, "missing_token"),
            "garbage": ({"Authorization": "Bearer not.a.jwt"}, "invalid_token"),
            "foreign-key": ({"Authorization": f"Bearer {foreign}"}, "invalid_token"),
            "expired": ({"Authorization": f"Bearer {expired}"}, "invalid_token"),
        }

    @pytest.mark.parametrize(("method", "path"), ENDPOINTS)
    async def test_401_problem(self, world: World, method: str, path: str) -> None:
        for headers, code in self.bad_tokens(world).values():
            r = await world.stack.http.request(method, path, headers=headers)
            assert_problem(r, 401, code)
