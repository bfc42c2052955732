"""The examples, run as a developer runs them, against the fake Claude API.

The tool package is installed the way a user installs it (pip builds it and writes its
entry point), but into a throw-away directory put on the example run's PYTHONPATH: the
shared .venv stays exactly the lock (tests/test_lock.py), and nothing is left behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic import FakeAnthropic, text, tool
from tests.processes import clean_env, quitbot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _tool_results(fake: FakeAnthropic, request: int) -> list[dict[str, Any]]:
    content = fake.requests[request]["messages"][-1]["content"]
    return [b for b in content if b.get("type") == "tool_result"]


async def test_the_community_assistant_answers_from_its_faq(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.add(
        tool("faq", {"topic": "rules"}),
        text("Be kind and stay on topic."),
        tool("faq", {"topic": "parking"}),
        text("I don't know about parking, sorry."),
    )
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_TOOLS="faq")
    script = EXAMPLES / "community_assistant" / "bot.py"
    stdin = "What are the rules?\nWhere do I park?\n"
    code, out, err = await quitbot(tmp_path, env, "chat", stdin=stdin, script=script)

    assert code == 0, err

    assert "Be kind and stay on topic." in out and "I don't know about parking" in out
    offered = {t["name"]: t for t in fake_anthropic.requests[0]["tools"]}
    assert "rules, events, roles" in json.dumps(offered["faq"]["input_schema"])
    [answer] = _tool_results(fake_anthropic, 1)
    assert answer["content"].startswith("Be kind, stay on topic, no spam.")
    assert "is_error" not in answer
    [unknown] = _tool_results(fake_anthropic, 3)
    assert unknown["is_error"] is True and "no entry 'parking'" in unknown["content"]


@pytest.fixture(scope="module")
def tool_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example tool package, pip-installed into a directory of its own."""
    source = tmp_path_factory.mktemp("source") / "tool_package"
    # Built from a copy: a build writes build/ and *.egg-info beside the sources.
    shutil.copytree(EXAMPLES / "tool_package", source)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


async def test_an_installed_tool_package_registers_itself_through_its_entry_point(
    tmp_path: Path, fake_anthropic: FakeAnthropic, tool_package: Path
) -> None:
    fake_anthropic.add(
        tool("service_status", {"name": "game-server"}), text("The game server is down.")
    )
    env = clean_env(
        tmp_path, fake_anthropic, QUITBOT_TOOLS="service_status", PYTHONPATH=str(tool_package)
    )
    code, out, err = await quitbot(tmp_path, env, "chat", stdin="Is the game server up?\n")

    assert code == 0, err
    assert "The game server is down." in out
    assert [t["name"] for t in fake_anthropic.requests[0]["tools"]][-1] == "service_status"
    [result] = _tool_results(fake_anthropic, 1)
    assert json.loads(result["content"]) == {
        "service": "game-server",
        "status": "down for maintenance until 20:00 UTC",
        "asked_by": "console-user",
    }


async def test_without_the_package_its_tool_is_unknown(tmp_path: Path) -> None:
    env = clean_env(tmp_path, None, QUITBOT_TOOLS="service_status")
    code, _, err = await quitbot(tmp_path, env, "conversations", "list")
    assert code == 2 and "no tool named 'service_status' is installed" in err


async def test_the_guides_code_runs(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    guide = (EXAMPLES.parent / "docs" / "build-on-quitbot.md").read_text()
    section = guide[guide.index("## 5. Driving conversations from code") :]
    code_block = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "drive.py"
    script.write_text(code_block)
    fake_anthropic.add(text("Hello there!"))
    code, out, err = await quitbot(tmp_path, clean_env(tmp_path, fake_anthropic), script=script)
    assert code == 0, err
    assert out == "Hello there!\nFalse []\n"
