"""The org directory as it changes: the parent rules, renames and re-codes, moves, deactivation
(with the org's open tasks rerouted), and the bulk import of a whole directory from a file.

Every change is validated before anything is written (a refused change leaves nothing behind) and
publishes the whole org as ``org.upserted``, which every replica applies by overwriting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func, literal, select

from libs.common.db import new_id
from libs.common.errors import NotFound, RuleViolation
from libs.common.events import OrgUpserted
from libs.common.tabular import TableRow, read_table_off_loop
from libs.common.uow import UnitOfWork
from services.review import routing
from services.review.models import Org, ReviewTask

ORG_TYPES = ("city", "district", "department", "unit", "agency", "provider", "exam_center")
# which parent types each org type may have (None: no parent)
ALLOWED_PARENTS: dict[str, tuple[str | None, ...]] = {
    "city": (None,),
    "district": ("city", None),
    "department": ("city", None),
    "unit": ("district", "department"),
    "agency": ("district",),
    "provider": ("city", "district", "department", None),
    "exam_center": ("city", None),
}
IMPORT_COLUMNS = ("code", "name", "type", "parent_code")
MAX_IMPORT_ROWS = 5000


def org_upserted(org: Org) -> OrgUpserted:
    return OrgUpserted(
        org_id=org.id,
        code=org.code,
        name=org.name,
        type=org.type,
        parent_id=org.parent_id,
        active=org.active is not False,
        self_appraising=bool(org.self_appraising),
    )


def parent_problem(type_: str, parent_type: str | None) -> str | None:
    """Why ``parent_type`` cannot be the parent of an org of ``type_`` (None: it can)."""
    if parent_type in ALLOWED_PARENTS[type_]:
        return None
    allowed = " or ".join(t or "no parent" for t in ALLOWED_PARENTS[type_])
    return f"an org of type {type_} must have {allowed} as parent, not {parent_type or 'none'}"


async def check_parent(
    uow: UnitOfWork, type_: str, parent_id: str | None, *, moving: Org | None = None
) -> Org | None:
    """The parent an org of ``type_`` may have: it exists, is not the org itself or under it, is
    of an allowed type and is active. Raises 422 naming the rule."""
    parent = await uow.session.get(Org, parent_id) if parent_id else None
    if parent_id and parent is None:
        raise RuleViolation(f"parent org {parent_id} does not exist", code="unknown_parent_org")
    if moving is not None and parent is not None:
        ancestor: Org | None = parent
        seen: set[str] = set()
        while ancestor is not None and ancestor.id not in seen:
            if ancestor.id == moving.id:
                raise RuleViolation(
                    f"org {moving.code} cannot move under {parent.code}: that is itself or an "
                    "org under it (a cycle)",
                    code="org_cycle",
                )
            seen.add(ancestor.id)
            ancestor = (
                await uow.session.get(Org, ancestor.parent_id) if ancestor.parent_id else None
            )
    problem = parent_problem(type_, parent.type if parent else None)
    if problem:
        raise RuleViolation(problem, code="invalid_org_parent")
    if parent is not None and not parent.active:
        raise RuleViolation(
            f"parent org {parent.code} is deactivated and takes no orgs", code="parent_inactive"
        )
    return parent


MAX_DEPTH = 20  # deeper than any real tree (city → district → unit): a cyclic one still ends


async def ancestors(uow: UnitOfWork, org: Org) -> list[Org]:
    """The orgs above ``org``, the root first (its breadcrumb): one recursive statement."""
    if org.parent_id is None:
        return []
    up = (
        select(Org.id, Org.parent_id, literal(1).label("depth"))
        .where(Org.id == org.parent_id)
        .cte("up", recursive=True)
    )
    up = up.union(
        select(Org.id, Org.parent_id, up.c.depth + 1).where(
            Org.id == up.c.parent_id, up.c.depth < MAX_DEPTH
        )
    )
    rows = await uow.session.execute(
        select(Org, up.c.depth).join(up, up.c.id == Org.id).order_by(up.c.depth.desc())
    )
    chain: list[Org] = []
    for found, _ in rows.all():
        if found.id != org.id and found not in chain:
            chain.append(found)
    return chain


async def children_count(uow: UnitOfWork, org_ids: list[str]) -> dict[str, int]:
    """How many orgs are directly under each of ``org_ids`` (absent: none): one statement."""
    if not org_ids:
        return {}
    rows = await uow.session.execute(
        select(Org.parent_id, func.count(Org.id))
        .where(Org.parent_id.in_(org_ids))
        .group_by(Org.parent_id)
    )
    return {str(parent): int(n) for parent, n in rows.all()}


async def _check_code_free(uow: UnitOfWork, code: str, org_id: str | None) -> None:
    holder = await uow.session.scalar(select(Org.id).where(Org.code == code))
    if holder is not None and holder != org_id:
        raise RuleViolation(f"an org with code {code} exists already", code="duplicate_org_code")


class _Unset:
    """A field of a PATCH that was not sent (``None`` is a value: no parent)."""


UNSET = _Unset()


@dataclass
class OrgChange:
    """``PATCH /v1/orgs/{id}``: only the fields given change; ``parent_id=None`` means no parent."""

    name: str | _Unset = UNSET
    code: str | _Unset = UNSET
    parent_id: str | _Unset | None = UNSET
    active: bool | _Unset = UNSET
    self_appraising: bool | _Unset = UNSET


async def update_org(uow: UnitOfWork, org_id: str, change: OrgChange, *, actor: str) -> Org:
    org = await uow.session.get(Org, org_id, with_for_update=True)
    if org is None:
        raise NotFound(f"org {org_id} not found", code="org_not_found")
    changed = False
    if isinstance(change.code, str) and change.code != org.code:
        await _check_code_free(uow, change.code, org.id)
        org.code, changed = change.code, True
    if isinstance(change.name, str) and change.name != org.name:
        org.name, changed = change.name, True
    old_parent_id = org.parent_id
    if not isinstance(change.parent_id, _Unset) and change.parent_id != org.parent_id:
        await check_parent(uow, org.type, change.parent_id, moving=org)
        org.parent_id, changed = change.parent_id, True
    deactivated = False
    if isinstance(change.active, bool) and change.active != org.active:
        deactivated = not change.active
        org.active, changed = change.active, True
    if isinstance(change.self_appraising, bool) and change.self_appraising != org.self_appraising:
        if org.type != "unit":
            raise RuleViolation(
                f"only a unit can be a self-appraising unit (职称自主评聘单位); {org.code} is a "
                f"{org.type}",
                code="self_appraising_not_unit",
                org_type=org.type,
            )
        org.self_appraising, changed = change.self_appraising, True
    if not changed:
        return org
    await uow.session.flush()
    if org.parent_id != old_parent_id and org.type in routing.FIRST_STAGE_TYPES:
        await _follow_move(uow, org, old_parent_id, actor=actor)
    if deactivated:
        await _empty_queue(uow, org, actor=actor)
    uow.emit(org_upserted(org), subject=org.id)
    return org


async def _open_tasks(uow: UnitOfWork, *where: Any) -> list[ReviewTask]:
    stmt = (
        select(ReviewTask)
        .where(ReviewTask.status == "open", *where)
        .order_by(ReviewTask.created_at, ReviewTask.id)
        .with_for_update()
    )
    return list((await uow.session.scalars(stmt)).all())


async def _follow_move(uow: UnitOfWork, org: Org, old_parent_id: str | None, *, actor: str) -> None:
    """A unit moved to another authority: the audits waiting at the old one follow it."""
    to = await routing.route_authority(uow, org.id)
    for task in await _open_tasks(
        uow,
        ReviewTask.unit_org_id == org.id,
        ReviewTask.stage == "authority",
        ReviewTask.org_id == (old_parent_id or routing.UNROUTED),
    ):
        await routing.move_task(uow, task, to, actor=actor, reason=f"org {org.code} moved")


async def _empty_queue(uow: UnitOfWork, org: Org, *, actor: str) -> None:
    """A deactivated org decides nothing more: its open tasks go to its parent authority, or to
    the city's unrouted queue when it has none."""
    to = await routing.route_authority(uow, org.id)
    for task in await _open_tasks(uow, ReviewTask.org_id == org.id):
        await routing.move_task(uow, task, to, actor=actor, reason=f"org {org.code} deactivated")


# --- bulk import ----------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    code: str
    name: str
    type: str
    parent_code: str
    errors: list[dict[str, str]] = field(default_factory=list)

    def refuse(self, code: str, detail: str) -> None:
        self.errors.append({"code": code, "detail": detail})


ImportStatus = Literal["created", "updated", "unchanged"]


async def read_import(data: bytes, filename: str | None) -> list[TableRow]:
    """The rows of an org import file (CSV or XLSX), parsed off the event loop within the table
    reader's limits (:class:`libs.common.tabular.TableLimits`)."""
    return await read_table_off_loop(
        data, required=IMPORT_COLUMNS, filename=filename, max_rows=MAX_IMPORT_ROWS
    )


async def import_orgs(uow: UnitOfWork, table: list[TableRow], *, actor: str) -> dict[str, Any]:
    """Create or update every org of the file by ``code``, parents by ``parent_code`` (orgs of
    the directory or of the same file). All or nothing: one bad row and nothing is written, the
    problem lists every bad row. An unchanged row is a no-op, so a file can be imported again."""
    existing = {o.code: o for o in (await uow.session.scalars(select(Org))).all()}
    by_id = {o.id: o for o in existing.values()}
    rows = [
        _Row(r.line, r.get("code"), r.get("name"), r.get("type").lower(), r.get("parent_code"))
        for r in table
    ]
    in_file: dict[str, _Row] = {}
    for row in rows:
        _validate_fields(row)
        if row.code in in_file:
            first = in_file[row.code].line
            row.refuse("duplicate_code_in_file", f"code {row.code} is on line {first} already")
        elif row.code:
            in_file[row.code] = row

    def parent_code_of(code: str) -> str | None:
        if code in in_file:
            return in_file[code].parent_code or None
        org = existing.get(code)
        parent = by_id.get(org.parent_id) if org and org.parent_id else None
        return parent.code if parent else None

    for row in rows:
        if not row.errors:
            _validate_place(row, in_file, existing, parent_code_of)
    bad = [r for r in rows if r.errors]
    if bad:
        raise RuleViolation(
            f"{len(bad)} of {len(rows)} rows are refused (first: line {bad[0].line}, "
            f"{bad[0].errors[0]['detail']}); nothing was imported",
            code="import_rejected",
            rows=[{"line": r.line, "code": r.code, "errors": r.errors} for r in bad],
        )
    results: dict[str, tuple[ImportStatus, str]] = {}

    async def apply(row: _Row) -> str:
        if row.code in results:
            return results[row.code][1]
        parent_id: str | None = None
        if row.parent_code:
            parent_row = in_file.get(row.parent_code)
            if parent_row is not None and parent_row is not row:
                parent_id = await apply(parent_row)
            else:
                parent_id = existing[row.parent_code].id
        org = existing.get(row.code)
        if org is None:
            org = Org(
                id=new_id(),
                code=row.code,
                name=row.name,
                type=row.type,
                parent_id=parent_id,
                active=True,
            )
            uow.session.add(org)
            uow.emit(org_upserted(org), subject=org.id)
            results[row.code] = ("created", org.id)
        elif (org.name, org.parent_id) == (row.name, parent_id):
            results[row.code] = ("unchanged", org.id)
        else:
            await update_org(
                uow, org.id, OrgChange(name=row.name, parent_id=parent_id), actor=actor
            )
            results[row.code] = ("updated", org.id)
        return org.id

    for row in rows:
        await apply(row)
    await uow.session.flush()
    items = [
        {"line": r.line, "code": r.code, "status": results[r.code][0], "id": results[r.code][1]}
        for r in rows
    ]
    counts = {s: sum(1 for i in items if i["status"] == s) for s in ("created", "updated")}
    return {**counts, "unchanged": len(items) - sum(counts.values()), "rows": items}


def _validate_fields(row: _Row) -> None:
    if not row.code:
        row.refuse("missing_code", "the code is empty")
    elif len(row.code) > 64:
        row.refuse("invalid_code", "a code has at most 64 characters")
    if not row.name:
        row.refuse("missing_name", "the name is empty")
    elif len(row.name) > 200:
        row.refuse("invalid_name", "a name has at most 200 characters")
    if row.type not in ORG_TYPES:
        row.refuse("invalid_org_type", f"type must be one of {', '.join(ORG_TYPES)}")


def _validate_place(
    row: _Row,
    in_file: dict[str, _Row],
    existing: dict[str, Org],
    parent_code_of: Callable[[str], str | None],
) -> None:
    current = existing.get(row.code)
    if current is not None and current.type != row.type:
        row.refuse(
            "org_type_change",
            f"org {row.code} is a {current.type}; its type cannot change to {row.type}",
        )
    if not row.parent_code:
        problem = parent_problem(row.type, None)
        if problem:
            row.refuse("invalid_org_parent", problem)
        return
    parent_row, parent_org = in_file.get(row.parent_code), existing.get(row.parent_code)
    if parent_row is None and parent_org is None:
        row.refuse(
            "unknown_parent_code",
            f"parent code {row.parent_code} is neither in the directory nor in the file",
        )
        return
    code: str | None = row.parent_code
    seen: set[str] = set()
    while code is not None and code not in seen:
        if code == row.code:
            row.refuse("org_cycle", f"org {row.code} would be under itself")
            return
        seen.add(code)
        code = parent_code_of(code)
    parent_type = parent_row.type if parent_row is not None else existing[row.parent_code].type
    problem = parent_problem(row.type, parent_type)
    if problem:
        row.refuse("invalid_org_parent", problem)
    if parent_org is not None and not parent_org.active:
        row.refuse("parent_inactive", f"parent org {row.parent_code} is deactivated")
