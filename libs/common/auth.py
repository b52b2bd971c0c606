"""Bearer-token authentication with roles and an organisation scope.

Development and the embedded stack sign HS256 tokens with a key generated at first run and kept in
the data directory (never committed); ``ce token`` mints them. Production verifies an external
OIDC issuer's tokens against its key set (``CE_JWT_JWKS_URL``, with ``CE_JWT_ISSUER`` and
``CE_JWT_AUDIENCE``), one public key (``CE_JWT_PUBLIC_KEY``), or a shared secret. With a key set or
a public key, the algorithm follows the key's type (RSA → RS256, P-256 → ES256, …): a token
cannot choose a weaker one, and never HS256 with a public key as its secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import Scope

from libs.common.asciitext import fold_width
from libs.common.errors import Forbidden, RuleViolation, Unauthorized
from libs.common.idnumber import validate_id_number
from libs.common.settings import Settings

log = logging.getLogger(__name__)

Role = Literal[
    "personnel",
    "unit_admin",
    "agency_admin",
    "district_admin",
    "department_admin",
    "city_admin",
    "provider",
    "exam_center",
    "system",
    "ops",
]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]
# the admin role that acts for each kind of reviewing org (分级审验)
ADMIN_ROLE_OF_ORG_TYPE = {
    "unit": "unit_admin",
    "agency": "agency_admin",
    "district": "district_admin",
    "department": "department_admin",
}
ADMIN_ROLES = frozenset(ADMIN_ROLE_OF_ORG_TYPE.values())
ORG_ROLES = {
    "unit_admin",
    "agency_admin",
    "district_admin",
    "department_admin",
    "provider",
    "exam_center",
}


# the operations endpoints every service has (dead letters), and sync's summary and
# reconciliations: the operators, and the city bureau
OPS_ROLES = ("ops", "city_admin")


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str
    org_id: str | None = None
    person_id: str | None = None
    # the resident ID number the identity provider verified for this login (self-registration):
    # the number itself (claim ``id_number``) or its keyed hash (claim ``id_number_hmac``,
    # HMAC-SHA256 under the key shared with the identity provider, CE_IDENTITY_HMAC_KEY)
    id_number: str | None = None
    id_number_hmac: str | None = None

    @property
    def has_verified_identity(self) -> bool:
        return self.id_number is not None or self.id_number_hmac is not None

    def is_identity(self, id_number: str, hmac_key: str | None) -> bool:
        """Whether ``id_number`` (normalised) is the one the identity provider verified."""
        if self.id_number is not None:
            return hmac.compare_digest(self.id_number, id_number)
        if self.id_number_hmac is not None and hmac_key:
            return hmac.compare_digest(self.id_number_hmac, id_number_digest(id_number, hmac_key))
        return False

    @property
    def is_city(self) -> bool:
        """The city bureau, which oversees every org. Not ``system`` (the e-learning platform's
        integration pushes records and reads their status, nothing else) nor ``ops``."""
        return self.role == "city_admin"


def id_number_digest(id_number: str, key: str) -> str:
    """The keyed hash of a normalised ID number an identity provider may send instead of it."""
    return hmac.new(key.encode(), id_number.encode(), hashlib.sha256).hexdigest()


def dev_key_path(data_dir: Path) -> Path:
    return data_dir / "dev-jwt.key"


def load_or_create_dev_key(data_dir: Path) -> str:
    """The dev signing key of this data directory, created (mode 600) on first use."""
    path = dev_key_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.encode())
    finally:
        os.close(fd)
    return key


SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def algorithm_for(settings: Settings) -> str:
    """The one algorithm tokens are verified with, tied to the kind of key configured: a public
    key never verifies an HMAC token (whose "secret" would be that public key), a secret never
    an RSA/EC one, and ``none`` never."""
    if settings.jwt_public_key or settings.jwt_jwks_url:
        algorithm = settings.jwt_algorithm or "RS256"
        allowed, kind = ASYMMETRIC_ALGORITHMS, "a public key"
    else:
        algorithm = settings.jwt_algorithm or "HS256"
        allowed, kind = SYMMETRIC_ALGORITHMS, "a shared secret"
    if algorithm not in allowed:
        raise ValueError(
            f"CE_JWT_ALGORITHM={algorithm} does not fit {kind}; one of {', '.join(sorted(allowed))}"
        )
    return algorithm


_EC_ALGORITHM = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def algorithm_of_public_key(pem: str, configured: str) -> str:
    """The one algorithm a PEM public key verifies: the configured one if it fits the key's type
    (RS256 or PS256 for RSA), else the type's default."""
    key = load_pem_public_key(pem.encode())
    if isinstance(key, rsa.RSAPublicKey):
        return configured if configured[:2] in ("RS", "PS") else "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_ALGORITHM[key.curve.name]
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA"
    raise ValueError(f"unsupported public key type {type(key).__name__}")


class JwksKeys:
    """An OIDC issuer's signing keys, fetched from its JWKS URL and cached for ``cache_s``.

    A token whose ``kid`` is not in the cache refetches the set (key rotation), at most once per
    ``min_refresh_s``. When the issuer cannot be reached, the keys already fetched stay in use
    (an identity provider's outage must not log everyone out). A fetch blocks: verification
    with a key set runs in a worker thread (:meth:`TokenService.verify_async`)."""

    def __init__(self, url: str, *, cache_s: float, min_refresh_s: float) -> None:
        self.url = url
        self.cache_s = cache_s
        self.min_refresh_s = min_refresh_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        try:
            response = httpx.get(self.url, timeout=5.0)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, json.JSONDecodeError, jwt.PyJWTError) as exc:
            raise Unauthorized(
                "the identity provider's keys are unavailable", code="jwks_unavailable"
            ) from exc
        self._keys = {
            str(k.key_id): k
            for k in key_set.keys
            if k.key_id and k.algorithm_name in ASYMMETRIC_ALGORITHMS
        }
        self._fetched_at = time.monotonic()

    def _refresh(self) -> None:
        try:
            self._fetch()
        except Unauthorized:
            if not self._keys:
                raise
            log.warning("JWKS refresh failed; keeping the keys fetched before", exc_info=True)
            # try again after min_refresh_s, not on every request
            self._fetched_at = time.monotonic() - max(0.0, self.cache_s - self.min_refresh_s)

    def key_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age > self.cache_s:
                self._refresh()
            elif kid not in self._keys and age >= self.min_refresh_s:
                self._refresh()  # the issuer may have rotated its keys
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("token signed by an unknown key", code="invalid_token")
        return key


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = algorithm_for(settings)
        self.leeway_s = settings.jwt_leeway_s
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self._jwks: JwksKeys | None = None
        self._sign_key: str | None = None
        if settings.jwt_jwks_url:
            self._jwks = JwksKeys(
                settings.jwt_jwks_url,
                cache_s=settings.jwt_jwks_cache_s,
                min_refresh_s=settings.jwt_jwks_min_refresh_s,
            )
            self._verify_key: Any = None
        elif settings.jwt_public_key:
            self._verify_key = settings.jwt_public_key
            self.algorithm = algorithm_of_public_key(settings.jwt_public_key, self.algorithm)
        else:
            secret = (
                settings.jwt_secret.get_secret_value()
                if settings.jwt_secret
                else load_or_create_dev_key(settings.data_dir)
            )
            self._verify_key = self._sign_key = secret

    def mint(
        self,
        *,
        role: str,
        sub: str | None = None,
        org_id: str | None = None,
        person_id: str | None = None,
        id_number: str | None = None,
        ttl_s: int = 8 * 3600,
    ) -> str:
        if self._sign_key is None:
            raise RuntimeError("this deployment verifies an external issuer's tokens only")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if role in ORG_ROLES and not org_id:
            raise ValueError(f"role {role} needs an org")
        if role == "personnel" and not (person_id or sub):
            raise ValueError("a personnel token needs a person (or, to self-register, a sub)")
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub or person_id or f"{role}:{org_id or 'city'}",
            "role": role,
            "iss": self.issuer,
            "iat": now,
            "exp": now + ttl_s,
        }
        if org_id:
            claims["org_id"] = org_id
        if person_id:
            claims["person_id"] = person_id
        if id_number:
            if role != "personnel":
                raise ValueError("only a personnel token carries a verified ID number")
            try:
                claims["id_number"] = validate_id_number(id_number)
            except RuleViolation as exc:
                raise ValueError(exc.detail) from exc
        return jwt.encode(claims, self._sign_key, algorithm=self.algorithm)

    def _key_and_algorithm(self, token: str) -> tuple[Any, str]:
        if self._jwks is None:
            return self._verify_key, self.algorithm
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from exc
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("token names no signing key (kid)", code="invalid_token")
        key = self._jwks.key_for(kid)
        return key.key, str(key.algorithm_name)

    def verify(self, token: str) -> Principal:
        key, algorithm = self._key_and_algorithm(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                leeway=self.leeway_s,  # clocks of the issuer and this host differ a little
                audience=self.audience,
                options={
                    "require": ["exp", "iat", "sub", "role", *(["aud"] if self.audience else [])],
                    "verify_aud": self.audience is not None,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from exc
        _check_claim_types(claims)
        if claims["role"] not in ROLES:
            raise Unauthorized("unknown role in token", code="invalid_token")
        verified = claims.get("id_number")
        digest = claims.get("id_number_hmac")
        return Principal(
            sub=claims["sub"],
            role=claims["role"],
            org_id=claims.get("org_id"),
            person_id=claims.get("person_id"),
            id_number=fold_width(str(verified)).strip().upper() if verified else None,
            id_number_hmac=str(digest).lower() if digest else None,
        )

    async def verify_async(self, token: str) -> Principal:
        """:meth:`verify` without blocking the event loop: a shared secret or a public key is
        checked inline (tens of microseconds of CPU, a thread hop would cost more); a key set may
        have to be fetched from the issuer, so that check runs in a worker thread."""
        if self._jwks is None:
            return self.verify(token)
        return await asyncio.to_thread(self.verify, token)


# the claims a principal is built from: each, when present, a non-empty string of at most this
# many characters (a list or an object in ``org_id`` would reach SQL as a parameter)
STRING_CLAIMS = ("sub", "role", "org_id", "person_id", "id_number", "id_number_hmac")
MAX_CLAIM_CHARS = 256


def _check_claim_types(claims: dict[str, Any]) -> None:
    for name in STRING_CLAIMS:
        value = claims.get(name)
        if value is None and name not in ("sub", "role"):
            continue
        if not isinstance(value, str) or not value or len(value) > MAX_CLAIM_CHARS:
            raise Unauthorized(
                f"the token's {name} claim is not a string of 1 to {MAX_CLAIM_CHARS} characters",
                code="invalid_token",
            )


_VERIFIED = "ce.verified_bearer"  # scope key: (token, Principal | Unauthorized) of this request


def bearer_token(scope: Scope) -> str | None:
    """The bearer token of a request, if it sends one."""
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def verified_principal(scope: Scope) -> Principal:
    """The principal of the request's bearer token, verified once per request: the rate limiter
    (which keys writes by caller) and the route's ``CurrentPrincipal`` share the outcome through
    the ASGI scope, a valid principal or the ``Unauthorized`` of an invalid token."""
    token = bearer_token(scope)
    if token is None:
        raise Unauthorized("send 'Authorization: Bearer <token>'", code="missing_token")
    cached = scope.get(_VERIFIED)
    if cached is not None and cached[0] == token:
        outcome: Principal | Unauthorized = cached[1]
    else:
        tokens: TokenService = scope["app"].state.tokens
        try:
            outcome = await tokens.verify_async(token)
        except Unauthorized as exc:
            outcome = exc
        scope[_VERIFIED] = (token, outcome)
    if isinstance(outcome, Unauthorized):
        raise outcome
    return outcome


# declared in OpenAPI (``components.securitySchemes.bearer``) and referenced by every operation
# that takes a ``CurrentPrincipal``, so Swagger's Authorize sends the token; it refuses nothing
# itself (``auto_error=False``): :func:`verified_principal` answers the 401 problem
BEARER_SCHEME = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT: `ce token --role ROLE` in development, the OIDC provider's in production",
    auto_error=False,
)


async def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)],
) -> Principal:
    # async: a sync dependency would cost a threadpool hop on every request
    return await verified_principal(request.scope)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Forbidden(
            f"role {principal.role} may not do this; allowed: {', '.join(roles)}",
            code="role_not_allowed",
        )
