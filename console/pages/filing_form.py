"""The 附件2 form (枣庄市专业培训项目计划申报表) as the console shows it: each field of the
registry's filing under its Chinese name from the notice's form, and the mapping between the
submitted HTML form and the body of ``POST /v1/projects`` / ``PUT /v1/projects/{id}``.

The console checks only what it must to build the body (a field left empty, a number that is not
one); every rule of a filing (dates in the year, days within the span, ≤ 8 hours a day, the 20 May
deadline) stays in the registry, whose refusal is shown on the same page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

InputKind = Literal["text", "textarea", "number", "date", "select", "tel"]


@dataclass(frozen=True)
class FormField:
    name: str  # the registry's field
    label: str  # the Chinese name of 附件2
    kind: InputKind = "text"
    required: bool = True
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) of a select
    hint: str = ""
    step: str = "1"  # number inputs
    group: str = ""  # a <fieldset> legend for fields that 附件2 keeps in one cell


YES_NO = (("false", "否"), ("true", "是"))
FORMS = (("offline", "线下"), ("online", "线上"), ("mixed", "线上线下结合"))
KINDS = (("training", "专业培训项目"), ("digital_manager", "数字化管理师培训"))
LEVELS = (("", "不适用"), ("junior", "初级"), ("intermediate", "中级"))
SUBJECTS = (("professional", "专业科目"), ("public", "公需科目"))

# in the order of the form
FIELDS: tuple[FormField, ...] = (
    FormField("year", "年度", "number"),
    FormField("address", "地址"),
    FormField("name", "申请培训项目名称"),
    FormField("person_in_charge", "负责人"),
    FormField("contact_name", "联系人"),
    FormField("contact_phone", "联系电话", "tel", hint="如 0632-3314140 或 13800000000"),
    FormField("advanced_seminar", "是否申请为市级高级研修班", "select", choices=YES_NO),
    FormField("plan", "培训计划", "textarea"),
    FormField("target_trainees", "计划培训对象"),
    FormField("planned_participants", "计划培训人数", "number"),
    FormField("start_date", "开始日期", "date", group="计划培训时间"),
    FormField("end_date", "结束日期", "date", group="计划培训时间"),
    FormField("days", "培训天数", "number", hint="计划培训时间内的培训天数"),
    FormField("planned_hours", "拟计算学时", "number", step="0.5", hint="每天不超过8学时"),
    FormField("venue", "培训地点", group="培训地点及培训形式"),
    FormField("form", "培训形式", "select", choices=FORMS, group="培训地点及培训形式"),
    FormField("kind", "项目类别", "select", choices=KINDS),
    FormField("level", "数字化管理师级别", "select", required=False, choices=LEVELS),
    FormField("subject", "学时科目", "select", choices=SUBJECTS),
    FormField("unit_opinion", "申报单位意见", "textarea", required=False),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
INTEGERS = ("year", "planned_participants", "days")
DECIMALS = ("planned_hours",)
BOOLEANS = ("advanced_seminar",)


def choice_label(name: str, value: object) -> str:
    """The Chinese label of a select's value (the value itself when unknown)."""
    field = FIELD_BY_NAME[name]
    text = str(value).lower() if isinstance(value, bool) else ("" if value is None else str(value))
    return dict(field.choices).get(text, text)


def display_rows(project: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every field of a filing as (Chinese name, value shown), in the order of 附件2."""
    rows: list[tuple[str, str]] = []
    for field in FIELDS:
        value = project.get(field.name)
        if field.kind == "select":
            shown = choice_label(field.name, value)
        elif value is None or value == "":
            shown = "—"
        else:
            shown = str(value)
        rows.append((field.name, shown))
    return [(FIELD_BY_NAME[name].label, shown) for name, shown in rows]


def form_values(project: Mapping[str, Any]) -> dict[str, str]:
    """A filing's fields as the HTML form's values (to amend it)."""
    values: dict[str, str] = {}
    for field in FIELDS:
        value = project.get(field.name)
        if isinstance(value, bool):
            values[field.name] = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            values[field.name] = str(int(value))
        else:
            values[field.name] = "" if value is None else str(value)
    return values


@dataclass
class ParsedForm:
    body: dict[str, Any]
    errors: list[str]  # in Chinese, one per field


def parse_form(form: Mapping[str, str], *, applicant_org_id: str) -> ParsedForm:
    """The registry's body from the submitted form, or the Chinese reasons it cannot be built."""
    body: dict[str, Any] = {"applicant_org_id": applicant_org_id}
    errors: list[str] = []
    for field in FIELDS:
        raw = (form.get(field.name) or "").strip()
        if not raw:
            if field.required:
                errors.append(f"请填写「{field.label}」。")
            else:
                body[field.name] = None
            continue
        if field.name in INTEGERS:
            if not raw.isdigit():
                errors.append(f"「{field.label}」应为整数。")
                continue
            body[field.name] = int(raw)
        elif field.name in DECIMALS:
            try:
                number = float(raw)
            except ValueError:
                errors.append(f"「{field.label}」应为数字。")
                continue
            body[field.name] = number
        elif field.name in BOOLEANS:
            body[field.name] = raw == "true"
        elif field.choices and raw not in dict(field.choices):
            errors.append(f"「{field.label}」的选项无效。")
        else:
            body[field.name] = raw
    return ParsedForm(body, errors)


STATUS_LABELS = {
    "draft": "草稿",
    "submitted": "待审核",
    "approved": "已备案",
    "returned": "已退回",
    "rejected": "不予备案",
}
STEP_LABELS = {
    "created": "填报",
    "amended": "修改",
    "submitted": "提交备案",
    "approve": "准予备案",
    "reject": "不予备案",
    "return": "退回修改",
}
EDITABLE = ("draft", "returned")
