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
    # topics this service creates: replicas and min.insync.replicas; unset, 3 / 2 in
    # production and 1 / 1 elsewhere (a single dev or test broker)
    kafka_replication_factor: int | None = None
    kafka_min_insync_replicas: int | None = None
    # how long the start waits for the broker before going on without it (connecting later)
    kafka_connect_timeout_s: float = 5.0
    embedded_partitions: int = 4

    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    # tied to the key: HS* for a secret (default HS256), an asymmetric one for a public key
    # (default RS256); any other pairing refuses to start (no algorithm confusion)
    jwt_algorithm: str | None = None
    jwt_issuer: str = "zz-ce"

    province_url: str = "http://127.0.0.1:8009"
    province_timeout_s: float = 5.0
    province_rate_limit_per_s: float = 50.0

    # incoming rate limits (0 turns one off): writes per token, any request without a valid
    # token per client address; ``*_burst`` is how many may come at once
    rate_limit_write_per_s: float = 50.0
    rate_limit_write_burst: float = 200.0
    rate_limit_anonymous_per_s: float = 20.0
    rate_limit_anonymous_burst: float = 100.0
    # the most a token's iat may lie in the future (clocks of issuer and service differ)
    jwt_leeway_s: float = 30.0
    # the key an identity provider hashes verified ID numbers with (claim ``id_number_hmac``)
    identity_hmac_key: SecretStr | None = None

    # the event consumer: transient failures are retried with backoff up to the cap, for as
    # long as they last; other failures this many times, then dead-lettered
    consumer_backoff_s: float = 0.2
    consumer_max_backoff_s: float = 30.0
    consumer_poison_attempts: int = 5

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
    def topic_replication(self) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) of the topics this service creates."""
        production = self.env == "production"
        replicas = self.kafka_replication_factor or (3 if production else 1)
        min_insync = self.kafka_min_insync_replicas or (2 if production else 1)
        return replicas, min(min_insync, replicas)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service}.db').resolve()}"

    @property
    def event_log_path(self) -> Path:
        return self.data_dir / "events.db"
