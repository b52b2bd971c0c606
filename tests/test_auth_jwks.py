"""Tokens of an external OIDC issuer, verified against its key set served over real HTTP on
loopback: RS256 accepted, a rotated key accepted after a refresh, a foreign issuer, audience or
algorithm refused. The dev HS256 key stays the default when no issuer is configured."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI

from libs.common.auth import CurrentPrincipal, TokenService, algorithm_of_public_key
from libs.common.errors import Unauthorized
from libs.common.problems import install_problem_handlers
from libs.common.settings import Settings

ISSUER = "https://idp.example.test/realms/zz"
AUDIENCE = "zz-ce"


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose key set the test can change (key rotation)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def publish(self, *keys: tuple[str, Any]) -> None:
        self.keys = [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())), "kid": kid}
            if isinstance(k, rsa.RSAPrivateKey)
            else {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for kid, k in keys
        ]


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(key: Any, kid: str | None, *, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"sub": "u-1", "role": "city_admin", "iss": ISSUER, "aud": AUDIENCE}
    body |= {"iat": now, "exp": now + 300, **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid} if kid else None)


def _service(url: str, tmp_path: Path, min_refresh_s: float = 0.0) -> TokenService:
    return TokenService(
        Settings(
            data_dir=tmp_path,
            jwt_jwks_url=url,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
            jwt_jwks_min_refresh_s=min_refresh_s,
        )
    )


def test_rs256_token_is_verified_against_the_key_set(jwks: JwksServer, tmp_path: Path) -> None:
    key = _rsa()
    jwks.publish(("k1", key))
    tokens = _service(jwks.url, tmp_path)
    principal = tokens.verify(_token(key, "k1", role="unit_admin", org_id="org-1"))
    assert (principal.sub, principal.role, principal.org_id) == ("u-1", "unit_admin", "org-1")
    tokens.verify(_token(key, "k1"))
    assert jwks.fetches == 1, "the key set is cached"


def test_a_rotated_key_is_accepted_after_a_refresh(jwks: JwksServer, tmp_path: Path) -> None:
    old, new = _rsa(), _rsa()
    jwks.publish(("k1", old))
    tokens = _service(jwks.url, tmp_path)
    tokens.verify(_token(old, "k1"))
    jwks.publish(("k2", new))  # the issuer rotates: k1 retired, k2 signs
    assert tokens.verify(_token(new, "k2")).sub == "u-1"
    assert jwks.fetches == 2
    with pytest.raises(Unauthorized) as refused:
        tokens.verify(_token(old, "k1"))
    assert refused.value.code == "invalid_token"


def test_unknown_kids_refetch_at_most_once_per_interval(jwks: JwksServer, tmp_path: Path) -> None:
    key = _rsa()
    jwks.publish(("k1", key))
    tokens = _service(jwks.url, tmp_path, min_refresh_s=60)
    tokens.verify(_token(key, "k1"))
    for i in range(20):
        with pytest.raises(Unauthorized):
            tokens.verify(_token(_rsa() if i == 0 else key, f"forged-{i}"))
    assert jwks.fetches == 1


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"aud": "another-app"}, "audience"),
        ({"exp": int(time.time()) - 60}, "expired"),
    ],
)
def test_tokens_of_another_issuer_or_audience_are_refused(
    jwks: JwksServer, tmp_path: Path, claims: dict[str, Any], why: str
) -> None:
    key = _rsa()
    jwks.publish(("k1", key))
    with pytest.raises(Unauthorized) as refused:
        _service(jwks.url, tmp_path).verify(_token(key, "k1", **claims))
    assert refused.value.code == "invalid_token", why


def test_the_algorithm_follows_the_key_not_the_token(jwks: JwksServer, tmp_path: Path) -> None:
    rsa_key, ec_key = _rsa(), ec.generate_private_key(ec.SECP256R1())
    jwks.publish(("r", rsa_key), ("e", ec_key))
    tokens = _service(jwks.url, tmp_path)
    assert tokens.verify(_token(ec_key, "e", alg="ES256")).sub == "u-1"
    # HS256 with the public key as the HMAC secret (algorithm confusion)
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "r"}).encode())
    payload = _b64(
        json.dumps({"sub": "x", "role": "city_admin", "iss": ISSUER, "aud": AUDIENCE}).encode()
    )
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{_b64(signature)}"
    with pytest.raises(Unauthorized):
        tokens.verify(forged)
    with pytest.raises(Unauthorized):  # RS256 key, token claims PS256
        tokens.verify(_token(rsa_key, "r", alg="PS256"))


def test_a_token_without_kid_or_an_unreachable_key_set_is_refused(
    jwks: JwksServer, tmp_path: Path
) -> None:
    key = _rsa()
    jwks.publish(("k1", key))
    with pytest.raises(Unauthorized):
        _service(jwks.url, tmp_path).verify(_token(key, None))
    jwks.httpd.shutdown()
    jwks.httpd.server_close()
    with pytest.raises(Unauthorized) as refused:
        _service(jwks.url, tmp_path).verify(_token(key, "k1"))
    assert refused.value.code == "jwks_unavailable"


def test_known_keys_stay_in_use_while_the_issuer_is_unreachable(
    jwks: JwksServer, tmp_path: Path
) -> None:
    key = _rsa()
    jwks.publish(("k1", key))
    tokens = TokenService(
        Settings(
            data_dir=tmp_path,
            jwt_jwks_url=jwks.url,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
            jwt_jwks_cache_s=0.0,  # every request would refetch
        )
    )
    tokens.verify(_token(key, "k1"))
    jwks.httpd.shutdown()
    jwks.httpd.server_close()
    assert tokens.verify(_token(key, "k1")).sub == "u-1"
    with pytest.raises(Unauthorized):
        tokens.verify(_token(_rsa(), "k-unknown"))


async def test_requests_carry_issuer_tokens_through_http(jwks: JwksServer, tmp_path: Path) -> None:
    key = _rsa()
    jwks.publish(("k1", key))
    app = FastAPI()
    app.state.tokens = _service(jwks.url, tmp_path)
    install_problem_handlers(app)

    @app.get("/whoami")
    def whoami(principal: CurrentPrincipal) -> dict[str, str]:
        return {"sub": principal.sub, "role": principal.role}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://claims"
    ) as http:
        ok = await http.get("/whoami", headers={"Authorization": f"Bearer {_token(key, 'k1')}"})
        assert ok.json() == {"sub": "u-1", "role": "city_admin"}
        bad = _token(key, "k1", iss="https://evil.example.test")
        refused = await http.get("/whoami", headers={"Authorization": f"Bearer {bad}"})
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_token"


def test_a_pem_public_key_chooses_its_algorithm(tmp_path: Path) -> None:
    key = _rsa()
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert algorithm_of_public_key(pem, "HS256") == "RS256"
    assert algorithm_of_public_key(pem, "PS256") == "PS256"
    tokens = TokenService(Settings(data_dir=tmp_path, jwt_public_key=pem, jwt_issuer=ISSUER))
    assert tokens.verify(_token(key, None, aud=None)).role == "city_admin"


def test_the_dev_hs256_key_stays_the_default(tmp_path: Path) -> None:
    tokens = TokenService(Settings(data_dir=tmp_path))
    assert tokens.algorithm == "HS256"
    assert tokens.verify(tokens.mint(role="city_admin")).role == "city_admin"


def test_secrets_are_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "jwt_secret"
    secret.write_text("from-a-docker-secret\n")
    password = tmp_path / "postgres_password"
    password.write_text("p@ss/word\n")
    monkeypatch.setenv("CE_JWT_SECRET_FILE", str(secret))
    monkeypatch.setenv("CE_DATABASE_PASSWORD_FILE", str(password))
    monkeypatch.setenv("CE_DATABASE_URL", "postgresql+asyncpg://ce@postgres:5432/claims")
    monkeypatch.delenv("CE_JWT_SECRET", raising=False)
    settings = Settings(env="production")
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "from-a-docker-secret"
    from sqlalchemy.engine import make_url

    assert make_url(settings.effective_database_url).password == "p@ss/word"
    monkeypatch.setenv("CE_JWT_SECRET", "direct")  # the environment wins over the file
    assert Settings().jwt_secret is not None
    assert Settings().jwt_secret.get_secret_value() == "direct"  # type: ignore[union-attr]
    monkeypatch.setenv("CE_JWT_SECRET_FILE", str(tmp_path / "missing"))
    monkeypatch.delenv("CE_JWT_SECRET")
    with pytest.raises(ValueError, match="CE_JWT_SECRET_FILE"):
        Settings()
