"""The console's app factory: templates, vendored static files, security headers, the session,
CSRF on every form, error pages in Chinese, and the page routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.clients import ServiceClients
from console.pages import (
    auth_dev,
    auth_oidc,
    certificates,
    filings,
    home,
    ops,
    orgs,
    reports,
    review,
    roster,
    staff,
)
from console.problems import ApiProblem
from console.session import SessionCodec, SessionMiddleware
from console.settings import ConsoleSettings
from console.web import NotSignedIn, check_csrf, render

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("console")

# No inline script or style anywhere (htmx is told not to inject its indicator style); evidence
# previews get their own `sandbox` policy from the evidence route.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HTTP_MESSAGES = {404: "页面不存在。", 405: "不支持该请求方式。"}
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """CSP (unless the route set its own, such as evidence's ``sandbox``), framing, sniffing,
    referrer; pages are never cached (they carry personal data). ``form_action``: origins a
    form's POST may end at besides this one (the OIDC provider, where 退出 lands after its
    redirect: browsers check ``form-action`` along the whole redirect chain)."""

    def __init__(self, app: ASGIApp, form_action: tuple[str, ...] = ()) -> None:
        self.app = app
        policy = CSP
        if form_action:
            policy = policy.replace(
                "form-action 'self'", " ".join(["form-action 'self'", *form_action])
            )
        self.csp = policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.csp))
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: ConsoleSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The console. ``transports`` (tests) routes a service's calls to an in-process app."""
    settings = settings or ConsoleSettings()
    clients = ServiceClients(settings, transports)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await clients.aclose()

    app = FastAPI(
        title="枣庄市专业技术人员继续教育学时管理 — 管理控制台",
        lifespan=lifespan,
        dependencies=[Depends(check_csrf)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.clients = clients
    app.state.login_url = "/login"
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # the OIDC provider (production), when the dev key is not in use: its /login, /auth/callback
    # and /logout come first (the dev form and its POST answer 404)
    app.state.oidc = auth_oidc.oidc_client(settings)
    if not settings.dev_login:
        app.include_router(auth_oidc.router)
    app.include_router(home.router)
    app.include_router(auth_dev.router)
    app.include_router(review.router)
    app.include_router(staff.router)
    for city_pages in (filings, roster, certificates, orgs, reports, ops):
        app.include_router(city_pages.router)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": request.app.state.login_url})
        target = httpx.URL(request.app.state.login_url, params={"next": exc.next_url})
        return RedirectResponse(str(target), status_code=303)

    @app.exception_handler(ApiProblem)
    async def problem_page(request: Request, exc: ApiProblem) -> Response:
        if exc.status == 401:  # the token expired or was refused: sign in again
            return await not_signed_in(request, NotSignedIn(request.url.path))
        return render(request, "errors/problem.html", {"alert": exc.message}, status=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = HTTP_MESSAGES.get(exc.status_code, "请求失败。")
        return render(request, "errors/problem.html", {"alert": message}, status=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTMLResponse:
        log.exception("console page failed", extra={"path": request.url.path})
        return render(request, "errors/problem.html", {"alert": "系统繁忙，请稍后重试。"}, 500)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        return render(
            request, "errors/problem.html", {"alert": "填写的内容不符合要求，请检查后重试。"}, 422
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "console"}

    secure = settings.console_cookie_secure
    codec = SessionCodec(settings.session_secret(), settings.console_session_ttl_s)
    app.add_middleware(SessionMiddleware, codec=codec, secure=secure)
    oidc_origin = (app.state.oidc.provider_origin,) if app.state.oidc else ()
    app.add_middleware(SecurityHeaders, form_action=oidc_origin)
    return app
