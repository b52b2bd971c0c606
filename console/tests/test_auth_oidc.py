"""Production sign-in against a real OIDC provider on loopback (tests/fixtures/oidc_provider.py):
the console in process with a review service that trusts the provider (its JWKS, issuer and
audience), the browser's part played by an HTTP client following the redirects.

Sign-in end to end (a page then calls the service with the user's own token), a tampered state,
a wrong nonce and a code of another flow (its PKCE verifier) refused, the session's expiry
capped by the token's, the dev sign-in 404, the cookie HttpOnly + SameSite and sealed (a tampered
one is a signed-out visitor), CSRF on sign-out, and RP-initiated logout at the provider."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from console.app import create_app
from console.session import COOKIE_NAME
from console.settings import ConsoleSettings
from libs.common.settings import Settings
from services.review.main import create_app as create_review
from tests.fixtures.oidc_provider import OidcProvider, OidcUser, serve_provider

CONSOLE = "http://console.local"
CALLBACK = f"{CONSOLE}/auth/callback"
UNIT = OidcUser("u-unit", "第一人民医院人事科", "unit_admin", org_id="org-oidc-unit")
CITY = OidcUser("u-city", "市人社局", "city_admin")
NOBODY = OidcUser("u-none", "无角色", "guest")


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    with serve_provider([UNIT, CITY, NOBODY]) as provider:
        provider.register_client(
            "ce-console", "console-secret", [CALLBACK], [f"{CONSOLE}/logged-out"]
        )
        yield provider


class RecordingTransport(httpx.AsyncBaseTransport):
    """The review app's real ASGI transport, noting the bearer token of each call."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.bearers: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bearers.append(request.headers.get("authorization", ""))
        return await self.inner.handle_async_request(request)


@dataclass
class Stack:
    idp: OidcProvider
    console: FastAPI
    review: RecordingTransport
    tmp: Path

    def browser(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.console)
        return httpx.AsyncClient(transport=transport, base_url=CONSOLE)


@pytest.fixture(scope="module")
async def review_app(
    idp: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    data = tmp_path_factory.mktemp("review")
    settings = Settings(
        service="review",
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'review.db'}",
        jwt_jwks_url=idp.jwks_url,
        jwt_issuer=idp.issuer,
        jwt_audience="zz-ce",
    )
    app = create_review(settings)
    async with app.router.lifespan_context(app):
        yield app


def _settings(idp: OidcProvider, tmp: Path, **overrides: object) -> ConsoleSettings:
    values: dict[str, object] = {
        "env": "test",
        "data_dir": tmp,
        "jwt_jwks_url": idp.jwks_url,  # the services verify the provider's tokens: no dev key
        "console_session_secret": SecretStr("s" * 48),
        "oidc_issuer": idp.issuer,
        "oidc_client_id": "ce-console",
        "oidc_client_secret": SecretStr("console-secret"),
        "oidc_redirect_url": CALLBACK,
        **overrides,
    }
    return ConsoleSettings.model_validate(values)


@pytest.fixture
async def stack(idp: OidcProvider, review_app: FastAPI, tmp_path: Path) -> AsyncIterator[Stack]:
    review = RecordingTransport(review_app)
    app = create_app(_settings(idp, tmp_path), transports={"review": review})
    async with app.router.lifespan_context(app):
        yield Stack(idp, app, review, tmp_path)


async def _to_provider(browser: httpx.AsyncClient, path: str = "/login") -> str:
    """The console's redirect to the provider's authorization endpoint."""
    start = await browser.get(path)
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    assert location.startswith(browser_issuer(location))
    return location


def browser_issuer(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/authorize"


async def _pick_user(authorize_url: str, user: str) -> str:
    """The provider's login page: choose the test user; returns the redirect to the callback."""
    async with httpx.AsyncClient() as http:
        page = await http.get(authorize_url)
        assert page.status_code == 200 and "测试用户" in page.text
        chosen = await http.post(authorize_url, data={"user": user})
    assert chosen.status_code == 302, chosen.text
    location = chosen.headers["location"]
    assert location.startswith(CALLBACK)
    return location


async def _sign_in(browser: httpx.AsyncClient, user: str = UNIT.sub) -> httpx.Response:
    callback = await _pick_user(await _to_provider(browser), user)
    return await browser.get(callback.removeprefix(CONSOLE))


def _signed_out(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_sign_in_end_to_end_and_the_pages_call_services_with_the_users_token(
    stack: Stack,
) -> None:
    async with stack.browser() as browser:
        authorize = await _to_provider(browser, "/login?next=/review")
        query = parse_qs(urlsplit(authorize).query)
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
        assert query["state"] and query["nonce"] and query["client_id"] == ["ce-console"]
        assert "code_verifier" not in authorize
        done = await browser.get((await _pick_user(authorize, UNIT.sub)).removeprefix(CONSOLE))
        assert done.status_code == 303 and done.headers["location"] == "/review"
        page = await browser.get("/review")
        assert page.status_code == 200, page.text
        assert "待审核" in page.text and "第一人民医院人事科" in page.text
        assert "退出" in page.text
    # the queue came from the review service, called with the token the provider issued
    access_token = stack.idp.tokens[-1]["access_token"]
    assert stack.review.bearers and stack.review.bearers[-1] == f"Bearer {access_token}"


async def test_the_session_cookie_is_httponly_samesite_and_sealed(stack: Stack) -> None:
    async with stack.browser() as browser:
        done = await _sign_in(browser)
        cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie")
        assert cookie.startswith(f"{COOKIE_NAME}=")
        attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite", "path"} <= attributes
        assert "samesite=lax" in cookie.lower()
        value = browser.cookies[COOKIE_NAME]
        # the access token is not readable from the cookie (encrypted, not just signed)
        assert stack.idp.tokens[-1]["access_token"].split(".")[1] not in value
        assert (await browser.get("/review")).status_code == 200
        tampered = value[:-6] + ("AAAAAA" if not value.endswith("AAAAAA") else "BBBBBB")
        browser.cookies.set(COOKIE_NAME, tampered, domain="console.local")
        assert _signed_out(await browser.get("/review"))


async def test_secure_cookies_when_configured(idp: OidcProvider, tmp_path: Path) -> None:
    app = create_app(_settings(idp, tmp_path, console_cookie_secure=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as browser:
            start = await browser.get("/login")
    assert "; Secure" in start.headers["set-cookie"]


async def test_a_tampered_state_is_refused(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    async with stack.browser() as browser:
        callback = await _pick_user(await _to_provider(browser), UNIT.sub)
        forged = re.sub(r"state=[^&]+", "state=forged-state", callback)
        refused = await browser.get(forged.removeprefix(CONSOLE))
        assert refused.status_code == 400
        assert 'role="alert"' in refused.text and "登录未完成" in refused.text
        assert _signed_out(await browser.get("/review"))
        # the flow is spent: the genuine callback after a refused one is refused too
        assert (await browser.get(callback.removeprefix(CONSOLE))).status_code == 400
    assert "OIDC sign-in refused: mismatching_state" in caplog.text


async def test_an_id_token_with_another_nonce_is_refused(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.idp.id_token_nonce_override = "a-nonce-of-another-sign-in"
    try:
        async with stack.browser() as browser:
            refused = await _sign_in(browser)
            assert refused.status_code == 400 and 'role="alert"' in refused.text
            assert _signed_out(await browser.get("/review"))
    finally:
        stack.idp.id_token_nonce_override = None
    assert "OIDC sign-in refused: invalid_claim" in caplog.text  # the nonce claim


async def test_a_code_of_another_flow_is_refused_by_its_pkce_verifier(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Code injection: a code the attacker got for their own flow (their code_challenge) put in
    the victim's callback with the victim's state: the victim's verifier does not fit it."""
    async with stack.browser() as victim, stack.browser() as attacker:
        victim_callback = await _pick_user(await _to_provider(victim), UNIT.sub)
        attacker_callback = await _pick_user(await _to_provider(attacker), CITY.sub)
        victim_state = parse_qs(urlsplit(victim_callback).query)["state"][0]
        stolen_code = parse_qs(urlsplit(attacker_callback).query)["code"][0]
        injected = httpx.URL(CALLBACK, params={"code": stolen_code, "state": victim_state})
        refused = await victim.get(str(injected).removeprefix(CONSOLE))
        assert refused.status_code == 400 and 'role="alert"' in refused.text
        assert _signed_out(await victim.get("/review"))
    # the provider refused the exchange: the victim's code_verifier fits no other challenge
    assert "OIDC sign-in refused: invalid_grant" in caplog.text


async def test_the_session_ends_when_the_access_token_expires(
    idp: OidcProvider, review_app: FastAPI, tmp_path: Path
) -> None:
    review = RecordingTransport(review_app)
    app = create_app(_settings(idp, tmp_path), transports={"review": review})
    idp.access_token_ttl_s = 2
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as browser:
                assert (await _sign_in(browser)).status_code == 303
                issued = time.time()
                assert (await browser.get("/review")).status_code == 200
                calls = len(review.bearers)
                await asyncio.sleep(max(0.0, issued + 2.2 - time.time()))
                assert _signed_out(await browser.get("/review"))
                assert len(review.bearers) == calls, "an expired session calls no service"
    finally:
        idp.access_token_ttl_s = 3600


async def test_the_session_ends_at_its_own_server_side_expiry(
    idp: OidcProvider, review_app: FastAPI, tmp_path: Path
) -> None:
    review = RecordingTransport(review_app)
    app = create_app(
        _settings(idp, tmp_path, console_session_ttl_s=3), transports={"review": review}
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as browser:
            assert (await _sign_in(browser)).status_code == 303
            signed_in = time.time()
            kept = browser.cookies[COOKIE_NAME]
            assert (await browser.get("/review")).status_code == 200
            # the issue time is kept in whole seconds: expired at the latest 3 s after sign-in
            await asyncio.sleep(max(0.0, signed_in + 3.1 - time.time()))
            browser.cookies.set(COOKIE_NAME, kept, domain="console.local")  # a browser keeping it
            assert _signed_out(await browser.get("/review"))


async def test_the_dev_sign_in_is_not_there(stack: Stack) -> None:
    async with stack.browser() as browser:
        login = await browser.get("/login")
        assert login.status_code == 302 and login.headers["location"].startswith(stack.idp.issuer)
        csrf = await _csrf_of(browser)
        minted = await browser.post(
            "/login", data={"csrf_token": csrf, "role": "city_admin", "org_id": "", "next": ""}
        )
        assert minted.status_code == 404
        assert _signed_out(await browser.get("/review"))


async def test_a_user_without_a_known_role_is_not_signed_in(stack: Stack) -> None:
    async with stack.browser() as browser:
        refused = await _sign_in(browser, NOBODY.sub)
        assert refused.status_code == 403 and 'role="alert"' in refused.text
        assert _signed_out(await browser.get("/review"))


async def _csrf_of(browser: httpx.AsyncClient) -> str:
    """The session's CSRF token, as a page carries it."""
    page = await browser.get("/logged-out")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


async def test_sign_out_needs_the_csrf_token_and_ends_the_providers_session(
    stack: Stack,
) -> None:
    async with stack.browser() as browser:
        await _sign_in(browser)
        for data in ({}, {"csrf_token": "not-the-token"}):
            refused = await browser.post("/logout", data=data)
            assert refused.status_code == 403, data
            assert (await browser.get("/review")).status_code == 200, "still signed in"
        out = await browser.post("/logout", data={"csrf_token": await _csrf_of(browser)})
        assert out.status_code == 303
        end_session = out.headers["location"]
        assert end_session.startswith(f"{stack.idp.issuer}/logout?")
        assert _signed_out(await browser.get("/review"))
        # the browser follows to the provider, which ends its session and sends it back
        before = len(stack.idp.ended_sessions)
        async with httpx.AsyncClient() as http:
            back = await http.get(end_session)
        assert back.status_code == 302
        assert back.headers["location"] == f"{CONSOLE}/logged-out"
        assert stack.idp.ended_sessions[before:] == [
            {"sub": UNIT.sub, "redirect_uri": f"{CONSOLE}/logged-out"}
        ]
        page = await browser.get("/logged-out")
        assert "您已安全退出" in page.text and "重新登录" in page.text


async def test_an_unreachable_provider_is_said_on_the_page(tmp_path: Path) -> None:
    with serve_provider([UNIT]) as gone:
        issuer = gone.issuer
    settings = ConsoleSettings.model_validate(
        {
            "env": "test",
            "data_dir": tmp_path,
            "jwt_jwks_url": f"{issuer}/jwks",
            "console_session_secret": SecretStr("s" * 48),
            "oidc_issuer": issuer,
            "oidc_client_id": "ce-console",
            "oidc_redirect_url": CALLBACK,
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as browser:
            page = await browser.get("/login")
    assert page.status_code == 503
    assert 'role="alert"' in page.text and "统一身份认证" in page.text


async def test_forms_may_end_at_the_provider_for_sign_out_and_nowhere_else(stack: Stack) -> None:
    """退出 posts here and is redirected to the provider's end_session_endpoint: browsers check
    CSP form-action along the redirects, so the provider's origin (and only it) is allowed."""
    async with stack.browser() as browser:
        page = await browser.get("/logged-out")
    directives = page.headers["content-security-policy"].split("; ")
    policy = {name: value for name, _, value in (d.partition(" ") for d in directives)}
    assert policy["form-action"] == f"'self' {stack.idp.issuer}"
    assert policy["frame-ancestors"] == "'none'" and "'unsafe-inline'" not in policy["script-src"]


async def test_the_role_may_come_in_the_access_token_only(stack: Stack) -> None:
    stack.idp.id_token_roles = False
    try:
        async with stack.browser() as browser:
            done = await _sign_in(browser)
            assert done.status_code == 303 and done.headers["location"] == "/review"
            page = await browser.get("/review")
            assert page.status_code == 200 and "用人单位管理员" in page.text
    finally:
        stack.idp.id_token_roles = True


async def test_the_session_cookie_stays_small(stack: Stack) -> None:
    """Access token, ID token (for RP-initiated logout), CSRF token and principal sealed in one
    cookie: well under the 4096 bytes browsers keep."""
    async with stack.browser() as browser:
        await _sign_in(browser)
        size = len(f"{COOKIE_NAME}={browser.cookies[COOKIE_NAME]}")
    assert size < 3000, size


async def test_a_sign_in_denied_at_the_provider_is_said_on_the_page(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    async with stack.browser() as browser:
        callback = await _pick_user(await _to_provider(browser), "not-a-user")  # 拒绝
        assert "error=access_denied" in callback
        refused = await browser.get(callback.removeprefix(CONSOLE))
        assert refused.status_code == 400 and "登录未完成" in refused.text
        assert 'href="/login"' in refused.text
        assert _signed_out(await browser.get("/review"))
    assert "OIDC sign-in refused: access_denied" in caplog.text
