"""The core never knows a platform: nothing under bot/ imports discord, slack or platforms/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_MODULES = ("discord", "slack_bolt", "slack_sdk", "slack", "platforms")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_platform_import_in_core_source() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "bot").rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[0] in PLATFORM_MODULES
    ]
    assert offenders == []


def test_importing_every_core_module_loads_no_platform_sdk() -> None:
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "bot").rglob("*.py")
        if path.name != "__main__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PLATFORM_MODULES!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_no_module_name_of_a_platform_is_held_in_a_core_string() -> None:
    """Platforms are found through entry points, not `importlib` on names in strings."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "bot").rglob("*.py"))
        if "platforms." in path.read_text() or "import_module" in path.read_text()
    ]
    assert offenders == []


def test_the_installed_platforms_are_found_through_entry_points() -> None:
    from bot.adapters import adapters, chat_runner

    found = adapters()
    assert {"discord", "slack"} <= set(found)
    assert all(adapter.name == name for name, adapter in found.items())
    assert callable(chat_runner())
