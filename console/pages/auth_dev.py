"""Dev sign-in (embedded/dev only): ``/login`` mints a token with the dev key of CE_DATA_DIR
for the role, org and person typed in — or for a demo principal in one click. It answers 404
when the dev key is not in use (production signs in through the OIDC provider)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from console.problems import ApiProblem
from console.session import Principal, session_of
from console.settings import ConsoleSettings
from console.web import ROLE_NAMES, clients_of, home_of, redirect, render
from libs.common.auth import ORG_ROLES, TokenService
from libs.common.settings import Settings

router = APIRouter()

# who the demo principals are: each admin role of the org types ce/demo.py creates
DEMO_ROLE_OF_ORG_TYPE = {
    "city": "city_admin",
    "district": "district_admin",
    "department": "department_admin",
    "unit": "unit_admin",
    "agency": "agency_admin",
    "provider": "provider",
    "exam_center": "exam_center",
}
DEMO_ORDER = list(DEMO_ROLE_OF_ORG_TYPE)


@dataclass(frozen=True)
class DemoPrincipal:
    role: str
    org_id: str = ""
    person_id: str = ""
    label: str = ""


def _settings(request: Request) -> ConsoleSettings:
    settings: ConsoleSettings = request.app.state.settings
    if not settings.dev_login:
        raise HTTPException(404)
    return settings


def _tokens(settings: ConsoleSettings) -> TokenService:
    return TokenService(Settings(data_dir=settings.data_dir))


def safe_next(value: str | None) -> str | None:
    """Only a path of this site (no open redirect to another host)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return None


async def demo_principals(request: Request, tokens: TokenService) -> list[DemoPrincipal]:
    """The orgs (and their people) found through the services' APIs with a dev city token;
    empty when the services are not up or hold nothing yet."""
    api = clients_of(request).for_token(tokens.mint(role="city_admin", sub="console-dev", ttl_s=60))
    try:
        orgs = (await api.get("review", "/v1/orgs", {"limit": 500}))["items"]
    except ApiProblem:
        return []
    found: list[DemoPrincipal] = []
    rank = {org_type: i for i, org_type in enumerate(DEMO_ORDER)}
    for org in sorted(orgs, key=lambda o: rank.get(o["type"], len(rank))):
        role = DEMO_ROLE_OF_ORG_TYPE.get(org["type"])
        if role and org.get("active", True):
            found.append(DemoPrincipal(role, org["id"], "", org["name"]))
    try:  # GET /v1/persons (the api helper's endpoint): the demo's people, one click each
        people = (await api.get("claims", "/v1/persons", {"limit": 20}))["items"]
    except (ApiProblem, KeyError):
        people = []
    found += [DemoPrincipal("personnel", "", p["id"], p["name"]) for p in people]
    return found


def _login_page(
    request: Request,
    demos: list[DemoPrincipal],
    typed: dict[str, str] | None = None,
    alert: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "auth/login.html",
        {
            "roles": ROLE_NAMES,
            "typed": typed or {"role": "unit_admin", "org_id": "", "person_id": ""},
            "demos": demos,
            "next": safe_next(request.query_params.get("next")) or "",
            "alert": alert,
        },
        status=status,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    settings = _settings(request)
    return _login_page(request, await demo_principals(request, _tokens(settings)))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    role: Annotated[str, Form()],
    org_id: Annotated[str, Form()] = "",
    person_id: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    settings = _settings(request)
    tokens = _tokens(settings)
    org_id, person_id = org_id.strip(), person_id.strip()
    typed = {"role": role, "org_id": org_id, "person_id": person_id}
    try:
        if role not in ROLE_NAMES:
            raise ApiProblem(422, "unknown_role", "")
        if role in ORG_ROLES and not org_id:
            raise ApiProblem(422, "org_required", "")
        if role == "personnel" and not person_id:
            raise ApiProblem(422, "person_required", "")
        token = tokens.mint(
            role=role,
            org_id=org_id or None,
            person_id=person_id or None,
            sub=f"console-dev:{role}:{org_id or person_id or 'city'}",
        )
        label = await _label_of(request, token, role, org_id, person_id)
    except ApiProblem as exc:
        demos = await demo_principals(request, tokens)
        return _login_page(request, demos, typed, LOGIN_MESSAGES.get(exc.code, exc.message), 422)
    session_of(request).sign_in(token, Principal(role, org_id or None, person_id or None, label))
    return redirect(safe_next(next) or home_of(role))


LOGIN_MESSAGES = {
    "unknown_role": "请选择有效的角色。",
    "org_required": "该角色需要填写机构。",
    "person_required": "专业技术人员需要填写人员。",
    "org_not_found": "机构不存在，请检查机构编号。",
    "person_not_found": "人员不存在，请检查人员编号。",
}


async def _label_of(request: Request, token: str, role: str, org_id: str, person_id: str) -> str:
    """The name shown in the navigation, read with the new token (so a wrong id is refused
    here rather than on every page)."""
    api = clients_of(request).for_token(token)
    if org_id:
        service, path, missing = "review", f"/v1/orgs/{org_id}", "org_not_found"
    elif person_id:
        service, path, missing = "claims", f"/v1/persons/{person_id}", "person_not_found"
    else:
        return ROLE_NAMES[role]
    try:
        return str((await api.get(service, path))["name"])
    except ApiProblem as exc:
        if exc.status == 404:
            raise ApiProblem(422, missing, exc.detail) from exc
        return ROLE_NAMES[role]  # readable or not, the services decide on every page
