"""The landing page, the welcome page of roles without pages, and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console.session import session_of
from console.web import CurrentUser, home_of, redirect, render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> RedirectResponse:
    session = session_of(request)
    if session.signed_in and session.principal is not None:
        return RedirectResponse(home_of(session.principal.role), status_code=303)
    return RedirectResponse(request.app.state.login_url, status_code=303)


@router.get("/welcome", response_class=HTMLResponse)
async def welcome(request: Request, user: CurrentUser) -> HTMLResponse:
    """For a role with no page in the console (exam centres, integrations)."""
    message = "当前角色在管理控制台中暂无可用页面，请通过接口或对应系统办理业务。"
    return render(request, "home/placeholder.html", {"title": "欢迎", "message": message})


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    """退出: the session is cleared here (the cookie carries nothing of the user any more)."""
    session_of(request).sign_out()
    return redirect(request.app.state.login_url)
