"""The landing page, sign-out, and placeholders of pages a later issue brings."""

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


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    """退出: the session is cleared here (the cookie carries nothing of the user any more)."""
    session_of(request).sign_out()
    return redirect(request.app.state.login_url)


@router.get("/me", response_class=HTMLResponse)
async def my_hours(request: Request, user: CurrentUser) -> HTMLResponse:
    """我的学时: the staff pages come with the self-service issue."""
    return render(request, "home/placeholder.html", {"title": "我的学时"})
