"""The sync service's own state beside the shared ``ServiceState``: one province client per
process (the breaker and the rate limit cover every call to the province), opened and closed by
the app's lifespan (``ServiceSpec.extension``), read through :func:`sync_of`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from libs.common.service import ServiceState
from services.sync.province import ProvinceClient


@dataclass
class SyncState:
    province_client: ProvinceClient


@asynccontextmanager
async def sync_state(state: ServiceState) -> AsyncIterator[SyncState]:
    async with ProvinceClient.from_settings(state.settings) as client:
        yield SyncState(client)


def sync_of(state: ServiceState) -> SyncState:
    return state.ext_as(SyncState)
