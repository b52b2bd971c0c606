"""Files a service makes (the 附件2 form PDF, report exports) passed through to the browser as
they arrive, under the user's own token: the console holds no copy."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from console.clients import Params
from console.web import User

PASSED_HEADERS = ("content-type", "content-disposition")


async def stream_from(
    user: User, service: str, path: str, params: Params | None = None
) -> StreamingResponse:
    upstream = await user.api.open_stream(service, path, params)
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in PASSED_HEADERS}
    return StreamingResponse(
        upstream.aiter_bytes(),
        status_code=upstream.status_code,
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )
