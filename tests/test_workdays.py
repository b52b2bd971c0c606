from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.workdays import (
    is_working_day,
    title_deadline,
    working_days_after,
    working_days_before,
)

# 2026 per the chinesecalendar data: Mid-autumn 09-25..27, National Day 10-01..07,
# adjusted working days Sun 09-20 and Sat 10-10 (also Sun 01-04, Sat 02-14, Sat 02-28, Sat 05-09).


@pytest.mark.parametrize(
    ("application", "deadline"),
    [
        # no holidays: Fri 13, Thu 12, Wed 11, Tue 10, Mon 9
        (date(2026, 3, 16), date(2026, 3, 9)),
        # across Golden Week and Mid-autumn: 10-08, 09-30, 09-29, 09-28, 09-24
        (date(2026, 10, 9), date(2026, 9, 24)),
        # the adjusted working Saturday 10-10 counts: 10-10, 10-09, 10-08, 09-30, 09-29
        (date(2026, 10, 12), date(2026, 9, 29)),
        # the adjusted working Sunday 09-20 counts: 09-24, 23, 22, 21, 20
        (date(2026, 9, 28), date(2026, 9, 20)),
        # Spring Festival 02-15..23, adjusted Saturday 02-14: 02-24 back is 02-14 then 13..10
        (date(2026, 2, 24), date(2026, 2, 10)),
        # adjusted Saturday 02-28 counts: 02-28, 27, 26, 25, 24
        (date(2026, 3, 2), date(2026, 2, 24)),
        # Labour Day 05-01..05: 04-30, 29, 28, 27, 24 (04-25/26 are a weekend)
        (date(2026, 5, 6), date(2026, 4, 24)),
        # New Year 01-01..03 and the adjusted working Sunday 01-04: 01-05, 01-04, 12-31 ... 12-29
        (date(2026, 1, 6), date(2025, 12, 29)),
    ],
)
def test_deadline_with_official_2026_calendar(application: date, deadline: date) -> None:
    assert title_deadline(application) == (deadline, [])


def test_application_date_itself_never_counts() -> None:
    # Wednesday application: Tue, Mon, (weekend), Fri, Thu, Wed
    assert title_deadline(date(2026, 6, 10))[0] == date(2026, 6, 3)


def test_other_number_of_working_days() -> None:
    assert title_deadline(date(2026, 10, 12), working_days=1) == (date(2026, 10, 10), [])
    assert title_deadline(date(2026, 10, 12), working_days=0) == (date(2026, 10, 12), [])
    with pytest.raises(ValueError):
        title_deadline(date(2026, 10, 12), working_days=-1)


def test_beyond_the_data_falls_back_to_weekends_only_with_a_warning() -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 3, 1))
    deadline, warnings = title_deadline(date(2027, 3, 15))
    assert deadline == date(2027, 3, 8)
    assert len(warnings) == 1
    assert "2027" in warnings[0] and "weekends only" in warnings[0]


def test_straddling_the_end_of_the_data_warns_once_and_uses_data_for_2026() -> None:
    # 2027-01-01 (Fri) counts as a working day in the fallback; 2026 days use the data.
    deadline, warnings = title_deadline(date(2027, 1, 4))
    assert deadline == date(2026, 12, 28)
    assert len(warnings) == 1


def test_is_working_day() -> None:
    assert is_working_day(date(2026, 10, 10)) == (True, None)
    assert is_working_day(date(2026, 10, 1)) == (False, None)
    working, warning = is_working_day(date(2030, 5, 1))
    assert working and warning


@given(
    application=st.dates(min_value=date(2005, 1, 1), max_value=date(2035, 12, 31)),
    n=st.integers(min_value=1, max_value=15),
)
def test_exactly_n_working_days_from_deadline_to_the_day_before(application: date, n: int) -> None:
    deadline, _ = title_deadline(application, working_days=n)
    assert deadline < application
    assert is_working_day(deadline)[0]
    days = [deadline + timedelta(days=i) for i in range((application - deadline).days)]
    assert sum(is_working_day(d)[0] for d in days) == n


@pytest.mark.parametrize(
    ("arrived", "seen", "age"),
    [
        (date(2026, 11, 27), date(2026, 11, 27), 0),
        (date(2026, 11, 27), date(2026, 11, 30), 1),  # Friday → Monday
        (date(2026, 11, 1), date(2026, 11, 27), 20),  # from a Sunday
        # Golden Week: 10-01..07 off, so Wednesday 09-30 is 2 days old on Friday 10-09
        (date(2026, 9, 30), date(2026, 10, 9), 2),
        # the adjusted working Saturday 10-10 counts
        (date(2026, 10, 9), date(2026, 10, 10), 1),
        (date(2026, 11, 27), date(2026, 11, 20), 0),  # seen before it arrived
    ],
)
def test_working_days_after(arrived: date, seen: date, age: int) -> None:
    assert working_days_after(arrived, seen) == age


@given(
    end=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    age=st.integers(min_value=0, max_value=40),
)
def test_working_days_before_is_the_latest_day_of_that_age(end: date, age: int) -> None:
    day = working_days_before(end, age)
    assert working_days_after(day, end) == age
    assert working_days_after(day + timedelta(days=1), end) < age or age == 0
