"""The browser tests' stack: ``ce run --demo`` on free loopback ports in a temporary data
directory (the four services, the province simulator and the console), and Playwright driving
Debian's Chromium (``/usr/bin/chromium``; ``make test`` installs it when missing). One stack per
test session; each test gets a fresh browser context (no cookies) at 1366×768, in zh-CN.

Screenshots go to ``CE_TEST_OUTPUT`` (default ``var/test-output``)/screenshots."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.e2e.stack import Stack, start_embedded
from tests.support import eventually

CHROMIUM = os.environ.get("CE_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("CE_TEST_OUTPUT", ROOT / "var" / "test-output"))
DESKTOP = ViewportSize(width=1366, height=768)
PHONE = ViewportSize(width=390, height=844)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A browser test is of the subprocess tier (and runs the stack: e2e)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.subprocess)
            item.add_marker(pytest.mark.e2e)


@dataclass
class ConsoleStack:
    """The running demo stack and what the demo loaded (found through the API)."""

    stack: Stack
    orgs: dict[str, str] = field(default_factory=dict)  # demo org code -> id

    @property
    def console(self) -> str:
        return self.stack.url("console")

    def url(self, name: str) -> str:
        return self.stack.url(name)

    def token(self, role: str, **kw: str | None) -> str:
        return self.stack.token(role, **kw)

    def api(self, role: str = "city_admin", **kw: str | None) -> httpx.Client:
        """A client of the services with a dev token of this role (checks after the browser)."""
        headers = {"Authorization": f"Bearer {self.token(role, **kw)}"}
        return httpx.Client(timeout=10, headers=headers)


def _demo_loaded(stack: Stack) -> bool:
    log = stack.data_dir / "ce-run.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    if "demo data could not be loaded" in text:
        raise RuntimeError(f"ce run --demo failed:\n{stack.tail()}")
    return "demo: loaded" in text


@pytest.fixture(scope="session")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    stack = start_embedded(tmp_path_factory.mktemp("console-stack") / "var", demo=True)
    try:
        stack.wait_healthy(timeout_s=120)
        eventually(
            lambda: httpx.get(stack.url("console") + "/healthz", timeout=2).status_code == 200,
            timeout_s=60,
            what="the console",
        )
        eventually(lambda: _demo_loaded(stack), timeout_s=120, what="the demo data")
        city = {"Authorization": f"Bearer {stack.token('city_admin')}"}
        orgs = httpx.get(
            stack.url("review") + "/v1/orgs", params={"limit": 500}, headers=city, timeout=10
        ).json()["items"]
        yield ConsoleStack(stack, {o["code"]: o["id"] for o in orgs})
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module: Playwright's sync API runs its own event loop in this thread
    while it is open, so it is closed before the suite's asyncio tests run again."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/ensure-test-tools)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, console_stack: ConsoleStack) -> Iterator[Page]:
    """A fresh context (no session) on the console at 1366×768."""
    context = browser.new_context(
        base_url=console_stack.console, viewport=DESKTOP, locale="zh-CN", accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot of the current page as ``<name>.png`` in the output dir."""
    path = OUTPUT / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, role: str, org: str | None = None, person: str | None = None) -> None:
    """Through the dev form at /login: 角色, 机构, 人员, 登录."""
    page.goto("/login")
    page.get_by_label("角色").select_option(role)
    page.get_by_label("机构").fill(org or "")
    page.get_by_label("人员").fill(person or "")
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_load_state()
