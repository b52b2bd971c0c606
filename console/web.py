"""What every page module uses: rendering a template with the session and navigation, the
signed-in user (with their service calls), the CSRF check, and the navigation by role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from console.clients import ServiceCalls, ServiceClients
from console.problems import ApiProblem
from console.session import CSRF_FIELD, CSRF_HEADER, Principal, Session, session_of
from libs.common.clock import BEIJING

ROLE_NAMES = {
    "unit_admin": "用人单位管理员",
    "agency_admin": "人才服务机构管理员",
    "district_admin": "区（市）人社局审核员",
    "department_admin": "市直主管部门审核员",
    "city_admin": "市人社局管理员",
    "provider": "继续教育基地",
    "exam_center": "考试机构",
    "personnel": "专业技术人员",
    "ops": "运维人员",
    "system": "系统对接",
}
"""The role codes of the tokens with their Chinese names (the 角色 select)."""

REVIEWER_ROLES = ("unit_admin", "agency_admin", "district_admin", "department_admin")
AUTHORITY_ROLES = ("district_admin", "department_admin", "city_admin")


@dataclass(frozen=True)
class NavLink:
    label: str
    href: str
    roles: tuple[str, ...]


NAVIGATION = (
    NavLink("待审核", "/review", REVIEWER_ROLES),
    NavLink("审核进度", "/review/progress", AUTHORITY_ROLES),
    NavLink(
        "项目备案",
        "/filings",
        ("city_admin", "provider", "unit_admin", "department_admin", "district_admin"),
    ),
    NavLink("机构管理", "/orgs", ("city_admin",)),
    NavLink("统计报表", "/reports", ("city_admin", "district_admin", "department_admin")),
    NavLink("运行状态", "/ops", ("city_admin", "ops")),
    NavLink("我的学时", "/me", ("personnel",)),
    NavLink("我的申报", "/me/claims", ("personnel",)),
    NavLink("消息", "/me/messages", ("personnel",)),
)


def navigation_for(role: str | None) -> list[NavLink]:
    return [link for link in NAVIGATION if role in link.roles]


def home_of(role: str) -> str:
    """Where a role lands after signing in: its first page, else the welcome page."""
    links = navigation_for(role)
    return links[0].href if links else "/welcome"


class NotSignedIn(Exception):
    """Raised by a page that needs a user; rendered as a redirect to the sign-in."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class CsrfFailed(ApiProblem):
    def __init__(self) -> None:
        super().__init__(403, "csrf_failed", "the form's CSRF token does not match the session")


templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def beijing_time(value: object, seconds: bool = False) -> str:
    """An ISO 8601 timestamp of a service (UTC) as people here read it: Beijing time."""
    if not value:
        return "—"
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


templates.env.filters["beijing"] = beijing_time


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    """A page: the template with the session's principal, CSRF token and navigation."""
    session = session_of(request)
    principal = session.principal if session.signed_in else None
    values: dict[str, Any] = {
        "principal": principal,
        "role_name": ROLE_NAMES.get(principal.role, principal.role) if principal else "",
        "csrf_token": session.csrf,
        "navigation": navigation_for(principal.role if principal else None),
        "path": request.url.path,
        "alert": None,
        "notice": session.take("notice"),  # the result of the last post (post/redirect/get)
    }
    values.update(context or {})
    return templates.TemplateResponse(request, template, values, status_code=status)


def redirect(url: str) -> RedirectResponse:
    """After a successful POST: 303 to the page to show (post/redirect/get)."""
    return RedirectResponse(url, status_code=303)


async def check_csrf(request: Request) -> None:
    """Every unsafe request carries the session's CSRF token: the hidden form field
    ``csrf_token`` or (htmx) the ``X-CSRF-Token`` header."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    session = session_of(request)
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not session.csrf_ok(presented):
        raise CsrfFailed()


@dataclass(frozen=True)
class User:
    """The signed-in user of a request: who they are and their calls to the services."""

    session: Session
    principal: Principal
    api: ServiceCalls


def clients_of(request: Request) -> ServiceClients:
    clients: ServiceClients = request.app.state.clients
    return clients


async def current_user(request: Request) -> User:
    session = session_of(request)
    if not session.signed_in or session.token is None or session.principal is None:
        next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(next_url)
    return User(session, session.principal, clients_of(request).for_token(session.token))


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(user: User, *roles: str) -> None:
    """The console hides pages a role has no use for; the services still decide."""
    if user.principal.role not in roles:
        raise ApiProblem(403, "role_not_allowed", "this page is not for this role")
