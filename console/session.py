"""The console's session: one HttpOnly, SameSite=Lax cookie whose value is encrypted and
authenticated (Fernet: AES-CBC + HMAC-SHA256) under a key derived from the session secret.

It holds the signed-in user's access token — which so never reaches JS-readable storage, nor
is it readable from the cookie itself — the principal shown in the navigation, a CSRF token, and
the time the session was issued. The server checks that time on every request (server-side
expiry: a cookie kept past ``ttl`` is a signed-out visitor, whatever the browser thinks), and the
token's own ``exp`` as well. Every request without a valid session gets a fresh anonymous one,
so that even the sign-in form carries a CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import jwt
from cryptography.fernet import Fernet, InvalidToken
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "ce_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SCOPE_KEY = "console.session"


@dataclass
class Principal:
    """Who is signed in, as the console shows it (the services decide what it may do)."""

    role: str
    org_id: str | None = None
    person_id: str | None = None
    label: str = ""  # a display name: the org's or person's name, never an ID number


@dataclass
class Session:
    csrf: str
    issued_at: int
    token: str | None = None
    token_exp: int | None = None
    principal: Principal | None = None
    # extra values a sign-in flow keeps between two requests (the OIDC state, PKCE verifier)
    pending: dict[str, str] = field(default_factory=dict)
    modified: bool = False

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32), issued_at=int(time.time()), modified=True)

    @property
    def signed_in(self) -> bool:
        return self.token is not None and self.principal is not None

    def sign_in(self, token: str, principal: Principal) -> None:
        """A new session for this user: new CSRF token and issue time (no session fixation)."""
        try:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        except jwt.PyJWTError:
            exp = None
        self.csrf = secrets.token_urlsafe(32)
        self.issued_at = int(time.time())
        self.token = token
        self.token_exp = int(exp) if isinstance(exp, int | float) else None
        self.principal = principal
        self.pending = {}
        self.modified = True

    def sign_out(self) -> None:
        fresh = Session.anonymous()
        self.csrf, self.issued_at = fresh.csrf, fresh.issued_at
        self.token = self.token_exp = self.principal = None
        self.pending = {}
        self.modified = True

    def remember(self, key: str, value: str) -> None:
        self.pending[key] = value
        self.modified = True

    def take(self, key: str) -> str | None:
        value = self.pending.pop(key, None)
        if value is not None:
            self.modified = True
        return value

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf, str(presented))


class SessionCodec:
    """Turns a session into a cookie value and back; ``None`` for anything not valid now."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        key = hashlib.sha256(b"ce-console-session\0" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self.ttl_s = ttl_s

    def dumps(self, session: Session) -> str:
        data = asdict(session)
        data.pop("modified")
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def loads(self, value: str, now: float | None = None) -> Session | None:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(value.encode()))
        except (InvalidToken, ValueError):
            return None
        now = time.time() if now is None else now
        issued_at = data.get("issued_at")
        if not isinstance(issued_at, int) or not (issued_at - 60 <= now < issued_at + self.ttl_s):
            return None
        token_exp = data.get("token_exp")
        if isinstance(token_exp, int) and now >= token_exp:
            return None
        principal = data.get("principal")
        return Session(
            csrf=str(data["csrf"]),
            issued_at=issued_at,
            token=data.get("token"),
            token_exp=token_exp,
            principal=Principal(**principal) if principal else None,
            pending=dict(data.get("pending") or {}),
        )


class SessionMiddleware:
    """Loads the session from its cookie into the request scope and writes it back when changed."""

    def __init__(self, app: ASGIApp, codec: SessionCodec, *, secure: bool) -> None:
        self.app = app
        self.codec = codec
        self.secure = secure

    def _cookie_of(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(value.decode("latin-1"))
                except Exception:  # a malformed Cookie header: no session
                    return None
                if COOKIE_NAME in jar:
                    return jar[COOKIE_NAME].value
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = self._cookie_of(scope)
        session = (self.codec.loads(raw) if raw else None) or Session.anonymous()
        scope[SCOPE_KEY] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.modified:
                cookie = (
                    f"{COOKIE_NAME}={self.codec.dumps(session)}; Path=/; HttpOnly; SameSite=Lax; "
                    f"Max-Age={self.codec.ttl_s}"
                )
                if self.secure:
                    cookie += "; Secure"
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def session_of(request: Request) -> Session:
    """The request's session (the middleware always puts one there)."""
    session: Session = request.scope[SCOPE_KEY]
    return session
