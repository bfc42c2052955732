"""The public API snapshot, and the promise that `quitbot` works beside a project's own
`bot.py`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import quitbot
from tests.quitbot.api import surface

SNAPSHOT = Path(__file__).with_name("api.txt")


def test_the_public_api_matches_its_snapshot() -> None:
    # On purpose a failing test: a name gone or a signature changed breaks people's bots.
    # If the change is meant, regenerate api.txt (see tests/quitbot/api.py), say so in
    # CHANGELOG.md and pick the version semantic versioning calls for.
    assert surface().splitlines() == SNAPSHOT.read_text().splitlines()


def test_every_exported_name_exists_and_is_typed() -> None:
    assert all(hasattr(quitbot, name) for name in quitbot.__all__)
    assert (Path(quitbot.__file__).parent / "py.typed").exists()


def _run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_projects_own_bot_py_does_not_shadow_quitbot(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text("raise SystemExit('the project bot.py was imported')\n")
    (tmp_path / "platforms.py").write_text("raise SystemExit('platforms.py was imported')\n")
    (tmp_path / "main.py").write_text(
        textwrap.dedent(
            """
            import quitbot
            from quitbot import ToolRegistry, main
            import bot.usertools
            print("ok", quitbot.Tool.__module__, bot.usertools.__file__)
            """
        )
    )
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok bot.usertools")
    assert str(tmp_path) not in result.stdout


def test_a_bot_module_imported_first_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text("")
    (tmp_path / "main.py").write_text("import bot\nimport quitbot\n")
    result = _run(tmp_path)
    assert result.returncode == 1
    assert "quitbot._home.ShadowedCore: a module named 'bot' was imported from" in result.stderr
    assert "rename your module (e.g. bot.py -> my_bot.py)" in result.stderr


def test_a_name_from_your_own_bot_py_imported_after_quitbot_says_why(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text("class GameNightBot: ...\n")
    (tmp_path / "main.py").write_text(
        textwrap.dedent(
            """
            import unittest.mock

            import quitbot
            import bot
            assert not hasattr(bot, "__wrapped__")  # private names: AttributeError as usual
            with unittest.mock.patch("bot.dashboard.__doc__", "patched"):  # not imported yet
                pass
            from platforms import discord  # the core's own subpackages still import
            from bot import GameNightBot
            """
        )
    )
    result = _run(tmp_path)
    assert result.returncode == 1
    [last] = result.stderr.strip().splitlines()[-1:]
    assert last.startswith("ImportError: 'GameNightBot' is not in quitbot's core package 'bot'")
    assert "not your bot.py. Give your module another name" in last


def test_importing_quitbot_loads_no_platform_sdk_nor_the_claude_sdk(tmp_path: Path) -> None:
    # The API must stay cheap to import, e.g. for a tool package's own tests; a platform's
    # module (`quitbot.slack`) loads its SDK on first use.
    (tmp_path / "main.py").write_text(
        "import sys, quitbot\n"
        "from quitbot import *\n"
        "print(sorted(m for m in ('anthropic', 'discord', 'slack_bolt', 'slack_sdk') "
        "if m in sys.modules))\n"
        "print(quitbot.slack.register.__name__, 'slack_bolt' in sys.modules)\n"
    )
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "register True"]


def test_quitbot_discord_without_discord_py_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "import sys\n"
        "sys.modules['discord'] = None  # as if discord.py were not installed\n"
        "import quitbot\n"
        "quitbot.discord\n"
    )
    result = _run(tmp_path)
    assert result.returncode == 1
    assert "quitbot.discord needs discord.py: pip install 'quitbot[discord]'" in result.stderr
