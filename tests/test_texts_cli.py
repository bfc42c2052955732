"""The operator's texts through the real command: `quitbot texts` prints a file to start
from, and `run`, `chat` and `doctor` refuse a bad one at start-up in one line, exit 2."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bot.texts import TEXTS
from tests.fakes.anthropic import FakeAnthropic, text
from tests.processes import clean_env, quitbot

BAD = [
    ('warning = "Careful, {name}."\n', "warning: unknown placeholder {name}"),
    ('too_long = "At most {}."\n', "too_long: positional {} is not allowed"),
    ('too_long = "At most {limit.real}."\n', "too_long: {limit.real} reaches into a value"),
    ('too_long = "At most {limit[0]}."\n', "too_long: {limit[0]} reaches into a value"),
    ('warning = "Careful {"\n', "warning: malformed braces"),
    ('warning = ""\n', "warning: must not be empty"),
    ('warnin = "Careful."\n', "warnin: there is no text by that name"),
    (f'[discord]\nbutton_new = "{"x" * 81}"\n', "discord.button_new: is 81 characters"),
    (f'[slack]\nbutton_keep = "{"x" * 76}"\n', "slack.button_keep: is 76 characters"),
    ("warning = \n", "is not valid TOML"),
]


@pytest.mark.parametrize(("content", "says"), BAD)
async def test_a_bad_texts_file_stops_run_in_one_line_with_exit_2(
    tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "texts.toml"
    path.write_text(content, encoding="utf-8")
    env = clean_env(tmp_path, None, QUITBOT_TEXTS=str(path))
    code, out, err = await quitbot(tmp_path, env, "run")
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"quitbot: QUITBOT_TEXTS: {path}: ") and says in line


@pytest.mark.parametrize("command", [("chat",), ("doctor",)])
async def test_chat_and_doctor_check_the_texts_too(tmp_path: Path, command: tuple[str]) -> None:
    path = tmp_path / "texts.toml"
    path.write_text('blocked = "Closed, {who}."\n', encoding="utf-8")
    env = clean_env(tmp_path, None, QUITBOT_TEXTS=str(path))
    code, _, err = await quitbot(tmp_path, env, *command)
    assert code == 2
    assert err.splitlines() == [
        f"quitbot: QUITBOT_TEXTS: {path}: blocked: unknown placeholder {{who}} (this text has: "
        "none)"
    ]


async def test_a_missing_texts_file_is_named(tmp_path: Path) -> None:
    env = clean_env(tmp_path, None, QUITBOT_TEXTS=str(tmp_path / "nowhere.toml"))
    code, _, err = await quitbot(tmp_path, env, "run")
    assert code == 2 and len(err.splitlines()) == 1 and "nowhere.toml: cannot be read" in err


async def test_quitbot_texts_prints_every_key_as_a_file_to_edit(tmp_path: Path) -> None:
    # Even with a broken texts file set: the defaults are what you start from.
    env = clean_env(tmp_path, None, QUITBOT_TEXTS=str(tmp_path / "nowhere.toml"))
    code, out, err = await quitbot(tmp_path, env, "texts")
    assert code == 0 and err == ""
    sections = {"refused": {}, "discord": {}, "slack": {}, "console": {}}
    assert tomllib.loads(out) == sections  # as printed it changes nothing
    for key, words in TEXTS.items():
        assert f"{key.value.rpartition('.')[2]} = " in out and words.about in out


async def test_overridden_words_show_in_the_terminal(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    path = tmp_path / "texts.toml"
    path.write_text(
        'keep_going = "Right, carrying on."\n'
        'console.confirm_hint = "Say yes if you mean it."\n'
        'console.unknown_command = "No such command: {command}."\n',
        encoding="utf-8",
    )
    fake_anthropic.add(text("Hello!"))
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_TEXTS=str(path))
    code, out, err = await quitbot(tmp_path, env, "chat", stdin="hi\n/end\nno\n/what\n")
    assert code == 0, err
    assert "Right, carrying on." in out and "Okay, the conversation goes on." not in out
    assert "Say yes if you mean it." in out and "Type yes to confirm." not in out
    assert "No such command: /what. Commands: /new" in out


async def test_an_operator_sets_a_community_s_texts_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "texts.toml"
    path.write_text('blocked = "Closed."\n', encoding="utf-8")
    env = clean_env(tmp_path, None, QUITBOT_TEXTS=str(path))
    setting = ("communities", "set", "discord:1234")
    code, _, err = await quitbot(tmp_path, env, *setting, "--text", "warning=Careful, {who}.")
    assert code == 1 and err.count("\n") == 1 and "warning: unknown placeholder {who}" in err
    code, _, err = await quitbot(tmp_path, env, *setting, "--text", "warning")
    assert code == 2 and "write KEY=WORDS" in err
    code, _, err = await quitbot(
        tmp_path, env, *setting, "--text", "warning=Careful.", "--text", "discord.button_new=Again"
    )
    assert code == 0, err
    code, out, _ = await quitbot(tmp_path, env, "communities", "show", "--json")
    [shown] = json.loads(out)
    assert shown["own"]["texts"] == {"warning": "Careful.", "discord.button_new": "Again"}
    assert shown["effective"]["texts"] == {
        "blocked": "Closed.",
        "warning": "Careful.",
        "discord.button_new": "Again",
    }


async def test_doctor_says_whose_words_the_bot_speaks(tmp_path: Path) -> None:
    path = tmp_path / "texts.toml"
    path.write_text('blocked = "Closed."\nwarning = "Careful."\n', encoding="utf-8")
    _, out, _ = await quitbot(tmp_path, clean_env(tmp_path, None), "doctor")
    assert "texts: the bot's own words (QUITBOT_TEXTS not set)" in out
    env = clean_env(tmp_path, None, QUITBOT_TEXTS=str(path))
    _, out, _ = await quitbot(tmp_path, env, "doctor")
    assert f"texts: 2 of your own from {path}" in out
