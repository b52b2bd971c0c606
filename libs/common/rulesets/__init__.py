"""Per-year rule data that more than one service reads: the training-project filing rules of
附件2 (the registry files projects; claims relies on their filings).

Each ``<year>.json`` here is the year's notice turned into data; code never holds these numbers.
Interpretations:

- "City-direct units' own projects must be filed by 20 May" is read as *submitted* by the end of
  that day, Beijing time: 20 May 23:59:59 is in time, 21 May 00:00:00 is late.
- Planned hours respect the same "≤ 8 per day" as a training claim (planned hours ≤ 8 × days).
"""

from __future__ import annotations

import functools
import json
from datetime import date
from importlib.resources import files
from typing import Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from libs.common.errors import RuleViolation


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProjectFilingRules(_Frozen):
    city_direct_unit_deadline: date
    max_planned_hours_per_day: int


class SharedRuleSet(_Frozen):
    year: int
    source: str
    project_filing: ProjectFilingRules


class _YearData(Protocol):
    year: int


Y = TypeVar("Y", bound=BaseModel)


def load_year_data(package: str, year: int, model: type[Y], *, refused: str) -> Y:
    """``<package>/<year>.json`` validated as ``model``. An unknown year is 422
    ``unknown_rule_year`` (``refused`` says what cannot be done without it); a file that names
    another year is a packaging error."""
    resource = files(package).joinpath(f"{int(year)}.json")
    if not resource.is_file():
        raise RuleViolation(
            f"There are no continuing-education rules for {year}: {refused}",
            code="unknown_rule_year",
            year=year,
        )
    data = model.model_validate(json.loads(resource.read_text(encoding="utf-8")))
    declared = cast(_YearData, data).year
    if declared != year:
        raise ValueError(f"{package}: {year}.json declares year {declared}")
    return data


@functools.cache
def load_shared_rules(year: int) -> SharedRuleSet:
    """The shared rule data of ``year`` (cached); an unknown year is ``unknown_rule_year``."""
    return load_year_data(
        "libs.common.rulesets",
        year,
        SharedRuleSet,
        refused="nothing can be filed for a year whose notice has not been loaded.",
    )
