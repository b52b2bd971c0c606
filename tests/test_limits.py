"""Limits in the ASGI layer (issue 7, items 3 and 11), through a real claims app over HTTP:

* bodies over their route's limit are refused with 413 before a parser or the token check sees
  them — declared (``Content-Length``) ones before one byte is read, chunked ones cut off as they
  stream (the test counts the bytes the app pulled);
* request models bound strings and lists;
* writes per token and anonymous requests per address get 429 with ``Retry-After``;
* tokens need ``iat``, tolerate a little clock skew, and the algorithm is tied to the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from libs.common.auth import TokenService
from libs.common.errors import Unauthorized
from libs.common.limits import MULTIPART_OVERHEAD, MiB
from libs.common.settings import Settings
from services.claims.api import MAX_EVIDENCE_BYTES
from services.claims.tests.harness import Stack, claims_stack, pdf_bytes
from tests.support import assert_problem

CHUNK = 64 * 1024


class Streamed:
    """A request body sent in chunks without ``Content-Length``; counts what was pulled."""

    def __init__(self, total: int, head: bytes = b"") -> None:
        self.total, self.head, self.pulled = total, head, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            chunk = (self.head if sent == 0 else b"") + b" " * CHUNK
            sent += len(chunk)
            self.pulled += len(chunk)
            yield chunk


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("limits")) as stack:
        yield stack


async def test_a_30_mb_json_body_is_413_before_the_token_is_checked(stack: Stack) -> None:
    body = b'{"title": "' + b"x" * (30 * MiB) + b'"}'
    r = await stack.http.post(
        "/v1/claims", content=body, headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(r, 413, "payload_too_large")  # not 401: nothing was parsed
    assert problem["max_bytes"] == MiB


async def test_a_chunked_json_body_is_cut_off_at_the_limit(stack: Stack) -> None:
    person = stack.auth("personnel", person="p")
    body = Streamed(30 * MiB, head=b'{"title": "')
    r = await stack.http.post(
        "/v1/claims", content=body, headers={**person, "Content-Type": "application/json"}
    )
    assert_problem(r, 413, "payload_too_large")
    assert body.pulled <= MiB + CHUNK, f"the app read {body.pulled} bytes"


async def test_json_under_the_limit_reaches_the_route(stack: Stack) -> None:
    r = await stack.http.post(
        "/v1/claims", json={"title": "x" * 1000}, headers={"Content-Type": "application/json"}
    )
    assert_problem(r, 401, "missing_token")


async def test_evidence_may_be_10_mib_but_a_streamed_larger_file_is_cut_off(
    stack: Stack, tmp_path: Path
) -> None:
    unit = await stack.add_org("unit")
    person = await stack.register(unit)
    boundary = "limitsboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    ).encode()
    body = Streamed(30 * MiB, head=head)
    r = await stack.http.post(
        "/v1/evidence",
        content=body,
        headers={**person.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    problem = assert_problem(r, 413, "payload_too_large")
    limit = MAX_EVIDENCE_BYTES + MULTIPART_OVERHEAD
    assert problem["max_bytes"] == limit
    assert body.pulled <= limit + CHUNK, f"the app read {body.pulled} bytes"
    # a declared size over the limit is refused without reading
    r = await stack.http.post(
        "/v1/evidence",
        files={"file": ("big.pdf", b"%PDF-1.4\n" + b"0" * (11 * MiB), "application/pdf")},
        headers=person.auth,
    )
    assert_problem(r, 413, "payload_too_large")
    # just under the limit of the route (not of plain JSON) is accepted
    data = pdf_bytes() + b"0" * (9 * MiB)
    r = await stack.http.post(
        "/v1/evidence", files={"file": ("ok.pdf", data, "application/pdf")}, headers=person.auth
    )
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "长" * 301),
        ("evidence_ids", [f"e{i}" for i in range(51)]),
        ("evidence_ids", ["e" * 65]),
        ("credits", [{"subject": "public", "hours": 1}] * 11),
        ("certificate_code", "Z" * 129),
        ("certificate_code", "ZZ 2026"),
        ("reference_no", "号" * 201),
        ("category", "c" * 41),
        ("person_id", "p" * 65),
    ],
)
async def test_claim_fields_are_bounded(stack: Stack, field: str, value: Any) -> None:
    person = stack.auth("personnel", person="p")
    body = {"person_id": "p", "year": 2026, "category": "training", "title": "t", field: value}
    r = await stack.http.post("/v1/claims", json=body, headers=person)
    problem = assert_problem(r, 422, "validation_error")
    assert field in problem["detail"]


async def test_person_fields_are_bounded(stack: Stack) -> None:
    body = {"id_number": "1" * 33, "name": "n", "affiliation": {"kind": "unit", "org_id": "o"}}
    for bad in (
        body,
        {**body, "id_number": "11010519491231002X", "phone": "1" * 26},
        {**body, "id_number": "11010519491231002X", "affiliation": {"kind": "unit", "org_id": ""}},
        {**body, "id_number": "11010519491231002X", "name": "名" * 101},
    ):
        r = await stack.http.post("/v1/persons", json=bad, headers=stack.city)
        assert_problem(r, 422, "validation_error")


# --- rate limits -----------------------------------------------------------------------------


async def test_writes_per_token_and_anonymous_requests_per_address_get_429(
    tmp_path: Path,
) -> None:
    async with claims_stack(
        tmp_path,
        rate_limit_write_per_s=0.5,
        rate_limit_write_burst=3,
        rate_limit_anonymous_per_s=0.5,
        rate_limit_anonymous_burst=2,
    ) as stack:
        alice = stack.auth("personnel", person="alice")
        body = {"person_id": "alice", "year": 2026, "category": "training", "title": "t"}
        statuses = [
            (await stack.http.post("/v1/claims", json=body, headers=alice)).status_code
            for _ in range(4)
        ]
        assert statuses[:3] == [404, 404, 404]  # through to the route (no such person)
        limited = await stack.http.post("/v1/claims", json=body, headers=alice)
        assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
        # reads of the same token are not limited, nor the writes of another token
        for _ in range(5):
            assert (await stack.http.get("/v1/me", headers=alice)).status_code == 404
        bob = stack.auth("personnel", person="bob")
        r = await stack.http.post("/v1/claims", json={**body, "person_id": "bob"}, headers=bob)
        assert r.status_code == 404
        # without a (valid) token, the address is the key, for reads too
        anonymous = [(await stack.http.get("/v1/me")).status_code for _ in range(3)]
        assert anonymous[:2] == [401, 401] and anonymous[2] == 429
        bad_token = {"Authorization": "Bearer not-a-token"}
        assert (await stack.http.get("/v1/me", headers=bad_token)).status_code == 429
        # probes are never limited
        assert (await stack.http.get("/healthz")).status_code == 200


# --- tokens ----------------------------------------------------------------------------------


def test_tokens_need_iat_and_tolerate_small_clock_skew(tmp_path: Path) -> None:
    secret = "s" * 48
    tokens = TokenService(Settings(data_dir=tmp_path, jwt_secret=SecretStr(secret)))
    now = int(time.time())
    claims = {"sub": "u", "role": "city_admin", "iss": "zz-ce", "exp": now + 600}
    with pytest.raises(Unauthorized, match="iat"):
        tokens.verify(jwt.encode(claims, secret, algorithm="HS256"))
    skewed = jwt.encode({**claims, "iat": now + 10}, secret, algorithm="HS256")
    assert tokens.verify(skewed).role == "city_admin"  # the issuer's clock runs 10 s ahead
    future = jwt.encode({**claims, "iat": now + 3600}, secret, algorithm="HS256")
    with pytest.raises(Unauthorized, match="not yet valid"):
        tokens.verify(future)


def test_the_algorithm_is_tied_to_the_key(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError, match="does not fit a public key"):
        TokenService(Settings(data_dir=tmp_path, jwt_public_key=public_pem, jwt_algorithm="HS256"))
    with pytest.raises(ValueError, match="does not fit a shared secret"):
        TokenService(Settings(data_dir=tmp_path, jwt_secret=SecretStr("s"), jwt_algorithm="RS256"))
    assert TokenService(Settings(data_dir=tmp_path)).algorithm == "HS256"
    tokens = TokenService(Settings(data_dir=tmp_path, jwt_public_key=public_pem))
    assert tokens.algorithm == "RS256"
    now = int(time.time())
    claims = {"sub": "u", "role": "ops", "iss": "zz-ce", "iat": now, "exp": now + 60}
    assert tokens.verify(jwt.encode(claims, private, algorithm="RS256")).role == "ops"
    # an HMAC token "signed" with the public key (algorithm confusion), or an unsigned one
    for alg, key in (("HS256", public_pem.encode()), ("none", None)):
        with pytest.raises(Unauthorized):
            tokens.verify(_handmade_token(alg, claims, key))


def _handmade_token(alg: str, claims: dict[str, Any], key: bytes | None) -> str:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signed = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + b"."
    signed += b64(json.dumps(claims).encode())
    signature = hmac.new(key, signed, hashlib.sha256).digest() if key else b""
    return (signed + b"." + b64(signature)).decode()


# --- numbers that are not numbers, claims of the wrong type (issue 17, finding 6) -------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"person_id": "p", "year": 2026, "category": "study", "title": "t", "hours": NaN}',
        b'{"person_id": "p", "year": 2026, "category": "study", "title": "t", "hours": Infinity}',
        b'{"person_id": "p", "year": 2026, "category": "study", "title": "t", "hours": -Infinity}',
        b'{"person_id": "p", "year": 2026, "category": "study", "title": "t", "hours": 1e309}',
        b'{"person_id": "p", "year": 2026, "category": "training", "title": "t", '
        b'"credits": [{"subject": "public", "hours": NaN}]}',
    ],
    ids=["NaN", "Infinity", "-Infinity", "1e309", "nested NaN"],
)
async def test_a_non_finite_number_in_json_is_a_422_problem(stack: Stack, raw: bytes) -> None:
    person = stack.auth("personnel", person="p")
    r = await stack.http.post(
        "/v1/claims", content=raw, headers={**person, "Content-Type": "application/json"}
    )
    assert_problem(r, 422, "non_finite_number")


async def test_finite_json_still_reaches_the_route(stack: Stack) -> None:
    person = stack.auth("personnel", person="p")
    raw = b'{"person_id": "p", "year": 2026, "category": "study", "title": "NaN", "hours": 1e3}'
    r = await stack.http.post(
        "/v1/claims", content=raw, headers={**person, "Content-Type": "application/json"}
    )
    assert r.status_code == 404  # through to the route: no such person


WRONG_CLAIMS: list[dict[str, Any]] = [
    {"role": "unit_admin", "org_id": ["a", "b"]},
    {"role": "unit_admin", "org_id": {"$ne": None}},
    {"role": "unit_admin", "org_id": 7},
    {"role": "unit_admin", "org_id": ""},
    {"role": "personnel", "person_id": ["p"]},
    {"role": "personnel", "person_id": {"id": "p"}},
    {"role": ["city_admin"]},
    {"role": "city_admin", "sub": ["u"]},
    {"role": "city_admin", "sub": 12},
    {"role": "personnel", "sub": "u", "id_number": ["11010519491231002X"]},
    {"role": "unit_admin", "org_id": "o" * 300},
]


@pytest.mark.parametrize("wrong", WRONG_CLAIMS, ids=[json.dumps(w) for w in WRONG_CLAIMS])
async def test_a_signed_token_with_wrongly_typed_claims_is_a_401(
    tmp_path: Path, wrong: dict[str, Any]
) -> None:
    """A validly signed token whose ``org_id`` (or person_id, role, sub) is a list or an object
    is refused as a token (401), never reaching SQL as a parameter (a 500 before)."""
    secret = "k" * 48
    tokens = TokenService(Settings(data_dir=tmp_path, jwt_secret=SecretStr(secret)))
    now = int(time.time())
    claims = {"sub": "u", "iss": "zz-ce", "iat": now, "exp": now + 600, **wrong}
    token = jwt.encode(claims, secret, algorithm="HS256")
    with pytest.raises(Unauthorized) as err:
        tokens.verify(token)
    assert err.value.code == "invalid_token"


PROBED = (
    "/v1/me",
    "/v1/persons/x",
    "/v1/claims?person_id=x",
    "/v1/reports/compliance?year=2026&org_id=x",
)


async def test_wrongly_typed_claims_are_401_on_every_read(tmp_path: Path) -> None:
    secret = "k" * 48
    async with claims_stack(tmp_path, jwt_secret=SecretStr(secret)) as stack:
        now = int(time.time())
        for wrong in WRONG_CLAIMS:
            claims = {"sub": "u", "iss": "zz-ce", "iat": now, "exp": now + 600, **wrong}
            bearer = {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}
            for path in PROBED:
                r = await stack.http.get(path, headers=bearer)
                assert_problem(r, 401, "invalid_token")
