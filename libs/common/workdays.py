"""Chinese working days, for the title-application deadline of the notice (六、时间安排).

A working day is a day the ``chinesecalendar`` package calls a workday: Monday to Friday
except public holidays, plus the adjusted working weekends (调休上班). The package holds the
official schedule only up to the latest published year; for other years it raises
``NotImplementedError``, and we count Monday to Friday only, with a visible warning.
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar


def is_working_day(day: date) -> tuple[bool, str | None]:
    """Whether ``day`` is a Chinese working day, and a warning when the official data is missing."""
    try:
        return bool(chinese_calendar.is_workday(day)), None
    except NotImplementedError:
        warning = (
            f"The official {day.year} holiday schedule is not available, so weekends only were "
            f"excluded for {day.year}: public holidays and adjusted working weekends are not "
            "taken into account. Check the deadline against the State Council's schedule."
        )
        return day.weekday() < 5, warning


def title_deadline(application_date: date, working_days: int = 5) -> tuple[date, list[str]]:
    """The date by which a title applicant must have completed the year's hours.

    "Complete the hours 5 working days before submitting the application" (应于申报材料前5个
    工作日完成) means: counting back from the day before ``application_date`` (the application
    date itself never counts), the ``working_days``-th working day met is the deadline; hours
    completed on or before that day are in time. So an application on Monday 2026-03-16 has the
    deadline Monday 2026-03-09 (Fri 13, Thu 12, Wed 11, Tue 10, Mon 9). With ``working_days=0``
    the deadline is the application date.

    Returns the deadline and warnings (one per year counted without official data). Never
    raises for a date outside the package's data."""
    if working_days < 0:
        raise ValueError("working_days must not be negative")
    day, counted, warnings = application_date, 0, []
    while counted < working_days:
        day -= timedelta(days=1)
        working, warning = is_working_day(day)
        if warning and warning not in warnings:
            warnings.append(warning)
        counted += working
    return day, warnings


def working_days_after(start: date, end: date) -> int:
    """How many working days lie after ``start`` up to and including ``end`` (0 when
    ``end <= start``): the age of something that arrived on ``start``, seen on ``end``. A task
    created on Friday is 1 working day old on Monday. Years without official data count Monday
    to Friday (see :func:`is_working_day`)."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += is_working_day(day)[0]
    return count


def working_days_before(end: date, working_days: int) -> date:
    """The latest day whose age on ``end`` is ``working_days`` (the inverse of
    :func:`working_days_after`): everything that arrived on or before it is at least that old."""
    day, counted = end, 0
    while counted < working_days:
        counted += is_working_day(day)[0]
        day -= timedelta(days=1)
    return day
