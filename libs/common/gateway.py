"""Serving behind the gateway: the path prefix the service is reached under (``/claims``), so
that the OpenAPI document's ``servers``, ``/docs`` and its assets point through the gateway."""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


class RootPathMiddleware:
    """Sets the ASGI ``root_path`` of each request: ``CE_ROOT_PATH`` when configured, else the
    ``X-Forwarded-Prefix`` header of a trusted proxy (``CE_FORWARDED_ALLOW_IPS``: the header
    counts only on a service configured to sit behind one, and only as a plain path).
    Routes still match on the path the gateway forwards (the prefix already stripped)."""

    def __init__(self, app: ASGIApp, root_path: str, trusted: str) -> None:
        self.app = app
        self.root_path = root_path.rstrip("/")
        # uvicorn has already replaced the peer by the client X-Forwarded-For names, so the
        # peer itself cannot be checked here: a prefix counts only on a service configured to
        # sit behind a proxy (the network lets nobody else reach it)
        self.behind_proxy = bool(trusted.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            prefix = self.root_path or self._forwarded_prefix(scope)
            if prefix:
                scope = {**scope, "root_path": prefix}
                path = scope["path"]
                if not path.startswith(prefix + "/") and path != prefix:
                    # the gateway stripped the prefix (proxy_pass …/): the route path is relative
                    scope["path"] = prefix + path
                    raw = scope.get("raw_path")
                    if raw is not None:
                        scope["raw_path"] = prefix.encode() + raw
        await self.app(scope, receive, send)

    def _forwarded_prefix(self, scope: Scope) -> str:
        if not self.behind_proxy:
            return ""
        value = Headers(scope=scope).get("x-forwarded-prefix", "").strip().rstrip("/")
        return value if _PREFIX.match(value) else ""
