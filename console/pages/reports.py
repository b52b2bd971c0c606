"""统计报表: compliance of a year per district / department / unit — a table and a chart
(compliant vs not, the hours missing per subject) — and the files (that table, every person) as
CSV or XLSX, streamed from the claims service. One report call whatever the scope's size
(``GET /v1/reports/compliance/by-org``: one row per org over its subtree, and the total)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.pages.streams import stream_from
from console.problems import ApiProblem
from console.web import CurrentUser, User, render, require_role

router = APIRouter(prefix="/reports")

ROLES = ("city_admin", "district_admin", "department_admin")
FORMATS = ("csv", "xlsx")
DRILL_TYPES = ("city", "district", "department")  # rows of these types open their own report
REPORTS = {"persons": "/v1/reports/compliance", "orgs": "/v1/reports/compliance/by-org"}
BAR_WIDTH = 360  # the chart's bar area, in SVG units


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    first: int  # the widths of the two segments, in SVG units
    second: int
    first_value: float
    second_value: float

    @property
    def first_text(self) -> str:
        return shown(self.first_value)

    @property
    def second_text(self) -> str:
        return shown(self.second_value)


def shown(value: float) -> str:
    """A count or hours as people write them: 2, 20.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def bars(rows: list[dict[str, Any]], first: str, second: str) -> list[Bar]:
    """Two stacked segments per row (``first`` and ``second`` are paths like ``gaps.public``),
    scaled to the largest row (SVG attributes only: the CSP allows no inline style)."""

    def value(row: dict[str, Any], path: str) -> float:
        found: Any = row
        for key in path.split("."):
            found = found[key]
        return float(found)

    values = [(value(r, first), value(r, second)) for r in rows]
    largest = max((a + b for a, b in values), default=0.0) or 1.0
    return [
        Bar(
            str(r["name"]),
            24 * i,
            round(BAR_WIDTH * a / largest),
            round(BAR_WIDTH * b / largest),
            a,
            b,
        )
        for i, (r, (a, b)) in enumerate(zip(rows, values, strict=True))
    ]


async def _authorities(user: User) -> list[dict[str, Any]]:
    """The city's choices of scope: every district and department (two calls)."""
    pages = await asyncio.gather(
        *(
            user.api.get("review", "/v1/orgs", {"type": t, "limit": 500})
            for t in ("district", "department")
        )
    )
    return [o for page in pages for o in page["items"]]


@router.get("", response_class=HTMLResponse)
async def report(request: Request, user: CurrentUser) -> HTMLResponse:
    """The scope's orgs one row each (the city: its districts and departments; a district or
    department: its units), each over its whole subtree, with the total."""
    require_role(user, *ROLES)
    params = request.query_params
    year_text = params.get("year", "")
    year = int(year_text) if year_text.isdigit() else date.today().year
    city = user.principal.role == "city_admin"
    org_id = params.get("org_id") or (None if city else user.principal.org_id)
    authorities = await _authorities(user) if city else []
    alert, status = None, 200
    body: dict[str, Any] | None = None
    try:
        body = await user.api.get(
            "claims", "/v1/reports/compliance/by-org", {"year": year, "org_id": org_id}
        )
    except ApiProblem as problem:
        alert, status = problem.message, problem.status
    rows: list[dict[str, Any]] = body["rows"] if body else []
    return render(
        request,
        "reports/report.html",
        {
            "year": year,
            "org_id": org_id or "",
            "scope": body.get("org") if body else None,
            "city": city,
            "authorities": authorities,
            "rows": rows,
            "total": body["total"] if body else None,
            "drill": DRILL_TYPES,
            "compliance_bars": bars(rows, "compliant", "non_compliant"),
            "gap_bars": bars(rows, "gaps.public", "gaps.professional"),
            "bar_width": BAR_WIDTH,
            "formats": FORMATS,
            "alert": alert,
        },
        status=status,
    )


@router.get("/download")
async def download(request: Request, user: CurrentUser) -> Response:
    """A report of the scope as a file, passed through as the service makes it: every person
    (``report=persons``) or the table of orgs (``report=orgs``)."""
    require_role(user, *ROLES)
    params = request.query_params
    fmt = params.get("format", "csv")
    year_text = params.get("year", "")
    path = REPORTS.get(params.get("report", "persons"))
    if fmt not in FORMATS or not year_text.isdigit() or path is None:
        raise ApiProblem(422, "validation_error", "format csv or xlsx, a year and a report")
    return await stream_from(
        user,
        "claims",
        path,
        {"year": int(year_text), "org_id": params.get("org_id") or None, "format": fmt},
    )
