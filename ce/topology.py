"""The table of what the platform runs: the four services, the province simulator, the ports of
API.md, and the module that builds each app (a ``create_app(settings)`` factory)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from libs.common.settings import Settings

SERVICES = ("claims", "review", "registry", "sync")
"""The services: each owns a database with its own migrations (``SPEC.migrations_dir``)."""

SIMULATOR = "province"
"""The stand-in for the province platform, run beside the services."""

PROCESSES = (SIMULATOR, *SERVICES)
"""What ``ce run`` starts, in order: the simulator first, since sync calls it."""

DEFAULT_PORTS = {"claims": 8001, "review": 8002, "registry": 8003, "sync": 8004, "province": 8009}

CONSOLE = "console"
"""The web console (``console/``): a client of the services' HTTP APIs, started last."""

CONSOLE_PORT = 8000

APPS = {
    **{name: f"services.{name}.main" for name in SERVICES},
    SIMULATOR: "simulators.province.app",
}


def app_module(name: str) -> Any:
    """The module of a process: it has ``create_app(settings)``, and a service also ``SPEC``."""
    if name not in APPS:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(APPS)}")
    return importlib.import_module(APPS[name])


def port_of(settings: Settings) -> int:
    """The port a process listens on: ``CE_PORT`` if set, else its default of API.md."""
    return settings.port if settings.port is not None else DEFAULT_PORTS[settings.service]


def run_ports(environ: Mapping[str, str]) -> dict[str, int]:
    """The port of every process of ``ce run``, the console last: ``CE_<NAME>_PORT`` (e.g.
    ``CE_CLAIMS_PORT``, ``CE_CONSOLE_PORT``) if set, else the default."""
    ports = {n: int(environ.get(f"CE_{n.upper()}_PORT", DEFAULT_PORTS[n])) for n in PROCESSES}
    ports[CONSOLE] = int(environ.get("CE_CONSOLE_PORT", CONSOLE_PORT))
    return ports
