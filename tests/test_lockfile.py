"""The image is built from lock files with hashes (deploy/requirements.lock, deploy/build.lock);
these tests keep them in step with pyproject.toml, check that the environment the tests run in has
the locked versions (scripts/setup.sh installs with the lock as constraints), and that the wheel
the image installs ships no tests.

Regenerate after changing dependencies (the commands are the first lines of each lock file):
    .venv/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --universal \\
        -o deploy/requirements.lock
    .venv/bin/uv pip compile deploy/build-requirements.in --generate-hashes --python-version 3.11 \\
        --universal -o deploy/build.lock
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = REPO / "deploy" / "requirements.lock"
BUILD_LOCK = REPO / "deploy" / "build.lock"
BUILD_IN = REPO / "deploy" / "build-requirements.in"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
PROJECT = "zz-ce-hours"


@dataclass
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    def applies_here(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def parse_lock(path: Path) -> tuple[str, list[Pin]]:
    """(the command that generated it, the pins in order)."""
    text = path.read_text(encoding="utf-8")
    command = re.search(r"^#\s+(uv pip compile .*)$", text, re.M)
    assert command, f"{path.name}: no generating command in its header"
    pins: list[Pin] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("# This file") or line.startswith("#    uv "):
            continue
        if m := re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line):
            marker = Marker(m.group(3)) if m.group(3) else None
            pins.append(Pin(canonicalize_name(m.group(1)), m.group(2), marker))
        elif m := re.match(r"^--hash=sha256:([0-9a-f]{64})\s*\\?$", line):
            pins[-1].hashes.append(m.group(1))
        elif line.startswith("#"):
            via = line.lstrip("#").strip().removeprefix("via").strip()
            if via:
                pins[-1].via.append(via)
        else:
            raise AssertionError(f"{path.name}: unexpected line {raw!r}")
    return command.group(1), pins


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _dependencies() -> list[Requirement]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(r) for r in project["dependencies"]]


def test_every_locked_package_is_pinned_with_hashes() -> None:
    for path in (RUNTIME_LOCK, BUILD_LOCK):
        command, pins = parse_lock(path)
        assert "--generate-hashes" in command and "--python-version 3.11" in command
        assert pins, path.name
        for pin in pins:
            assert pin.hashes, f"{path.name}: {pin.name} has no hash"
        names = [p.name for p in pins if p.applies_here()]
        assert len(names) == len(set(names)), f"{path.name}: a package pinned twice"


def test_the_runtime_lock_is_in_step_with_pyproject() -> None:
    command, pins = parse_lock(RUNTIME_LOCK)
    assert command.startswith("uv pip compile pyproject.toml ")
    locked = {p.name: p for p in pins if p.applies_here()}
    direct = {p.name for p in pins if f"{PROJECT} (pyproject.toml)" in p.via}
    dependencies = _dependencies()
    assert direct == {canonicalize_name(r.name) for r in dependencies}, (
        "pyproject.toml's dependencies changed: regenerate deploy/requirements.lock"
    )
    for requirement in dependencies:
        pin = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{pin.name}=={pin.version} does not satisfy {requirement}"
        )
        for extra in requirement.extras:  # e.g. pyjwt[crypto] needs cryptography locked too
            for needed in metadata.requires(requirement.name) or []:
                dep = Requirement(needed)
                if dep.marker is not None and dep.marker.evaluate({"extra": extra}):
                    assert canonicalize_name(dep.name) in locked, f"{requirement}: {dep.name}"


def test_the_build_lock_has_the_build_backend() -> None:
    command, pins = parse_lock(BUILD_LOCK)
    assert "deploy/build-requirements.in" in command
    locked = {p.name: p.version for p in pins}
    build_system = _pyproject()["build-system"]
    assert isinstance(build_system, dict)
    wanted = [Requirement(r) for r in build_system["requires"]]
    listed = [Requirement(line) for line in BUILD_IN.read_text().splitlines() if line[:1].isalpha()]
    assert {str(r) for r in wanted} == {str(r) for r in listed}
    for requirement in wanted:
        assert requirement.specifier.contains(locked[canonicalize_name(requirement.name)])


def test_the_tests_run_on_the_locked_versions() -> None:
    """scripts/setup.sh installs with the lock as constraints: what is tested is what ships."""
    _, pins = parse_lock(RUNTIME_LOCK)
    differ = {}
    for pin in pins:
        if not pin.applies_here():
            continue
        installed = metadata.version(pin.name)
        if installed != pin.version:
            differ[pin.name] = (installed, pin.version)
    assert not differ, f"installed vs locked: {differ}; run `make setup`"


def test_the_dockerfile_installs_only_from_the_locks() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    installs = re.findall(r"pip install ([^\n\\&]*)", text)
    assert installs, "no pip install in the Dockerfile"
    for args in installs:
        assert "--no-deps" in args, f"`pip install {args}` could pull unpinned dependencies"
        if "-r " in args:
            assert "--require-hashes" in args
    assert "--require-hashes --no-deps -r deploy/requirements.lock" in text
    assert "--require-hashes --no-deps -r deploy/build.lock" in text
    assert "--no-build-isolation" in text, "the build backend comes from build.lock too"
    copies = re.findall(r"^COPY\s+(.*)$", text, re.M)
    assert not [c for c in copies if "tests" in c], "tests are not copied into the image"
    runtime = text.split("AS runtime", 1)[1]
    assert re.findall(r"^COPY\s+(.*)$", runtime, re.M) == ["--from=build /opt/venv /opt/venv"]
    assert re.search(r"^ARG PYTHON_IMAGE=", text, re.M)
    assert re.findall(r"^FROM\s+(\S+)", text, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_the_wheel_the_image_installs_ships_no_tests(tmp_path: Path) -> None:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "--quiet", "--wheel-dir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "/tests/" in n or n.endswith("conftest.py")], "tests shipped"
    for needed in (
        "libs/common/settings.py",
        "ce/cli.py",
        "services/claims/evidence.py",
        "services/claims/migrations/env.py",
        "services/claims/rulesets/2026.json",
    ):
        assert needed in names, needed
    assert any(n.startswith("services/claims/migrations/versions/") for n in names)
