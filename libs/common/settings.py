"""Settings shared by every service, from the environment or ``.env`` (prefix ``CE_``).

One process runs one service, so ``CE_DATABASE_URL`` and ``CE_PORT`` are per process; unset, the
database defaults to the embedded stack (a SQLite file per service under ``CE_DATA_DIR``) and the
port to the service's port of API.md, which the composition root (``ce``) knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CE_", env_file=".env", extra="ignore")

    service: str = "claims"
    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int | None = None
    database_url: str | None = None
    migrate_on_start: bool = True

    bus: Literal["embedded", "kafka"] = "embedded"
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_idempotence: bool = True
    kafka_send_timeout_s: float = 10.0
    embedded_partitions: int = 4

    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "zz-ce"

    province_url: str = "http://127.0.0.1:8009"
    province_timeout_s: float = 5.0
    province_rate_limit_per_s: float = 50.0

    # the HTTP server of `ce serve`: "auto" takes uvloop and httptools when installed
    server_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    server_http: Literal["auto", "h11", "httptools"] = "auto"

    outbox_poll_s: float = 1.0
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.env == "production":
            if self.jwt_secret is None and self.jwt_public_key is None:
                raise ValueError("production needs CE_JWT_SECRET or CE_JWT_PUBLIC_KEY")
            if self.database_url is None or self.database_url.startswith("sqlite"):
                raise ValueError("production needs CE_DATABASE_URL on PostgreSQL")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service}.db').resolve()}"

    @property
    def event_log_path(self) -> Path:
        return self.data_dir / "events.db"
