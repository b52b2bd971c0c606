"""The console's settings, from the environment or ``.env`` (prefix ``CE_``).

The console is a client of the services: it knows their base URLs (``CE_<SERVICE>_URL``, else
``http://127.0.0.1:CE_<SERVICE>_PORT`` as ``ce`` runs them), a secret that protects its session
cookie, and how people sign in — the dev form (tokens minted with the dev key of ``CE_DATA_DIR``,
embedded/dev only) or an OpenID Connect provider (production).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator

from libs.common.settings import CeSettings

CONSOLE_PORT = 8000
SERVICE_PORTS = {"claims": 8001, "review": 8002, "registry": 8003, "sync": 8004}
SESSION_SECRET_FILE = "console-session.key"


def load_or_create_session_secret(data_dir: Path) -> str:
    """The session secret of this data directory (dev), created (mode 600) on first use."""
    path = data_dir / SESSION_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
    return value


class ConsoleSettings(CeSettings):
    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    console_port: int = CONSOLE_PORT

    claims_url: str | None = None
    review_url: str | None = None
    registry_url: str | None = None
    sync_url: str | None = None
    claims_port: int = SERVICE_PORTS["claims"]
    review_port: int = SERVICE_PORTS["review"]
    registry_port: int = SERVICE_PORTS["registry"]
    sync_port: int = SERVICE_PORTS["sync"]
    # the longest one call to a service may take before the page shows it as unavailable
    console_service_timeout_s: float = 10.0

    # signs and encrypts the session cookie; generated into CE_DATA_DIR in development,
    # required in production (CE_CONSOLE_SESSION_SECRET or ..._FILE)
    console_session_secret: SecretStr | None = None
    # server-side expiry of a session, counted from sign-in (also capped by the token's own exp)
    console_session_ttl_s: int = 8 * 3600
    # the session cookie is sent over HTTPS only (production behind TLS)
    console_cookie_secure: bool = False

    # the token settings the services share: the dev sign-in mints with the dev key only when
    # none of them is set (the services then verify with that same key)
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    # dev sign-in at /login: unset means "when the dev key is in use" (never in production)
    console_dev_login: bool | None = None

    # production sign-in: OpenID Connect authorization code + PKCE
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_url: str | None = None
    oidc_scope: str = "openid profile"

    @model_validator(mode="after")
    def _refuse_missing_secrets_in_production(self) -> ConsoleSettings:
        if self.env == "production":
            if self.console_session_secret is None:
                raise ValueError("production needs CE_CONSOLE_SESSION_SECRET")
            if self.console_dev_login:
                raise ValueError("the dev sign-in (CE_CONSOLE_DEV_LOGIN) is not for production")
        return self

    @property
    def uses_dev_key(self) -> bool:
        """Whether the services verify tokens with the dev key of CE_DATA_DIR."""
        return (
            self.env != "production"
            and self.jwt_secret is None
            and self.jwt_public_key is None
            and not self.jwt_jwks_url
        )

    @property
    def dev_login(self) -> bool:
        """Whether ``/login`` is the dev sign-in form (else it answers 404)."""
        if self.console_dev_login is not None:
            return self.console_dev_login and self.uses_dev_key
        return self.uses_dev_key

    def service_url(self, service: str) -> str:
        """The base URL of a service: ``CE_<SERVICE>_URL``, else loopback on its port."""
        explicit: str | None = getattr(self, f"{service}_url")
        if explicit:
            return explicit.rstrip("/")
        return f"http://127.0.0.1:{getattr(self, f'{service}_port')}"

    def session_secret(self) -> str:
        if self.console_session_secret is not None:
            return self.console_session_secret.get_secret_value()
        return load_or_create_session_secret(self.data_dir)
