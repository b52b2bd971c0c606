"""Who a person is (issue 7, items 4, 5 and 6), through the claims API:

* an ID number typed in full-width digits is the same number: stored in ASCII, and a second
  registration of it is a duplicate; other Unicode digits are refused;
* a login registers itself only as the ID number its identity provider verified;
* the e-learning platform's integration (``system``) and the operators (``ops``) read no person
  and no evidence file.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from pydantic import SecretStr

from libs.common.asciitext import fold_width
from libs.common.auth import id_number_digest
from services.claims.tests.harness import Stack, claims_stack, new_id_number, with_bad_checksum
from tests.support import assert_problem

FULL_WIDTH_DIGITS = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("identity")) as stack:
        stack.orgs["unit"] = await stack.add_org("unit")
        yield stack


def person_body(stack: Stack, id_number: str, **extra: str) -> dict[str, object]:
    return {
        "id_number": id_number,
        "name": "全角",
        "affiliation": {"kind": "unit", "org_id": stack.orgs["unit"]},
        **extra,
    }


async def test_full_width_id_number_is_stored_in_ascii_and_duplicates_are_found(
    stack: Stack,
) -> None:
    ascii_number = new_id_number()
    typed = ascii_number.translate(FULL_WIDTH_DIGITS)
    assert typed != ascii_number and fold_width(typed) == ascii_number
    r = await stack.http.post(
        "/v1/persons",
        json=person_body(stack, typed, phone="１３８００１３８０００"),
        headers=stack.city,
    )
    assert r.status_code == 201, r.text
    assert (r.json()["id_number"], r.json()["phone"]) == (ascii_number, "13800138000")
    again = await stack.http.post(
        "/v1/persons", json=person_body(stack, ascii_number), headers=stack.city
    )
    assert_problem(again, 409, "duplicate_person")


@pytest.mark.parametrize("digits", [ARABIC_INDIC_DIGITS, str.maketrans("0", "𝟎")])
async def test_other_unicode_digits_are_refused(stack: Stack, digits: dict[int, str]) -> None:
    number = new_id_number().translate(digits)
    r = await stack.http.post("/v1/persons", json=person_body(stack, number), headers=stack.city)
    assert_problem(r, 422, "invalid_id_number")


async def test_phone_must_be_ascii_digits_after_folding(stack: Stack) -> None:
    body = person_body(stack, new_id_number(), phone="١٣٨٠٠١٣٨٠٠٠")
    r = await stack.http.post("/v1/persons", json=body, headers=stack.city)
    assert_problem(r, 422, "validation_error")


class TestSelfRegistration:
    async def test_a_login_registers_only_its_verified_id_number(self, stack: Stack) -> None:
        mine, theirs = new_id_number(), new_id_number()
        login = stack.auth("personnel", sub=f"wechat:{uuid.uuid4().hex}", id_number=mine)
        r = await stack.http.post("/v1/persons", json=person_body(stack, theirs), headers=login)
        assert_problem(r, 403, "identity_mismatch")
        # the real person is not locked out by the attempt
        r = await stack.http.post(
            "/v1/persons", json=person_body(stack, theirs), headers=stack.city
        )
        assert r.status_code == 201, r.text
        # typed in full width, one's own number is still one's own
        r = await stack.http.post(
            "/v1/persons",
            json=person_body(stack, mine.translate(FULL_WIDTH_DIGITS)),
            headers=login,
        )
        assert r.status_code == 201, r.text
        assert r.json()["id_number"] == mine

    async def test_a_login_without_a_verified_id_number_registers_nobody(
        self, stack: Stack
    ) -> None:
        login = stack.auth("personnel", sub=f"wechat:{uuid.uuid4().hex}")
        r = await stack.http.post(
            "/v1/persons", json=person_body(stack, new_id_number()), headers=login
        )
        assert_problem(r, 403, "identity_not_verified")

    def test_only_personnel_tokens_carry_an_id_number(self, stack: Stack) -> None:
        with pytest.raises(ValueError, match="personnel"):
            stack.token("unit_admin", org="o", id_number=new_id_number())
        with pytest.raises(ValueError, match="check character"):
            stack.token("personnel", sub="s", id_number=with_bad_checksum(new_id_number()))


@pytest.mark.parametrize("role", ["system", "ops"])
async def test_integration_and_ops_tokens_read_no_person_nor_evidence(
    stack: Stack, role: str
) -> None:
    person = await stack.register(stack.orgs["unit"])
    evidence_id = await stack.upload(person)
    headers = stack.auth(role)
    for path in (
        f"/v1/persons/{person.id}",
        f"/v1/persons/{person.id}/transcripts/2026",
        f"/v1/evidence/{evidence_id}",
        f"/v1/evidence/{evidence_id}/content",
    ):
        r = await stack.http.get(path, headers=headers)
        assert r.status_code in (403, 404), (path, r.status_code)
        assert person.id_number not in r.text
    r = await stack.http.get("/v1/reports/compliance", params={"year": 2026}, headers=headers)
    assert_problem(r, 403, "role_not_allowed")
    # the operators do see the dead letters; the integration does not
    r = await stack.http.get("/v1/admin/dead-letters", headers=headers)
    assert r.status_code == (200 if role == "ops" else 403)


async def test_a_keyed_hash_of_the_id_number_binds_the_login_too(tmp_path: Path) -> None:
    """An identity provider may send HMAC-SHA256(key, ID number) instead of the number."""
    key = "identity-provider-shared-key"
    async with claims_stack(tmp_path, identity_hmac_key=SecretStr(key)) as stack:
        stack.orgs["unit"] = await stack.add_org("unit")
        mine, theirs = new_id_number(), new_id_number()
        now = int(time.time())
        claims = {"role": "personnel", "iss": "zz-ce", "iat": now, "exp": now + 600}
        signing_key = stack.app.state.tokens._sign_key
        login = {
            "Authorization": "Bearer "
            + jwt.encode(
                {**claims, "sub": "idp:1", "id_number_hmac": id_number_digest(mine, key)},
                signing_key,
                algorithm="HS256",
            )
        }
        r = await stack.http.post("/v1/persons", json=person_body(stack, theirs), headers=login)
        assert_problem(r, 403, "identity_mismatch")
        r = await stack.http.post("/v1/persons", json=person_body(stack, mine), headers=login)
        assert r.status_code == 201, r.text
