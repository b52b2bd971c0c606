"""The console's way to the services: one async ``httpx`` client per service, every call with
the signed-in user's own bearer token (the console is no authority of its own). A problem
document becomes :class:`ApiProblem`; a service that does not answer becomes one too
(``console_unavailable``), so every page can show it in Chinese."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from console.problems import ApiProblem
from console.settings import ConsoleSettings

SERVICES = ("claims", "review", "registry", "sync")
Params = Mapping[str, str | int | float | bool | list[str] | None]


class ServiceClients:
    """Holds the clients; ``transports`` (tests) routes a service to an in-process app."""

    def __init__(
        self,
        settings: ConsoleSettings,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        transports = transports or {}
        self.requests_sent = 0  # outgoing calls, counted (the no-N+1 test reads it)
        self._clients = {
            name: httpx.AsyncClient(
                base_url=settings.service_url(name),
                timeout=settings.console_service_timeout_s,
                transport=transports.get(name),
                headers={"Accept-Language": "zh-CN"},
                event_hooks={"request": [self._count]},
            )
            for name in SERVICES
        }

    async def _count(self, request: httpx.Request) -> None:
        self.requests_sent += 1

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    def for_token(self, token: str) -> ServiceCalls:
        return ServiceCalls(self._clients, token)


def _clean(params: Params | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None and v != ""}


def unavailable(service: str, exc: Exception) -> ApiProblem:
    return ApiProblem(503, "console_unavailable", f"{service}: {type(exc).__name__}")


def raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body: object = response.json()
    except ValueError:
        body = None
    raise ApiProblem.from_document(response.status_code, body)


class ServiceCalls:
    """The calls of one request, under one user's token."""

    def __init__(self, clients: Mapping[str, httpx.AsyncClient], token: str) -> None:
        self._clients = clients
        self._auth = {"Authorization": f"Bearer {token}"}

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        files: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._clients[service].request(
                method,
                path,
                params=_clean(params),
                json=json,
                files=files,
                data=data,
                headers={**self._auth, **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise unavailable(service, exc) from exc
        raise_for_problem(response)
        return response

    async def get(self, service: str, path: str, params: Params | None = None) -> Any:
        return (await self.request(service, "GET", path, params=params)).json()

    async def post(self, service: str, path: str, json: Any = None, **kw: Any) -> Any:
        response = await self.request(service, "POST", path, json=json, **kw)
        return response.json() if response.content else None

    async def patch(self, service: str, path: str, json: Any = None) -> Any:
        response = await self.request(service, "PATCH", path, json=json)
        return response.json() if response.content else None

    async def open_stream(
        self, service: str, path: str, params: Params | None = None
    ) -> httpx.Response:
        """A streamed GET (evidence files, exports), open: the caller iterates ``aiter_bytes``
        and must ``aclose`` it (a StreamingResponse's background task)."""
        client = self._clients[service]
        request = client.build_request("GET", path, params=_clean(params), headers=self._auth)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise unavailable(service, exc) from exc
        if not response.is_success:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise_for_problem(response)
        return response
