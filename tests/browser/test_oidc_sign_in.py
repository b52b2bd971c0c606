"""Production sign-in in a real browser: ``ce run`` with the services trusting the loopback OIDC
provider of the test fixtures (its JWKS, issuer, audience) and the console as its relying party.
Chromium goes to the console, is sent to the provider, picks a user there, comes back signed in
to a page the review service filled under that user's token, and signs out at both ends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, screenshot
from tests.e2e.stack import Stack, start_embedded
from tests.fixtures.oidc_provider import OidcProvider, OidcUser, serve_provider
from tests.support import eventually, free_port

UNIT = OidcUser("oidc-unit-1", "枣庄市立医院人事科", "unit_admin", org_id="org-oidc-unit")


@dataclass
class OidcStack:
    idp: OidcProvider
    stack: Stack
    console: str


@pytest.fixture(scope="module")
def oidc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcStack]:
    with serve_provider([UNIT]) as idp:
        port = free_port()
        console = f"http://127.0.0.1:{port}"
        idp.register_client(
            "ce-console", "browser-secret", [f"{console}/auth/callback"], [f"{console}/logged-out"]
        )
        env = {
            **idp.service_env(),
            "CE_CONSOLE_PORT": str(port),
            "CE_OIDC_ISSUER": idp.issuer,
            "CE_OIDC_CLIENT_ID": "ce-console",
            "CE_OIDC_CLIENT_SECRET": "browser-secret",
            "CE_OIDC_REDIRECT_URL": f"{console}/auth/callback",
        }
        stack = start_embedded(tmp_path_factory.mktemp("oidc-stack") / "var", env)
        try:
            stack.wait_healthy(timeout_s=120)
            eventually(
                lambda: httpx.get(console + "/healthz", timeout=2).status_code == 200,
                timeout_s=60,
                what="the console",
            )
            yield OidcStack(idp, stack, console)
        finally:
            stack.stop()


@pytest.fixture
def oidc_page(browser: Browser, oidc_stack: OidcStack) -> Iterator[Page]:
    context = browser.new_context(base_url=oidc_stack.console, viewport=DESKTOP, locale="zh-CN")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_sign_in_at_the_provider_and_out_again(oidc_page: Page, oidc_stack: OidcStack) -> None:
    page, idp = oidc_page, oidc_stack.idp
    page.goto("/review")
    # the dev form is not offered: the console sends the browser to the provider
    assert page.url.startswith(f"{idp.issuer}/authorize?"), page.url
    expect(page.get_by_role("heading", name="测试身份提供方")).to_be_visible()
    screenshot(page, "oidc-provider")
    page.get_by_label("测试用户").select_option(UNIT.sub)
    page.get_by_role("button", name="确认登录").click()

    # back at the page asked for, filled by the review service under the user's own token
    expect(page).to_have_url(oidc_stack.console + "/review")
    expect(page.get_by_role("heading", name="待审核")).to_be_visible()
    navigation = page.get_by_role("navigation", name="主导航")
    expect(navigation).to_contain_text("枣庄市立医院人事科")
    screenshot(page, "oidc-signed-in")
    [session] = [c for c in page.context.cookies() if c["name"] == "ce_console"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""
    assert idp.tokens, "the provider issued the token the console uses"

    navigation.get_by_role("button", name="退出").click()
    # RP-initiated logout: through the provider's end_session_endpoint and back
    expect(page).to_have_url(oidc_stack.console + "/logged-out")
    expect(page.get_by_text("您已安全退出")).to_be_visible()
    assert [e["sub"] for e in idp.ended_sessions] == [UNIT.sub]
    page.goto("/review")
    assert page.url.startswith(f"{idp.issuer}/authorize?"), "signed out: to the provider again"


def test_the_dev_sign_in_form_is_not_there(oidc_stack: OidcStack) -> None:
    with httpx.Client(base_url=oidc_stack.console, timeout=10) as http:
        login = http.get("/login")
        assert login.status_code == 302
        assert login.headers["location"].startswith(oidc_stack.idp.issuer)
        page = http.get("/logged-out").text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert csrf is not None
        minted = http.post("/login", data={"csrf_token": csrf.group(1), "role": "city_admin"})
        assert minted.status_code == 404
