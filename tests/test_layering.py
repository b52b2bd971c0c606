"""The layers, checked by reading every module's imports with ``ast`` (imports inside functions
and under ``TYPE_CHECKING`` included):

- ``libs/`` is library code: it imports only ``libs`` and third-party or standard modules, never
  the application (``services``, ``simulators``, ``ce``) nor the tests;
- a service imports ``libs`` and itself, never another service, a simulator or the composition
  root (services meet only through events and HTTP); its tests may use the simulators and the
  shared test support, but not another service either;
- a simulator stands in for an external system: it imports ``libs`` and itself, never a service;
- the console (``console/``) is a client of the services: it imports ``libs`` and itself, never
  a service, a simulator or the composition root — it talks to the services over HTTP only, and
  reads no service's database; its tests may run the services in process;
- ``ce/`` is the composition root: it may import anything but the tests and the benchmarks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("libs", "services", "simulators", "ce", "console")
APPLICATION = {"services", "simulators", "ce", "console", "tests", "bench"}


def imported_modules(source: str) -> Iterator[str]:
    """Every absolute module a source imports (``from x import y`` gives ``x`` and ``x.y``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the file below
                yield "." * node.level + (node.module or "")
                continue
            assert node.module is not None
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _is_test_code(parts: tuple[str, ...]) -> bool:
    return "tests" in parts or parts[-1] == "conftest.py"


def violations(relative_path: str, source: str) -> list[str]:
    """The imports of the module at ``relative_path`` (from the repository root) that break the
    layering, as ``"path: module"`` lines."""
    parts = Path(relative_path).parts
    layer = parts[0]
    found = []
    for module in imported_modules(source):
        if module.startswith("."):
            found.append(f"{relative_path}: relative import {module!r}; use an absolute one")
            continue
        top = module.split(".")
        if layer == "libs":
            forbidden = top[0] in APPLICATION
        elif layer == "services":
            other_service = top[0] == "services" and len(top) > 1 and top[1] != parts[1]
            if _is_test_code(parts):
                forbidden = other_service or top[0] in {"ce", "bench"}
            else:
                forbidden = other_service or top[0] in APPLICATION - {"services"}
        elif layer == "simulators":
            forbidden = top[0] in APPLICATION - {"simulators"}
        elif layer == "console":
            if _is_test_code(parts):
                forbidden = top[0] in {"ce", "bench"}
            else:
                forbidden = top[0] in APPLICATION - {"console"}
        elif layer == "ce":
            forbidden = top[0] in {"tests", "bench"}
        else:
            raise AssertionError(f"no layering rule for {relative_path}")
        if forbidden:
            found.append(f"{relative_path}: {module}")
    return found


def modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "migrations" not in path.relative_to(REPO).parts[2:3]  # alembic env and versions
    )


def test_every_package_has_modules_to_check() -> None:
    counts = {p: sum(1 for m in modules() if m.relative_to(REPO).parts[0] == p) for p in PACKAGES}
    assert all(counts.values()), counts


def test_no_module_imports_across_its_layer() -> None:
    broken = [
        line
        for path in modules()
        for line in violations(str(path.relative_to(REPO)), path.read_text(encoding="utf-8"))
    ]
    assert broken == [], "\n".join(broken)


def test_the_migrations_of_a_service_import_only_libs_and_that_service() -> None:
    for path in REPO.glob("services/*/migrations/**/*.py"):
        service = path.relative_to(REPO).parts[1]
        for module in imported_modules(path.read_text(encoding="utf-8")):
            top = module.split(".")
            assert top[0] not in APPLICATION - {"services"}, f"{path}: {module}"
            assert top[0] != "services" or top[1] == service, f"{path}: {module}"


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("libs/common/cli.py", "from services.sync.simulator import create_simulator_app"),
        ("libs/common/x.py", "def f():\n    import ce.topology\n"),
        ("libs/common/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n import tests"),
        ("services/sync/api.py", "from services.claims.models import Person"),
        ("services/sync/main.py", "from simulators.province.app import create_app"),
        ("services/sync/main.py", "import ce.cli"),
        ("services/sync/tests/test_x.py", "from services import claims"),
        ("simulators/province/app.py", "from services.sync.province import ProvinceClient"),
        ("ce/cli.py", "from tests.support import free_port"),
        ("libs/common/x.py", "from . import y"),
        ("console/pages/review.py", "from services.review.models import ReviewTask"),
        ("console/clients.py", "def f():\n    import ce.topology\n"),
        ("console/app.py", "from simulators.province.app import create_app"),
        ("libs/common/x.py", "import console.app"),
        ("services/claims/api.py", "from console.problems import ApiProblem"),
    ],
)
def test_the_check_catches_a_forbidden_import(path: str, source: str) -> None:
    assert violations(path, source)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("libs/common/x.py", "import httpx\nfrom libs.common.db import utcnow"),
        ("services/sync/api.py", "from services.sync.models import OutboundRecord"),
        ("services/sync/tests/test_x.py", "from simulators.province.faults import Faults"),
        ("services/claims/tests/test_x.py", "from tests.support import free_port"),
        ("simulators/province/app.py", "from libs.contracts.province import ProvinceRecord"),
        ("ce/cli.py", "import services.claims.main\nfrom simulators.province import app"),
        ("ce/cli.py", "from console.app import create_app"),
        ("console/pages/auth_dev.py", "from libs.common.auth import TokenService\nimport httpx"),
        ("console/tests/test_x.py", "from services.review.tests.support import review_app"),
    ],
)
def test_the_check_allows_what_the_layers_allow(path: str, source: str) -> None:
    assert violations(path, source) == []
