"""The claims service's rule warnings (English, from ``services/claims/rules.py``) in Chinese
for the reviewers' pages: a pattern per kind of warning; one not known here is shown as it
came, so nothing a reviewer should see is dropped."""

from __future__ import annotations

import re

NUMBER = r"(\d+(?:\.\d+)?)"
SUBJECTS = {"public": "公需科目", "professional": "专业科目"}


def _group(label: str) -> str:
    """The Chinese part of a cap group's label: ``study (学习类)`` → ``学习类``."""
    found = re.search(r"（([^）]+)）|\(([^)]*[\u4e00-\u9fff][^)]*)\)", label)
    return next((g for g in found.groups() if g), label) if found else label


def _cut_hours(m: re.Match[str]) -> str:
    left, wanted, limit, group, used = m.groups()
    return (
        f"{_group(group)}每年最多 {limit} 学时，已认定 {used} 学时：本次 {wanted} 学时中"
        f"只有 {left} 学时可计入。"
    )


def _cut_months(m: re.Match[str]) -> str:
    left, months, group, limit, used = m.groups()
    return (
        f"{_group(group)}每年最多 {limit} 个月，已认定 {used} 个月：本次 {months} 个月中"
        f"只有 {left} 个月可计入。"
    )


def _pending(m: re.Match[str]) -> str:
    _, _, group, named, could, wanted = m.groups()
    titles = "、".join(re.findall(r"「[^」]*」", named)) or named
    return (
        f"{_group(group)}的年度上限也计入审核中的申报 {titles}：若它们先通过，本次 {wanted} 学时中"
        f"只有 {could} 学时可计入（上限按通过先后占用）。"
    )


def _met(m: re.Match[str]) -> str:
    subject, required, have = m.groups()
    name = SUBJECTS.get(subject, subject)
    return (
        f"{name}已满 {required} 学时（已认定 {have} 学时），"
        f"多出的{name}学时不能弥补另一科目的不足。"
    )


def _titles(text: str) -> str:
    return "、".join(re.findall(r"「[^」]*」", text)) or text


PATTERNS = [
    (
        re.compile(r"^the filing number will be checked by your unit and the HR authority$"),
        lambda m: "备案号须由单位和人社部门核对。",
    ),
    (re.compile(r"^filed project: (.+)$"), lambda m: f"已备案项目：{m.group(1)}"),
    (
        re.compile(
            rf"^This person has other claims on these days: (.+)\. Together they fit {NUMBER} "
            r"hours a day.*$"
        ),
        lambda m: (
            f"此人在这些日期还有其他申报：{_titles(m.group(1))}。合计未超过每天 {m.group(2)} 学时，"
            "请核对活动时间是否重叠。"
        ),
    ),
    (
        re.compile(r"^Months (.+?) are also claimed by (「[^」]*」).*$"),
        lambda m: f"{m.group(1)} 月也由{m.group(2)}申报（审核中）：同一月份只计入先通过的一项。",
    ),
    (
        re.compile(r"^Months (.+?) are already credited by (.+): only the other (\d+) month.*$"),
        lambda m: f"{m.group(1)} 月已由{_titles(m.group(2))}计入：本次只计其余 {m.group(3)} 个月。",
    ),
    (
        re.compile(
            rf"^Only {NUMBER} of {NUMBER} hours can still count under the {NUMBER}-hour yearly "
            rf"cap on (.+) \({NUMBER} already credited\)\.$"
        ),
        _cut_hours,
    ),
    (
        re.compile(
            rf"^Only {NUMBER} of {NUMBER} months can still count under the yearly cap on (.+) "
            rf"\({NUMBER} months; {NUMBER} already credited\)\.$"
        ),
        _cut_months,
    ),
    (
        re.compile(
            rf"^Claims still in review also count under the {NUMBER} (\w+) yearly cap on (.+?): "
            rf"(.+)\. If they are approved first, only {NUMBER} of this claim's {NUMBER} hours "
            r"can count .*$"
        ),
        _pending,
    ),
    (
        re.compile(
            rf"^The (\w+) requirement of {NUMBER} hours is already met \({NUMBER} credited\); "
            r".*$"
        ),
        _met,
    ),
]


def warning_in_chinese(text: str) -> str:
    for pattern, render in PATTERNS:
        match = pattern.match(text)
        if match:
            return render(match)
    return text
