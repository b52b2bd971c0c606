"""Dependency aliases of the claims routes: the service state and a unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from libs.common.service import ServiceState, state_of
from libs.common.uow import UnitOfWork


def _state(request: Request) -> ServiceState:
    return state_of(request)


State = Annotated[ServiceState, Depends(_state)]


async def _unit_of_work(state: State) -> AsyncIterator[UnitOfWork]:
    async with state.uow() as uow:
        yield uow


# one unit of work for the route, closed (rolled back unless committed) as soon as the route
# function returns: before the response is sent, so no database transaction outlives the route
Uow = Annotated[UnitOfWork, Depends(_unit_of_work, scope="function")]
