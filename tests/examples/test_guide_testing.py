"""The guide's "Test your bot without tokens": its test files run as a person's would (their
own pytest process, the fakes from the installed `quitbot.testing`), and the guide shows
those files' code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import quitbot
from tests.examples.receiver import EXAMPLES
from tests.processes import clean_env
from tests.test_lock import pins

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


def test_the_guide_says_how_to_install_the_test_tools() -> None:
    guide = GUIDE.read_text()
    install = guide[guide.index("## 1. Install") : guide.index("## 2. ")]
    assert "pip install --require-hashes -r /path/to/quitbot/requirements/dev.txt" in install
    locked = pins(EXAMPLES.parent / "requirements" / "dev.txt")
    assert {"pytest", "pytest-asyncio", "mypy"} <= set(locked)


def test_the_settings_the_guide_points_the_sdks_with_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    named = set(re.findall(r"\b(QUITBOT_[A-Z_]+)=", section()))
    assert named == {
        "QUITBOT_SLACK_API_URL",
        "QUITBOT_DISCORD_API_BASE",
        "QUITBOT_DISCORD_GATEWAY_URL",
    }
    monkeypatch.setenv("QUITBOT_SLACK_API_URL", "http://127.0.0.1:1/api/")
    monkeypatch.setenv("QUITBOT_DISCORD_API_BASE", "http://127.0.0.1:2/api/v10")
    monkeypatch.setenv("QUITBOT_DISCORD_GATEWAY_URL", "ws://127.0.0.1:3/gateway")
    settings = quitbot.load_settings(env_file=None)
    assert settings.slack.api_url == "http://127.0.0.1:1/api/"
    assert settings.discord.api_base == "http://127.0.0.1:2/api/v10"
    assert settings.discord.gateway_url == "ws://127.0.0.1:3/gateway"
