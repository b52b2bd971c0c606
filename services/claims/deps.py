"""Dependency aliases of the claims routes: the service state and an open unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends

from libs.common.service import StateDep
from libs.common.uow import UnitOfWork

State = StateDep


async def _unit_of_work(state: State) -> AsyncIterator[UnitOfWork]:
    async with state.uow() as uow:
        yield uow


# one unit of work for the route, closed (rolled back unless committed) as soon as the route
# function returns: before the response is sent, so no database transaction outlives the route
Uow = Annotated[UnitOfWork, Depends(_unit_of_work, scope="function")]
