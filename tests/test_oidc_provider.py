"""The loopback OIDC provider of the test fixtures is a real one, and the services trust it: the
authorization code flow with PKCE (S256 required, a wrong verifier or a replayed code refused), an
ID token signed with its own key and carrying the nonce, and an access token a claims app
configured with the provider's issuer / JWKS / audience accepts like its dev tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from libs.common.settings import Settings
from services.claims.main import create_app
from tests.fixtures.oidc_provider import OidcProvider, OidcUser, serve_provider

REDIRECT = "http://127.0.0.1:9/auth/callback"
USERS = [
    OidcUser("u-city", "市局管理员", "city_admin"),
    OidcUser("u-unit", "单位管理员", "unit_admin", org_id="org-unit-1"),
]


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    with serve_provider(USERS) as provider:
        provider.register_client("ce-console", "s3cret", [REDIRECT])
        yield provider


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize(idp: OidcProvider, user: str, **params: str) -> httpx.Response:
    query = {
        "response_type": "code",
        "client_id": "ce-console",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "st-1",
        "nonce": "n-1",
        **params,
    }
    with httpx.Client(base_url=idp.issuer) as http:
        page = http.get("/authorize", params=query)
        if page.status_code != 200:
            return page
        assert "测试用户" in page.text
        return http.post("/authorize", params=query, data={"user": user})


def _code_of(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


def _token(idp: OidcProvider, code: str, verifier: str | None) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier is not None:
        form["code_verifier"] = verifier
    return httpx.post(f"{idp.issuer}/token", data=form, auth=("ce-console", "s3cret"))


def test_discovery_names_the_endpoints_and_keys(idp: OidcProvider) -> None:
    meta = httpx.get(idp.discovery_url).json()
    assert meta["issuer"] == idp.issuer
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["end_session_endpoint"] == f"{idp.issuer}/logout"
    keys = httpx.get(meta["jwks_uri"]).json()["keys"]
    assert [k["kty"] for k in keys] == ["RSA"] and "d" not in keys[0]


async def test_code_flow_with_pkce_issues_tokens_the_services_accept(
    idp: OidcProvider, tmp_path: Path
) -> None:
    verifier, challenge = _pkce()
    params = _code_of(
        _authorize(idp, "u-unit", code_challenge=challenge, code_challenge_method="S256")
    )
    assert params["state"] == ["st-1"]
    answer = _token(idp, params["code"][0], verifier)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    signing = jwt.PyJWKClient(idp.jwks_url).get_signing_key_from_jwt(tokens["id_token"])
    id_token = jwt.decode(
        tokens["id_token"], signing.key, algorithms=["RS256"], audience="ce-console"
    )
    assert (id_token["iss"], id_token["sub"], id_token["nonce"]) == (idp.issuer, "u-unit", "n-1")
    assert id_token["role"] == "unit_admin" and id_token["org_id"] == "org-unit-1"

    # the same access token is a bearer token to a claims app that trusts the provider
    settings = Settings(
        service="claims",
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'claims.db'}",
        jwt_jwks_url=idp.jwks_url,
        jwt_issuer=idp.issuer,
        jwt_audience="zz-ce",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://claims") as http:
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            known = await http.get("/v1/persons/p-unknown", headers=bearer)
            assert known.status_code == 404, known.text  # authenticated; no such person
            forged = tokens["access_token"][:-4] + "AAAA"
            refused = await http.get(
                "/v1/persons/p-unknown", headers={"Authorization": f"Bearer {forged}"}
            )
            assert refused.status_code == 401
            assert refused.json()["code"] == "invalid_token"


def test_a_wrong_code_verifier_or_a_replayed_code_is_refused(idp: OidcProvider) -> None:
    verifier, challenge = _pkce()
    code = _code_of(
        _authorize(idp, "u-city", code_challenge=challenge, code_challenge_method="S256")
    )["code"][0]
    wrong = _token(idp, code, _pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = _token(idp, code, None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert _token(idp, code, verifier).status_code == 200
    replayed = _token(idp, code, verifier)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "params",
    [{}, {"code_challenge": _pkce()[1], "code_challenge_method": "plain"}],
    ids=["no-pkce", "plain"],
)
def test_an_authorization_request_without_s256_pkce_is_refused(
    idp: OidcProvider, params: dict[str, Any]
) -> None:
    answer = _authorize(idp, "u-city", **params)
    assert answer.status_code == 302
    error = parse_qs(urlsplit(answer.headers["location"]).query)
    assert error["error"] == ["invalid_request"] and "code" not in error


def test_an_unknown_redirect_uri_is_never_redirected_to(idp: OidcProvider) -> None:
    _, challenge = _pkce()
    answer = _authorize(
        idp,
        "u-city",
        redirect_uri="http://127.0.0.1:9/elsewhere",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert answer.status_code == 400 and "location" not in answer.headers
