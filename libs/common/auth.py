"""Bearer-token authentication with roles and an organisation scope.

Development and the embedded stack sign HS256 tokens with a key generated at first run and kept in
the data directory (never committed); ``ce token`` mints them. Production verifies an external
issuer's public key (``CE_JWT_PUBLIC_KEY``) or a shared secret from the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, Request

from libs.common.asciitext import fold_width
from libs.common.errors import Forbidden, RuleViolation, Unauthorized
from libs.common.idnumber import validate_id_number
from libs.common.settings import Settings

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
    if settings.jwt_public_key:
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


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = algorithm_for(settings)
        self.leeway_s = settings.jwt_leeway_s
        self.issuer = settings.jwt_issuer
        if settings.jwt_public_key:
            self._verify_key: str = settings.jwt_public_key
            self._sign_key: str | None = None
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

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                leeway=self.leeway_s,  # clocks of the issuer and this host differ a little
                options={"require": ["exp", "iat", "sub", "role"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from exc
        if claims["role"] not in ROLES:
            raise Unauthorized("unknown role in token", code="invalid_token")
        verified = claims.get("id_number")
        digest = claims.get("id_number_hmac")
        return Principal(
            sub=str(claims["sub"]),
            role=str(claims["role"]),
            org_id=claims.get("org_id"),
            person_id=claims.get("person_id"),
            id_number=fold_width(str(verified)).strip().upper() if verified else None,
            id_number_hmac=str(digest).lower() if digest else None,
        )


def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send 'Authorization: Bearer <token>'", code="missing_token")
    tokens: TokenService = request.app.state.tokens
    return tokens.verify(token.strip())


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Forbidden(
            f"role {principal.role} may not do this; allowed: {', '.join(roles)}",
            code="role_not_allowed",
        )
