"""CE_PUBLIC_URL: where every URL in a document or QR code comes from; production refuses to
start without it, and no request (its Host) changes it."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from libs.common.settings import Settings


def production(service: str, public_url: str | None = None) -> Settings:
    return Settings(
        service=service,
        env="production",
        jwt_secret=SecretStr("s" * 48),
        database_url=f"postgresql+asyncpg://{service}@postgres/{service}",
        public_url=public_url,
    )


@pytest.mark.parametrize("service", ["claims", "registry"])
def test_production_refuses_to_start_without_it(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ce.topology import app_module

    monkeypatch.delenv("CE_PUBLIC_URL", raising=False)
    create_app = app_module(service).create_app
    with pytest.raises(ValueError, match="CE_PUBLIC_URL"):
        create_app(production(service))
    settings = production(service, "https://ce.example.test/")
    assert create_app(settings).state.settings.public_base_url() == (
        f"https://ce.example.test/{service}"
    )


@pytest.mark.parametrize(
    "value",
    [
        "ce.example.test",
        "javascript:alert(1)",
        "ftp://ce.example.test",
        "https://",
        "https://a/?x=1",
    ],
)
def test_only_an_http_address_is_taken(value: str) -> None:
    with pytest.raises(ValidationError, match="CE_PUBLIC_URL"):
        Settings(public_url=value)


def test_unset_it_is_the_address_the_process_listens_on() -> None:
    assert Settings(service="registry", port=8003).public_base_url() == "http://127.0.0.1:8003"
    assert Settings(host="0.0.0.0", port=9).public_base_url() == "http://127.0.0.1:9"
    assert Settings(host="::1", port=9).public_base_url() == "http://[::1]:9"
