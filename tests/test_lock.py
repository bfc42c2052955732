"""The lock (requirements/*.txt, made by requirements/lock) is what every install uses, and
what this environment holds: a newer release never arrives unannounced."""

from __future__ import annotations

import os
import re
import sysconfig
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements"
README = (ROOT / "README.md").read_text()


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    text = path.read_text()
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", text, re.MULTILINE)
    return {_key(name): version for name, version in found}


def hashed_pins(path: Path) -> set[str]:
    text = path.read_text()
    return {
        _key(m) for m in re.findall(r"^([A-Za-z0-9._-]+)==\S+ \\\n\s+--hash=sha256:", text, re.M)
    }


def test_every_pin_is_exact_and_hashed() -> None:
    for name in ("all.txt", "dev.txt"):
        assert pins(LOCK / name), name
        assert hashed_pins(LOCK / name) == set(pins(LOCK / name)), name


def test_the_dev_lock_holds_the_runtime_lock_at_the_same_versions() -> None:
    runtime, dev = pins(LOCK / "all.txt"), pins(LOCK / "dev.txt")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_the_lock_satisfies_the_ranges_in_pyproject() -> None:
    """pyproject.toml keeps ranges (for library users); a range changed without
    `requirements/lock` shows here."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    wanted = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        wanted += [r for r in requirements if not r.startswith("quitbot[")]
        assert extra in {"discord", "slack", "postgres", "dashboard", "all", "dev"}, extra
    wanted += pyproject["build-system"]["requires"]
    locked = pins(LOCK / "dev.txt")
    for line in wanted:
        requirement = Requirement(line)
        version = locked.get(_key(requirement.name))
        assert version is not None, f"{requirement.name} is not in the lock"
        assert requirement.specifier.contains(version), f"{requirement.name}=={version} vs {line}"


@pytest.mark.skipif(
    os.environ.get("QUITBOT_TEST_UNLOCKED") == "1",
    reason="requirements/test-unlocked runs the suite beyond the lock on purpose",
)
def test_this_environment_is_exactly_the_lock() -> None:
    locked = pins(LOCK / "dev.txt")
    # What is installed in this environment's site-packages, not whatever sys.path holds now:
    # importing setuptools (as a test of the package list does) puts its vendored
    # distributions on sys.path, and they are not installed.
    where = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {_key(d.metadata["Name"]): d.version for d in distributions(path=where)}
    installed.pop("quitbot", None)
    different = {
        name: (version, locked.get(name, "not in the lock"))
        for name, version in installed.items()
        if locked.get(name) != version
    }
    assert not different, (
        f"installed (version, lock) where they differ: {different}. Install with the "
        "README's test command, or move the lock on purpose with requirements/lock."
    )


def test_every_install_uses_the_lock() -> None:
    run_install = (
        "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements/all.txt"
        " && .venv/bin/pip install --no-deps --no-build-isolation . &&"
    )
    test_install = (
        "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements/dev.txt"
        " && .venv/bin/pip install --no-deps --no-build-isolation -e . && .venv/bin/pytest"
    )
    assert run_install in README and test_install in README
    assert test_install in (ROOT / ".ci" / "run").read_text()
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements/all.txt" in dockerfile
    assert "FROM python:3.11-slim" in dockerfile and "python:3.12" not in dockerfile
    assert "dockerfile: deploy/Dockerfile" in (ROOT / "deploy" / "compose.yml").read_text()
    unit = (ROOT / "deploy" / "quitbot.service").read_text()
    assert "--require-hashes -r /path/to/quitbot/requirements/all.txt" in unit
