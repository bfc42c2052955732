"""The guide's "Test your bot without tokens": its test file runs as a person's would (its
own pytest process, the fakes from the installed `quitbot.testing`), and the guide shows
that file's code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.examples.receiver import EXAMPLES
from tests.processes import clean_env

OFFLINE = EXAMPLES / "test_roll_bot_offline.py"
GUIDE = EXAMPLES.parent / "docs" / "build-on-quitbot.md"


def test_the_guides_test_file_passes(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(OFFLINE), "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLES.parent,
        env=clean_env(tmp_path, None),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


def test_the_guide_shows_the_test_files_code() -> None:
    guide = GUIDE.read_text()
    section = guide[guide.index("## 10. Test your bot without tokens") :]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = OFFLINE.read_text()
    assert shown.strip() == code.split('"""\n\n', 1)[1].strip()
