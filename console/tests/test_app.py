"""The console's chassis: security headers, the session cookie (HttpOnly, SameSite, encrypted,
expired on the server), the dev sign-in only with the dev key, settings refused in production."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from console.app import create_app
from console.session import COOKIE_NAME, Principal, Session, SessionCodec
from console.settings import ConsoleSettings
from console.tests.conftest import Console


def console_client(settings: ConsoleSettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://console")


async def test_pages_carry_the_security_headers(tmp_path: Path) -> None:
    async with console_client(ConsoleSettings(data_dir=tmp_path)) as http:
        r = await http.get("/login")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and " style=" not in r.text  # nothing inline
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


async def test_the_dev_sign_in_answers_404_without_the_dev_key(tmp_path: Path) -> None:
    settings = ConsoleSettings(data_dir=tmp_path, jwt_secret=SecretStr("s" * 40))
    async with console_client(settings) as http:
        form = await http.get("/login")
        post = await http.post("/login", data={"role": "city_admin"})
    assert form.status_code == 404 and 'role="alert"' in form.text
    assert post.status_code in (403, 404)  # no session token either way: nothing minted
    assert not (tmp_path / "dev-jwt.key").exists()


async def test_a_signed_in_page_needs_a_session(console: Console) -> None:
    r = await console.http.get("/review?category=training")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Freview%3Fcategory%3Dtraining"


async def test_the_next_page_after_sign_in_is_a_page_of_this_site(console: Console) -> None:
    token = await console.csrf()
    org = console.review.orgs["U1"]
    form = {"csrf_token": token, "role": "unit_admin", "org_id": org, "next": "//evil.example/"}
    r = await console.http.post("/login", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/review"


def test_the_session_expires_on_the_server_and_cannot_be_forged() -> None:
    codec = SessionCodec("secret-" * 8, ttl_s=3600)
    session = Session.anonymous()
    session.sign_in("header.payload.signature", Principal("unit_admin", "org-1", None, "单位"))
    value = codec.dumps(session)
    assert "header.payload" not in value  # the token is not readable from the cookie
    loaded = codec.loads(value)
    assert loaded is not None and loaded.token == "header.payload.signature"
    assert codec.loads(value, now=time.time() + 3601) is None  # past the server-side expiry
    assert codec.loads(value[:-4] + "AAAA") is None  # tampered
    assert SessionCodec("another-" * 8, ttl_s=3600).loads(value) is None  # another secret


def test_a_token_past_its_exp_ends_the_session() -> None:
    import jwt

    codec = SessionCodec("secret-" * 8, ttl_s=3600)
    session = Session.anonymous()
    token = jwt.encode({"exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256")
    session.sign_in(token, Principal("city_admin"))
    assert codec.loads(codec.dumps(session)) is not None
    assert codec.loads(codec.dumps(session), now=time.time() + 61) is None


def test_production_needs_a_session_secret_and_no_dev_sign_in() -> None:
    with pytest.raises(ValidationError, match="CE_CONSOLE_SESSION_SECRET"):
        ConsoleSettings(env="production")
    settings = ConsoleSettings(env="production", console_session_secret=SecretStr("x" * 40))
    assert settings.dev_login is False
    with pytest.raises(ValidationError, match="dev sign-in"):
        ConsoleSettings(
            env="production", console_session_secret=SecretStr("x" * 40), console_dev_login=True
        )


def test_the_service_urls_follow_the_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CE_CLAIMS_PORT", "9101")
    monkeypatch.setenv("CE_REVIEW_URL", "http://review.internal:8002/")
    monkeypatch.setenv("CE_CONSOLE_PORT", "9100")
    settings = ConsoleSettings()
    assert settings.console_port == 9100
    assert settings.service_url("claims") == "http://127.0.0.1:9101"
    assert settings.service_url("review") == "http://review.internal:8002"
    assert settings.service_url("registry") == "http://127.0.0.1:8003"
