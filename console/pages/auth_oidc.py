"""Production sign-in: OpenID Connect authorization code with PKCE (S256) against the identity
provider the services trust, through authlib's Starlette client; and sign-out for every mode.

``GET /login`` (when the dev sign-in is off) sends the browser to the provider with a fresh
``state``, ``nonce`` and PKCE ``code_challenge``; what the callback needs to check them (the state,
nonce and code verifier) waits in the console's own encrypted session cookie, never in the URL.
``GET /auth/callback`` takes the code back only with that state, exchanges it (with the verifier)
at the provider's token endpoint, validates the ID token (signature by the provider's JWKS,
issuer, audience, expiry, nonce, ``at_hash``) and signs the user in with the access token — which
the console then sends to the services as the user's own bearer token. The session's server-side
expiry never outlives that token (``Session.sign_in`` keeps its ``exp``). Any failure leaves the
visitor signed out with a message in ``role="alert"`` and a way to try again.

``POST /logout`` (CSRF-checked like every form) clears the session and, when the provider
offers an ``end_session_endpoint``, ends the provider's session too (RP-initiated logout, with
``id_token_hint`` and a registered ``post_logout_redirect_uri``: ``/logged-out``).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError

from console.pages.auth_dev import safe_next
from console.session import Principal, session_of
from console.settings import ConsoleSettings
from console.web import ROLE_NAMES, home_of, redirect, render

log = logging.getLogger(__name__)

# keys of Session.pending: authlib's flow data (JSON), where to go after, the ID token (logout)
FLOW_KEY = "oidc_flow"
NEXT_KEY = "oidc_next"
ID_TOKEN_KEY = "oidc_id_token"
SIGNED_OUT_PATH = "/logged-out"
MAX_TOKENS_IN_COOKIE = 2400  # characters of access + ID token (measured: RSA-2048 pair ≈ 1600)

router = APIRouter()  # mounted before the dev form's routes when the dev key is not in use

FAILED = "登录未完成，请重新登录。"
UNAVAILABLE = "暂时无法连接统一身份认证服务，请稍后重试。"
NO_ROLE = "该账号没有可使用本系统的角色，请联系管理员。"
NOT_CONFIGURED = "未配置统一身份认证（CE_OIDC_ISSUER 等），无法登录。"


class OidcUnavailable(Exception):
    """The provider cannot be reached, or its discovery document is not its own."""


class OidcClient:
    """The relying party: authlib's Starlette OAuth 2 app configured from the settings."""

    def __init__(self, settings: ConsoleSettings) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_url):
            raise ValueError(
                "OIDC sign-in needs CE_OIDC_ISSUER, CE_OIDC_CLIENT_ID and CE_OIDC_REDIRECT_URL"
            )
        self.issuer = settings.oidc_issuer.rstrip("/")
        issuer = urlsplit(self.issuer)
        self.provider_origin = f"{issuer.scheme}://{issuer.netloc}"  # where 退出 goes on to
        self.client_id = settings.oidc_client_id
        self.redirect_url = settings.oidc_redirect_url
        origin = urlsplit(settings.oidc_redirect_url)
        self.signed_out_url = f"{origin.scheme}://{origin.netloc}{SIGNED_OUT_PATH}"
        secret = settings.oidc_client_secret
        app = OAuth().register(
            "ce",
            client_id=settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": settings.oidc_scope,
                "code_challenge_method": "S256",
                "timeout": settings.console_service_timeout_s,
            },
        )
        assert isinstance(app, StarletteOAuth2App)
        self.app = app

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, checked to be the configured issuer's (mix-up)."""
        try:
            metadata: dict[str, Any] = await self.app.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcUnavailable(type(exc).__name__) from exc
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            self.app.server_metadata = {}
            raise OidcUnavailable("the discovery document names another issuer")
        return metadata


def oidc_client(settings: ConsoleSettings) -> OidcClient | None:
    """The relying party when the dev sign-in is off and an issuer is configured."""
    if settings.dev_login or not settings.oidc_issuer:
        return None
    return OidcClient(settings)


def _client(request: Request) -> OidcClient:
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        raise HTTPException(404)
    return client


def _failed(request: Request, message: str, status: int) -> HTMLResponse:
    return render(request, "auth/oidc.html", {"alert": message, "retry": True}, status=status)


@router.get("/login", response_class=HTMLResponse)
async def login(request: Request, next: str = "") -> Response:
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        return _failed(request, NOT_CONFIGURED, 404)  # no sign-in here at all
    try:
        await client.metadata()
        # authlib keeps the flow's state, nonce and code verifier in `request.session`: here a
        # dict of its own, stored in the console's encrypted session until the callback
        flow: dict[str, Any] = {}
        request.scope["session"] = flow
        response = await client.app.authorize_redirect(request, client.redirect_url)
    except (OidcUnavailable, httpx.HTTPError) as exc:
        log.warning("OIDC provider unavailable at sign-in: %s", exc)
        return _failed(request, UNAVAILABLE, 503)
    session = session_of(request)
    session.remember(FLOW_KEY, json.dumps(flow, separators=(",", ":")))
    session.remember(NEXT_KEY, safe_next(next) or "")
    return response


@router.post("/login")
async def no_dev_login() -> None:
    """The dev form's target: not in this mode."""
    raise HTTPException(404)


@router.get("/auth/callback", response_class=HTMLResponse)
async def callback(request: Request) -> Response:
    client = _client(request)
    session = session_of(request)
    raw = session.take(FLOW_KEY)
    next_url = session.take(NEXT_KEY)
    try:
        flow = json.loads(raw) if raw else {}
    except ValueError:
        flow = {}
    request.scope["session"] = flow if isinstance(flow, dict) else {}
    try:
        await client.metadata()
        # checks the state against the flow's, sends the code verifier, validates the ID token
        # (signature, iss, aud, exp, nonce, at_hash)
        token = await client.app.authorize_access_token(request)
    except (OidcUnavailable, httpx.HTTPError) as exc:
        log.warning("OIDC provider unavailable at the callback: %s", exc)
        return _failed(request, UNAVAILABLE, 503)
    except (AuthlibBaseError, JoseError, ValueError, KeyError) as exc:
        # a forged or replayed callback, a wrong state, nonce or verifier (the reason only)
        log.info("OIDC sign-in refused: %s", getattr(exc, "error", type(exc).__name__))
        return _failed(request, FAILED, 400)
    userinfo = token.get("userinfo")
    access_token = token.get("access_token")
    if not userinfo or not isinstance(access_token, str):
        log.info("OIDC sign-in refused: no ID token or access token")
        return _failed(request, FAILED, 400)
    principal = _principal(dict(userinfo), access_token)
    if principal is None:
        return _failed(request, NO_ROLE, 403)
    session.sign_in(access_token, principal)
    id_token = token.get("id_token")
    # kept for RP-initiated logout (id_token_hint) while the sealed cookie stays well under the
    # 4096 bytes browsers keep (it grows by about 4/3 of what it holds)
    if isinstance(id_token, str) and len(access_token) + len(id_token) <= MAX_TOKENS_IN_COOKIE:
        session.remember(ID_TOKEN_KEY, id_token)
    return redirect(safe_next(next_url) or home_of(principal.role))


def _principal(claims: dict[str, Any], access_token: str) -> Principal | None:
    """Who signed in, from the validated ID token: the role and scope claims the services read
    from the access token (``role``, ``org_id``, ``person_id``) and a display name. A provider
    that puts the role in the access token only: taken from there (the token the provider's
    token endpoint just answered; the services verify it on every call), for the same ``sub``."""
    if "role" not in claims:
        try:
            access = jwt.decode(access_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            access = {}
        if access.get("sub") == claims.get("sub"):
            claims = {**{k: access.get(k) for k in ("role", "org_id", "person_id")}, **claims}
    role = claims.get("role")
    if not isinstance(role, str) or role not in ROLE_NAMES:
        return None
    label = claims.get("name") or claims.get("preferred_username") or ROLE_NAMES[role]
    return Principal(
        role=role,
        org_id=str(claims["org_id"]) if claims.get("org_id") else None,
        person_id=str(claims["person_id"]) if claims.get("person_id") else None,
        label=str(label),
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out (the CSRF token was checked, as on every form): the session is cleared here,
    and at the provider when it offers RP-initiated logout."""
    session = session_of(request)
    id_token = session.pending.get(ID_TOKEN_KEY)
    session.sign_out()
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        return redirect(request.app.state.login_url)
    try:
        metadata = await client.metadata()
    except OidcUnavailable:
        return redirect(SIGNED_OUT_PATH)
    if not metadata.get("end_session_endpoint"):
        return redirect(SIGNED_OUT_PATH)
    params = {"client_id": client.client_id, "post_logout_redirect_uri": client.signed_out_url}
    if id_token:  # without it, the provider may ask the user to confirm
        params["id_token_hint"] = id_token
    target = httpx.URL(str(metadata["end_session_endpoint"]), params=params)
    return RedirectResponse(str(target), status_code=303)


@router.get(SIGNED_OUT_PATH, response_class=HTMLResponse)
async def signed_out(request: Request) -> HTMLResponse:
    return render(request, "auth/oidc.html", {"notice": "您已安全退出。", "retry": True})
