"""Files passed through under the user's own token, the console keeping no copy: what a
service makes (the 附件2 form PDF, report exports) streamed to the browser as it arrives, and a
file the user uploads (a roster, an org directory) sent on to the service."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
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


@dataclass(frozen=True)
class Refused:
    """Why a form's file is not sent on: the Chinese message and the status to answer with."""

    message: str
    status: int


async def post_file(
    user: User, service: str, path: str, form: FormData, *, max_bytes: int
) -> httpx.Response | Refused:
    """The form's ``file`` sent on to the service as it came (multipart, field ``file``) — or
    refused here when none was chosen or it is larger than the service takes. A service's own
    refusal is raised as :class:`~console.problems.ApiProblem`."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return Refused("请选择要上传的文件。", 422)
    content = await upload.read(max_bytes + 1)
    if len(content) > max_bytes:
        return Refused(
            f"文件过大（不超过 {max_bytes // (1024 * 1024)} MB），请拆分后分批上传。", 413
        )
    files = {"file": (upload.filename, content, upload.content_type or "")}
    return await user.api.request(service, "POST", path, files=files)
