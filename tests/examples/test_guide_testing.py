"""The guide's "Test your bot without tokens": its test files run as a person's would (their
own pytest process, the fakes from the installed `quitbot.testing`), and the guide shows
those files' code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples.receiver import EXAMPLES
from tests.processes import clean_env

OFFLINE = [EXAMPLES / "test_roll_bot_offline.py", EXAMPLES / "test_bolt_app_offline.py"]
GUIDE = EXAMPLES.parent / "docs" / "build-on-quitbot.md"


def section() -> str:
    guide = GUIDE.read_text()
    start = guide.index("## 10. Test your bot without tokens")
    end = guide.find("\n## ", start + 1)
    return guide[start : end if end > 0 else None]


@pytest.mark.parametrize("test_file", OFFLINE, ids=lambda path: path.name)
def test_the_guides_test_file_passes(tmp_path: Path, test_file: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLES.parent,
        env=clean_env(tmp_path, None),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


@pytest.mark.parametrize("test_file", OFFLINE, ids=lambda path: path.name)
def test_the_guide_shows_the_test_files_code(test_file: Path) -> None:
    shown = [block.split("```", 1)[0].strip() for block in section().split("```python\n")[1:]]
    assert test_file.read_text().split('"""\n\n', 1)[1].strip() in shown
    assert f"[`examples/{test_file.name}`](../examples/{test_file.name})" in section()
