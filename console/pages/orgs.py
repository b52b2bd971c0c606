"""机构管理 (the city bureau): the org tree — browse by parent, search by name or code, create an
org under the one shown, rename or re-code, move under another parent, deactivate or reactivate —
the import of a whole directory from a file (all or nothing, every row's result), and the
unrouted queue: authority-stage tasks with no valid route, given to a district or department.

The review service owns the directory and its rules; the console only shows and sends."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.pages.streams import Refused, post_file
from console.problems import ApiProblem
from console.web import CurrentUser, User, redirect, render, require_role

router = APIRouter()

TYPE_NAMES = {
    "city": "市人社局",
    "district": "区（市）人社局",
    "department": "市直主管部门",
    "unit": "用人单位",
    "agency": "人事代理/人社服务机构",
    "provider": "继续教育基地/行业主管部门",
    "exam_center": "考试机构",
}
# which parent types each org type may have (as the review service's directory rules say)
PARENT_TYPES = {
    "city": (),
    "district": ("city",),
    "department": ("city",),
    "unit": ("district", "department"),
    "agency": ("district",),
    "provider": ("city", "district", "department"),
    "exam_center": ("city",),
}
AUTHORITY_TYPES = ("district", "department")
LIST_LIMIT = 500
MAX_IMPORT_BYTES = 5 * 1024 * 1024
IMPORT_STATUS = {"created": "新建", "updated": "更新", "unchanged": "未变化"}
ROW_MESSAGES = {
    "missing_code": "缺少机构代码。",
    "invalid_code": "机构代码最多 64 个字符。",
    "missing_name": "缺少机构名称。",
    "invalid_name": "机构名称最多 200 个字符。",
    "invalid_org_type": "机构类型无效（应为 city、district、department、unit、agency、"
    "provider、exam_center）。",
    "org_type_change": "已有机构的类型不能更改。",
    "unknown_parent_code": "上级机构代码既不在目录中，也不在文件中。",
    "duplicate_code_in_file": "机构代码在文件中重复出现。",
    "org_cycle": "机构不能位于自己之下。",
    "invalid_org_parent": "该类型机构不能设在该上级机构之下。",
    "parent_inactive": "上级机构已停用。",
}


def row_message(error: dict[str, str]) -> str:
    return ROW_MESSAGES.get(error.get("code", ""), error.get("detail", ""))


async def _orgs(user: User, **params: str | None) -> list[dict[str, Any]]:
    page = await user.api.get("review", "/v1/orgs", {**params, "limit": LIST_LIMIT})
    items: list[dict[str, Any]] = page["items"]
    return items


async def _of_types(user: User, types: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every org of these types (a few calls, one per type: there are few authorities)."""
    lists = await asyncio.gather(*(_orgs(user, type=t) for t in types))
    return sorted((o for orgs in lists for o in orgs), key=lambda o: (o["type"], o["code"]))


async def _ancestors(user: User, org: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain from the root down to the org's parent (the tree is a few levels deep)."""
    chain: list[dict[str, Any]] = []
    parent_id = org.get("parent_id")
    while parent_id and len(chain) < 10:
        parent = await user.api.get("review", f"/v1/orgs/{parent_id}")
        chain.insert(0, parent)
        parent_id = parent.get("parent_id")
    return chain


async def _tree_page(
    request: Request,
    user: User,
    *,
    alert: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    params = request.query_params
    parent_id = (typed or {}).get("parent_id") or params.get("parent_id") or None
    q = params.get("q", "").strip()
    parent = await user.api.get("review", f"/v1/orgs/{parent_id}") if parent_id else None
    if q:
        orgs = await _orgs(user, q=q)
    elif parent is not None:
        orgs = await _orgs(user, parent_id=parent["id"])
    else:
        orgs = [o for o in await _orgs(user, type="city")] + [
            o for o in await _of_types(user, ("district", "department")) if not o["parent_id"]
        ]
    chain = await _ancestors(user, parent) if parent else []
    child_types = [
        t for t, parents in PARENT_TYPES.items() if (parent or {}).get("type") in parents
    ]
    if parent is None:
        child_types = [t for t, parents in PARENT_TYPES.items() if not parents] + [
            "district",
            "department",
        ]
    return render(
        request,
        "orgs/tree.html",
        {
            "orgs": sorted(orgs, key=lambda o: (o["type"], o["code"])),
            "parent": parent,
            "chain": chain,
            "q": q,
            "types": TYPE_NAMES,
            "child_types": child_types,
            "typed": typed or {},
            "alert": alert,
            "notice": "已新建机构。" if params.get("done") == "created" and not alert else None,
        },
        status=status,
    )


@router.get("/orgs", response_class=HTMLResponse)
async def tree(request: Request, user: CurrentUser) -> HTMLResponse:
    require_role(user, "city_admin")
    return await _tree_page(request, user)


def _typed(form: Any) -> dict[str, str]:
    return {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


@router.post("/orgs", response_class=HTMLResponse)
async def create(request: Request, user: CurrentUser) -> Response:
    require_role(user, "city_admin")
    typed = _typed(await request.form())
    missing = [
        label for key, label in (("code", "机构代码"), ("name", "机构名称")) if not typed.get(key)
    ]
    if missing:
        alert = "请填写" + "、".join(f"「{m}」" for m in missing) + "。"
        return await _tree_page(request, user, alert=alert, typed=typed, status=422)
    body = {
        "code": typed["code"],
        "name": typed["name"],
        "type": typed.get("type", ""),
        "parent_id": typed.get("parent_id") or None,
    }
    try:
        await user.api.post("review", "/v1/orgs", body)
    except ApiProblem as problem:
        return await _tree_page(
            request, user, alert=problem.message, typed=typed, status=problem.status
        )
    parent = body["parent_id"]
    return redirect(f"/orgs?parent_id={parent}&done=created" if parent else "/orgs?done=created")


ORG_NOTICES = {
    "rename": "已保存名称和代码。",
    "move": "已移动到新的上级机构。",
    "deactivate": "已停用该机构；其待审核任务已转交上级机构。",
    "activate": "已重新启用该机构。",
}


async def _org_page(
    request: Request,
    user: User,
    org_id: str,
    *,
    alert: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    org = await user.api.get("review", f"/v1/orgs/{org_id}")
    candidates, children, chain = await asyncio.gather(
        _of_types(user, PARENT_TYPES.get(org["type"], ())),
        _orgs(user, parent_id=org_id),
        _ancestors(user, org),
    )
    done = request.query_params.get("done", "")
    return render(
        request,
        "orgs/org.html",
        {
            "org": org,
            "chain": chain,
            "children": children,
            "candidates": [c for c in candidates if c["id"] != org_id],
            "types": TYPE_NAMES,
            "typed": typed or {},
            "alert": alert,
            "notice": ORG_NOTICES.get(done) if not alert else None,
        },
        status=status,
    )


@router.get("/orgs/import", response_class=HTMLResponse)
async def import_form(request: Request, user: CurrentUser) -> HTMLResponse:
    require_role(user, "city_admin")
    return render(request, "orgs/import.html", {"result": None, "refused": None})


@router.post("/orgs/import", response_class=HTMLResponse)
async def import_file(request: Request, user: CurrentUser) -> HTMLResponse:
    """导入: the file goes to the review service as it is; all or nothing, as the API is."""
    require_role(user, "city_admin")

    def page(alert: str | None, status: int, **values: Any) -> HTMLResponse:
        context = {"result": None, "refused": None, "alert": alert, **values}
        context.update(statuses=IMPORT_STATUS, row_message=row_message)
        return render(request, "orgs/import.html", context, status=status)

    try:
        sent = await post_file(
            user, "review", "/v1/orgs/import", await request.form(), max_bytes=MAX_IMPORT_BYTES
        )
    except ApiProblem as problem:
        refused = problem.document.get("rows") if problem.code == "import_rejected" else None
        return page(problem.message, problem.status, refused=refused or None)
    if isinstance(sent, Refused):
        return page(sent.message, sent.status)
    return page(None, 200, result=sent.json(), notice="导入完成。")


@router.get("/orgs/unrouted", response_class=HTMLResponse)
async def unrouted(request: Request, user: CurrentUser) -> HTMLResponse:
    require_role(user, "city_admin")
    return await _unrouted_page(request, user)


async def _unrouted_page(
    request: Request,
    user: User,
    *,
    alert: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    page, authorities = await asyncio.gather(
        user.api.get(
            "review",
            "/v1/review-tasks",
            {
                "org_id": "unrouted",
                "status": "open",
                "cursor": request.query_params.get("cursor"),
                "limit": 50,
            },
        ),
        _of_types(user, AUTHORITY_TYPES),
    )
    return render(
        request,
        "orgs/unrouted.html",
        {
            "tasks": page["items"],
            "next_cursor": page["next_cursor"],
            "authorities": [a for a in authorities if a.get("active", True)],
            "types": TYPE_NAMES,
            "alert": alert,
            "notice": "已分配。" if request.query_params.get("done") == "assigned" else None,
        },
        status=status,
    )


@router.post("/orgs/unrouted/{task_id}/assign", response_class=HTMLResponse)
async def assign(request: Request, user: CurrentUser, task_id: str) -> Response:
    require_role(user, "city_admin")
    typed = _typed(await request.form())
    if not typed.get("org_id"):
        return await _unrouted_page(request, user, alert="请选择要分配给的审核机构。", status=422)
    try:
        await user.api.post(
            "review", f"/v1/review-tasks/{task_id}/assign", {"org_id": typed["org_id"]}
        )
    except ApiProblem as problem:
        return await _unrouted_page(request, user, alert=problem.message, status=problem.status)
    return redirect("/orgs/unrouted?done=assigned")


@router.get("/orgs/{org_id}", response_class=HTMLResponse)
async def org_page(request: Request, user: CurrentUser, org_id: str) -> HTMLResponse:
    require_role(user, "city_admin")
    return await _org_page(request, user, org_id)


@router.post("/orgs/{org_id}", response_class=HTMLResponse)
async def change(request: Request, user: CurrentUser, org_id: str) -> Response:
    """One change at a time (``action``): rename (name and code), move (parent), deactivate,
    activate — each a ``PATCH /v1/orgs/{id}`` that the review service refuses or applies whole."""
    require_role(user, "city_admin")
    typed = _typed(await request.form())
    action = typed.get("action", "")
    patch: dict[str, Any]
    if action == "rename":
        if not typed.get("name") or not typed.get("code"):
            return await _org_page(
                request, user, org_id, alert="请填写机构名称和机构代码。", typed=typed, status=422
            )
        patch = {"name": typed["name"], "code": typed["code"]}
    elif action == "move":
        patch = {"parent_id": typed.get("parent_id") or None}
    elif action in ("deactivate", "activate"):
        patch = {"active": action == "activate"}
    else:
        return await _org_page(request, user, org_id, alert="未知的操作。", status=422)
    try:
        await user.api.patch("review", f"/v1/orgs/{org_id}", patch)
    except ApiProblem as problem:
        return await _org_page(
            request, user, org_id, alert=problem.message, typed=typed, status=problem.status
        )
    return redirect(f"/orgs/{org_id}?done={action}")
