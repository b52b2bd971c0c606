"""统计报表: compliance of a year per district / department / unit — a table and a chart
(compliant vs not, the hours missing per subject) — and the full per-person report as CSV or
XLSX, streamed from the claims service. One report call whatever the scope's size: the summary
is one aggregate in the service (``summary.by_org`` with each org's parent and gaps)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
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
BAR_WIDTH = 360  # the chart's bar area, in SVG units


@dataclass
class Row:
    """One line of the table and of the chart."""

    org_id: str
    name: str
    persons: int = 0
    compliant: int = 0
    gap_public: float = 0.0
    gap_professional: float = 0.0
    units: list[str] = field(default_factory=list)

    @property
    def non_compliant(self) -> int:
        return self.persons - self.compliant

    @property
    def rate(self) -> str:
        return f"{100 * self.compliant / self.persons:.1f}%" if self.persons else "—"

    def add(self, org: dict[str, Any]) -> None:
        self.persons += int(org["persons"])
        self.compliant += int(org["compliant"])
        gaps = org.get("gaps") or {}
        self.gap_public = round(self.gap_public + float(gaps.get("public", 0)), 1)
        self.gap_professional = round(self.gap_professional + float(gaps.get("professional", 0)), 1)


def unit_rows(summary: dict[str, Any]) -> list[Row]:
    rows = []
    for org in summary["by_org"]:
        row = Row(org["org_id"], org.get("org_name") or org["org_id"])
        row.add(org)
        rows.append(row)
    return rows


def authority_rows(summary: dict[str, Any], names: dict[str, str]) -> list[Row]:
    """The units' figures summed per parent (a district or a department)."""
    by_parent: dict[str, Row] = {}
    for org in summary["by_org"]:
        parent = org.get("parent_id") or ""
        row = by_parent.setdefault(parent, Row(parent, names.get(parent, "其他")))
        row.add(org)
    return sorted(by_parent.values(), key=lambda r: r.name)


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


def bars(rows: list[Row], first: str, second: str) -> list[Bar]:
    """Two stacked segments per row, scaled to the largest row (SVG attributes only: the CSP
    allows no inline style)."""
    values = [(float(getattr(r, first)), float(getattr(r, second))) for r in rows]
    largest = max((a + b for a, b in values), default=0.0) or 1.0
    return [
        Bar(
            r.name,
            24 * i,
            round(BAR_WIDTH * a / largest),
            round(BAR_WIDTH * b / largest),
            a,
            b,
        )
        for i, (r, (a, b)) in enumerate(zip(rows, values, strict=True))
    ]


async def _authority_names(user: User) -> dict[str, dict[str, Any]]:
    lists = await asyncio.gather(
        *(
            user.api.get("review", "/v1/orgs", {"type": t, "limit": 500})
            for t in ("district", "department")
        )
    )
    return {o["id"]: o for page in lists for o in page["items"]}


@router.get("", response_class=HTMLResponse)
async def report(request: Request, user: CurrentUser) -> HTMLResponse:
    require_role(user, *ROLES)
    params = request.query_params
    year_text = params.get("year", "")
    year = int(year_text) if year_text.isdigit() else date.today().year
    city = user.principal.role == "city_admin"
    org_id = params.get("org_id") or (None if city else user.principal.org_id)
    authorities = await _authority_names(user) if city else {}
    alert, status = None, 200
    summary: dict[str, Any] | None = None
    scope: dict[str, Any] | None = None
    try:
        body = await user.api.get(
            "claims",
            "/v1/reports/compliance",
            {"year": year, "org_id": org_id, "limit": 1, "summary": True},
        )
        summary, scope = body["summary"], body.get("org")
    except ApiProblem as problem:
        alert, status = problem.message, problem.status
    units = unit_rows(summary) if summary else []
    whole_city = city and (scope is None or scope.get("type") == "city")
    names = {i: o["name"] for i, o in authorities.items()}
    groups = authority_rows(summary, names) if summary and whole_city else []
    chart_rows = groups or units
    return render(
        request,
        "reports/report.html",
        {
            "year": year,
            "org_id": org_id or "",
            "scope": scope,
            "city": city,
            "authorities": sorted(authorities.values(), key=lambda o: (o["type"], o["code"])),
            "summary": summary,
            "groups": groups,
            "units": units,
            "compliance_bars": bars(chart_rows, "compliant", "non_compliant"),
            "gap_bars": bars(chart_rows, "gap_public", "gap_professional"),
            "bar_width": BAR_WIDTH,
            "formats": FORMATS,
            "alert": alert,
        },
        status=status,
    )


@router.get("/download")
async def download(request: Request, user: CurrentUser) -> Response:
    """The per-person report of the scope as a file, passed through as the service streams it."""
    require_role(user, *ROLES)
    params = request.query_params
    fmt = params.get("format", "csv")
    year_text = params.get("year", "")
    if fmt not in FORMATS or not year_text.isdigit():
        raise ApiProblem(422, "validation_error", "format csv or xlsx and a year")
    return await stream_from(
        user,
        "claims",
        "/v1/reports/compliance",
        {"year": int(year_text), "org_id": params.get("org_id") or None, "format": fmt},
    )
