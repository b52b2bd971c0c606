"""``make test`` installs Debian's Chromium (and nginx) for the tests when missing, and fails
loudly when it cannot (scripts/ensure-test-tools.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ensure-test-tools.sh"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.subprocess
def test_a_present_browser_is_left_alone(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    result = run({**os.environ, "CE_CHROMIUM": str(browser)})
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.subprocess
def test_a_missing_browser_that_cannot_be_installed_fails_loudly(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with the shell's tools but no apt-get and no sudo
    bin_dir.mkdir()
    for tool in ("id", "env"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "CE_CHROMIUM": str(tmp_path / "missing" / "chromium")}
    result = run(env)
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "chromium" in result.stderr
