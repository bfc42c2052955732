"""The fakes ship as `quitbot.testing`: installed with quitbot, usable without pytest, and
still reachable under their old names `tests.fakes.*` as the very same modules."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

import quitbot.testing
from tests import fakes

ROOT = Path(__file__).resolve().parents[2]
MODULES = fakes.__all__


def test_the_fakes_import_no_pytest() -> None:
    imports = "; ".join(f"import quitbot.testing.{name}" for name in MODULES)
    check = f"import sys; {imports}; print(sorted(m for m in sys.modules if 'pytest' in m))"
    run = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert run.stdout.strip() == "[]"


def test_a_non_editable_install_ships_them() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "quitbot.testing" in find_packages(str(ROOT), include=include)


@pytest.mark.parametrize("name", MODULES)
def test_the_old_name_is_the_same_module(name: str) -> None:
    moved = getattr(quitbot.testing, name)
    assert sys.modules[f"tests.fakes.{name}"] is moved
    assert getattr(fakes, name) is moved


def test_patching_the_old_name_patches_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fakes.discord, "WAIT_SECONDS", 123.0)
    assert quitbot.testing.discord.WAIT_SECONDS == 123.0
