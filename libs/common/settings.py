"""Settings shared by every service, from the environment or ``.env`` (prefix ``CE_``).

One process runs one service, so ``CE_DATABASE_URL`` and ``CE_PORT`` are per process; unset, the
database defaults to the embedded stack (a SQLite file per service under ``CE_DATA_DIR``) and the
port to the service's port of API.md, which the composition root (``ce``) knows.

Any setting can also be read from a file named by ``CE_<NAME>_FILE`` (Docker secrets, mounted under
``/run/secrets``), e.g. ``CE_JWT_SECRET_FILE``; a value set directly in the environment wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

# a production cluster's topics, unless set: three copies, a write acknowledged by two
PRODUCTION_REPLICATION_FACTOR = 3
PRODUCTION_MIN_INSYNC_REPLICAS = 2


def read_setting_file(variable: str, path: str) -> str:
    """The content (stripped) of the file a ``CE_*_FILE`` variable names."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{variable}={path}: {exc.strerror}") from exc


# What one service's database is named by among several (``ce run``, the ``migrate`` job):
# ``CE_<SERVICE>_<NAME>`` stands for that service's ``CE_<NAME>``.
OWN_DATABASE_SETTINGS = ("DATABASE_URL", "DATABASE_PASSWORD", "DATABASE_PASSWORD_FILE")


def own_database_env(service: str, environ: Mapping[str, str]) -> dict[str, str]:
    """One service's own database settings, as the variables its process reads: for claims,
    ``CE_CLAIMS_DATABASE_URL`` becomes ``CE_DATABASE_URL``, ``CE_CLAIMS_DATABASE_PASSWORD`` (or
    ``..._FILE``) becomes ``CE_DATABASE_PASSWORD`` (or ``..._FILE``). Each service connects as a
    role of its own (deploy/postgres/init-databases.sh), so each has a password of its own."""
    prefix = f"CE_{service.upper()}_"
    return {
        f"CE_{name}": environ[prefix + name]
        for name in OWN_DATABASE_SETTINGS
        if environ.get(prefix + name)
    }


def service_process_env(service: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for the process of one service: its own database settings replace the shared
    ones (an own password file replaces a shared password, which would otherwise win)."""
    own = own_database_env(service, environ)
    env = dict(environ)
    if "CE_DATABASE_PASSWORD" in own or "CE_DATABASE_PASSWORD_FILE" in own:
        env.pop("CE_DATABASE_PASSWORD", None)
        env.pop("CE_DATABASE_PASSWORD_FILE", None)
    return {**env, **own}


class FileSettingsSource(PydanticBaseSettingsSource):
    """``CE_<NAME>_FILE=/run/secrets/x``: the setting's value is the file's content (stripped)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"CE_{field_name.upper()}_FILE"
        path = os.environ.get(variable)
        if not path:
            return None, field_name, False
        return read_setting_file(variable, path), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                values[name] = value
        return values


class CeSettings(BaseSettings):
    """Settings read as every process of the platform reads them: ``CE_*`` variables (an empty
    one means unset), then ``CE_<NAME>_FILE`` secret files, then ``.env``."""

    # an empty variable (``CE_JWT_AUDIENCE=`` from compose) means unset
    model_config = SettingsConfigDict(
        env_prefix="CE_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = FileSettingsSource(settings_cls)
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings


class Settings(CeSettings):
    service: str = "claims"
    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int | None = None
    # The platform's public address (the gateway, deploy/nginx), e.g. https://ce.example.gov.cn:
    # every URL printed in a document or encoded in a QR code starts with it (never with the
    # request's Host). Required in production; unset elsewhere, the process's own address.
    public_url: str | None = None
    database_url: str | None = None
    # kept out of the URL so that it can come from a secret file (CE_DATABASE_PASSWORD_FILE)
    database_password: SecretStr | None = None
    migrate_on_start: bool = True

    bus: Literal["embedded", "kafka"] = "embedded"
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_idempotence: bool = True
    kafka_send_timeout_s: float = 10.0
    # the longest a consumer's fetch waits at the broker for data; Kafka answers as soon as data
    # arrives, so its default costs no latency there. The Tansu test broker holds every fetch for
    # the whole wait (measured: publish -> fetched 200 ms p50 at 500, 2.3 ms at 50): 50 there.
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=60_000)
    # Topics the services create. Unset, production takes a cluster's 3 replicas with 2 in sync
    # (see deploy/README.md); other environments (one broker) take 1 / 1.
    kafka_partitions: int = 4
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1
    kafka_retention_ms: int = 7 * 24 * 3600 * 1000
    # how long the start waits for the broker before going on without it (connecting later)
    kafka_connect_timeout_s: float = 5.0
    embedded_partitions: int = 4

    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    # tied to the key: HS* for a secret (default HS256), an asymmetric one for a public key
    # (default RS256); any other pairing refuses to start (no algorithm confusion)
    jwt_algorithm: str | None = None
    jwt_issuer: str = "zz-ce"
    # An OIDC issuer's key set (its ``jwks_uri``); when set, tokens are verified against it only.
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_cache_s: float = 3600.0
    # an unknown ``kid`` refetches the key set, at most this often (a flood of forged kids)
    jwt_jwks_min_refresh_s: float = 10.0

    # Evidence files: local disk under CE_DATA_DIR/evidence, or an S3-compatible bucket.
    evidence_store: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket: str = "ce-evidence"
    s3_prefix: str = "evidence/"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None

    province_url: str = "http://127.0.0.1:8009"
    province_timeout_s: float = 5.0
    province_rate_limit_per_s: float = 50.0
    province_api_key: SecretStr | None = None  # sent as X-Api-Key; the simulator checks it if set
    province_breaker_reset_s: float = 30.0  # how long the circuit stays open before a trial
    # how long one sender holds the rows it claimed: longer than one send with all its retries
    # (rows of a sender that died come free after it)
    sync_lease_s: float = 60.0
    sync_retry_max_s: float = 600.0  # the longest a record waits between two tries
    reconcile_interval_s: float = 86400.0  # the scheduled reconciliation; 0 turns it off
    reconcile_repair: bool = True  # the scheduled run repairs (re-queues and voids), else reports

    # incoming rate limits (0 turns one off): writes per token, any request without a valid
    # token per client address; ``*_burst`` is how many may come at once
    rate_limit_write_per_s: float = 50.0
    rate_limit_write_burst: float = 200.0
    rate_limit_anonymous_per_s: float = 20.0
    rate_limit_anonymous_burst: float = 100.0
    # where the buckets live: "memory" (each process its own; the embedded default) or a Redis
    # URL (redis://host:6379/0, rediss://…, unix://…) that every replica of a service shares.
    # Redis unreachable: each replica limits on its own until it answers (libs/common/limits.py)
    rate_limit_storage: str = "memory"
    # the keys' prefix in Redis, followed by the service's name (replicas of one service share)
    rate_limit_key_prefix: str = "ce:ratelimit:"
    # the most a token's iat may lie in the future (clocks of issuer and service differ)
    jwt_leeway_s: float = 30.0
    # the key an identity provider hashes verified ID numbers with (claim ``id_number_hmac``)
    identity_hmac_key: SecretStr | None = None

    # the event consumer: transient failures are retried with backoff up to the cap, for as
    # long as they last; other failures this many times, then dead-lettered
    consumer_backoff_s: float = 0.2
    consumer_max_backoff_s: float = 30.0
    consumer_poison_attempts: int = 5
    # events handled in one transaction with one offset commit (1: one by one), at most 64 KiB
    # of them (a bulk event of 500 learning records goes alone: a long write transaction holds
    # up the requests that write); a failing group is handled again one by one
    consumer_batch_max: int = Field(default=32, ge=1, le=500)

    # the HTTP server of `ce serve`: "auto" takes uvloop and httptools when installed
    server_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    server_http: Literal["auto", "h11", "httptools"] = "auto"
    # Peers whose X-Forwarded-For names the client (addresses or networks, comma-separated):
    # the reverse proxy's address alone (compose: the proxy's fixed address), and there the
    # client is the right-most entry not in this list. Empty (the default, embedded): clients
    # connect directly and no forwarding header counts — else anyone could name any address
    # and reset the per-address rate limits. Never "*", which takes the client-written entry.
    forwarded_allow_ips: str = ""
    # The path prefix the gateway serves this service under (deploy/nginx: ``/claims``), so that
    # ``/docs`` and the OpenAPI ``servers`` point through it. Unset, a trusted proxy (one named
    # in ``forwarded_allow_ips``) may say it with ``X-Forwarded-Prefix``; nobody else can.
    root_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*/?$")
    # Browser origins allowed to call the API (CORS), comma-separated, e.g.
    # ``https://app.example.gov.cn``; empty (the default): no cross-origin browser calls
    cors_origins: str = ""

    outbox_poll_s: float = 1.0
    # GET /metrics: the most a service's scrape-time gauge refresh (ServiceSpec.metrics_refresh)
    # may take; past it the scrape answers with the values of the last refresh
    metrics_refresh_timeout_s: float = 1.0
    # review: a task open longer than this many Chinese working days is overdue
    review_sla_working_days: int = 10
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _rate_limit_storage_is_known(self) -> Settings:
        if self.rate_limit_storage != "memory" and urlsplit(self.rate_limit_storage).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            raise ValueError(
                "CE_RATE_LIMIT_STORAGE must be memory or a redis://, rediss:// or unix:// URL"
            )
        return self

    @model_validator(mode="after")
    def _public_url_is_an_address(self) -> Settings:
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"CE_PUBLIC_URL must be an http(s) URL, not {self.public_url!r}")
            if parts.query or parts.fragment or parts.username or parts.password:
                raise ValueError("CE_PUBLIC_URL takes no query, fragment or credentials")
            self.public_url = self.public_url.rstrip("/")
        return self

    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` as a list, without blanks or trailing slashes."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    def public_base_url(self) -> str:
        """Where this service's own routes are reached from outside, for URLs in documents and
        QR codes: ``CE_PUBLIC_URL`` followed by the service's gateway prefix (deploy/nginx routes
        ``/registry/…`` to the registry), else (embedded, development, tests) the address this
        process listens on. Never anything a request said (its ``Host``)."""
        if self.public_url is not None:
            return f"{self.public_url}/{self.service}"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}" if self.port else f"http://{host}"

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.env == "production":
            if self.jwt_secret is None and self.jwt_public_key is None and not self.jwt_jwks_url:
                raise ValueError(
                    "production needs CE_JWT_JWKS_URL, CE_JWT_PUBLIC_KEY or CE_JWT_SECRET"
                )
            if self.database_url is None or self.database_url.startswith("sqlite"):
                raise ValueError("production needs CE_DATABASE_URL on PostgreSQL")
            if "kafka_replication_factor" not in self.model_fields_set:
                self.kafka_replication_factor = PRODUCTION_REPLICATION_FACTOR
            if "kafka_min_insync_replicas" not in self.model_fields_set:
                self.kafka_min_insync_replicas = PRODUCTION_MIN_INSYNC_REPLICAS
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            if self.database_password is None:
                return self.database_url
            url = make_url(self.database_url).set(
                password=self.database_password.get_secret_value()
            )
            return url.render_as_string(hide_password=False)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service}.db').resolve()}"

    @property
    def event_log_path(self) -> Path:
        return self.data_dir / "events.db"
