"""Operator commands that say what they did (issue 21, item 4), through the real CLI: one
form of id everywhere, nothing on record said so, failures in one line without a traceback,
a review decision only where one is awaited, and the terminal's blocked notice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bot.conversation import Actor, ConversationKey, EndReason, LadderState
from bot.settings import parse_database_url
from bot.store import open_store
from tests.fakes.anthropic import FakeAnthropic, text
from tests.processes import clean_env, free_port, quitbot
from tests.test_ops_cli import ended_by_model, give_feedback

ENDED = LadderState(ended=True, ended_by=Actor.MODEL, ended_reason=EndReason.PERSISTENT_ABUSE)


def one_plain_line(err: str) -> str:
    assert "Traceback" not in err, err
    [line] = err.strip().splitlines()
    return line


async def test_a_person_is_named_one_way(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_DATABASE_URL=database_url)
    await ended_by_model(tmp_path, fake_anthropic, env)

    for verb in ("forget", "export"):
        code, out, err = await quitbot(tmp_path, env, "users", verb, "slak:U0ABUSER")
        assert (code, out) == (1, "")
        assert "there is no platform 'slak'" in one_plain_line(err)

    code, out, err = await quitbot(tmp_path, env, "users", "export", "Console:console-user")
    exported = json.loads(out)
    assert code == 0 and err == "" and exported["platform"] == "console"
    assert len(exported["conversations_started"]) == 1

    code, out, err = await quitbot(tmp_path, env, "users", "export", "console:nobody")
    assert code == 0 and json.loads(out)["conversations_started"] == []
    assert one_plain_line(err) == "quitbot: nothing is on record for console:nobody"

    code, out, err = await quitbot(tmp_path, env, "users", "forget", "console:nobody")
    assert (code, out) == (1, "")
    assert "nothing is on record for console:nobody; nothing was deleted" in one_plain_line(err)

    code, out, err = await quitbot(tmp_path, env, "users", "forget", "CONSOLE:console-user")
    assert code == 0 and out.startswith("Forgot console:console-user: deleted "), err


async def test_failures_are_one_line_and_not_zero(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(tmp_path, fake_anthropic)
    await quitbot(tmp_path, env, "conversations", "list")  # the database exists
    code, _, err = await quitbot(tmp_path, env, "db", "backup", str(tmp_path / "no" / "x.db"))
    assert code != 0 and "cannot create" in one_plain_line(err)

    closed = f"http://127.0.0.1:{free_port()}"
    discord = {"DISCORD_TOKEN": "t", "QUITBOT_DISCORD_API_BASE": f"{closed}/api/v10"}
    code, out, err = await quitbot(tmp_path, env | discord, "discord", "invite-url")
    assert (code, out) == (1, "")
    assert one_plain_line(err).startswith("quitbot: could not reach Discord")

    unreachable = env | {"ANTHROPIC_BASE_URL": closed}
    code, out, err = await quitbot(tmp_path, unreachable, "chat", stdin="hello\n")
    assert "[model_unavailable]" in out
    assert "could not connect to the Anthropic API" in one_plain_line(err)
    code, out, err = await quitbot(tmp_path, unreachable, "doctor")
    assert code == 1 and "FAIL model API: could not connect to the Anthropic API" in out
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


async def test_a_community_is_named_one_way(tmp_path: Path, database_url: str) -> None:
    env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=database_url)
    code, _, err = await quitbot(
        tmp_path, env, "communities", "set", "Slack:T0FAKE", "--redirects-before-end", "4"
    )
    assert code == 0, err
    code, out, err = await quitbot(tmp_path, env, "communities", "show", "T0FAKE", "--json")
    assert code == 0 and [(c["platform"], c["community"]) for c in json.loads(out)] == [
        ("slack", "T0FAKE")
    ]
    code, out, _ = await quitbot(tmp_path, env, "communities", "show", "slack:TNONE")
    assert code == 0 and out.startswith("slack:TNONE has no settings of its own")
    assert "1 other communities have their own" in out

    code, out, err = await quitbot(tmp_path, env, "communities", "show", "TNONE")
    assert (code, out) == (1, "")
    assert "names no platform: write console:TNONE or discord:TNONE or slack:TNONE" in err
    code, _, err = await quitbot(tmp_path, env, "communities", "reset", "slak:T0FAKE")
    assert code == 1 and "there is no platform 'slak'" in one_plain_line(err)

    # One flagged end in that workspace, as the Slack adapter keeps it.
    store = await open_store(parse_database_url(database_url))
    try:
        at = datetime.now(UTC)
        made = await store.create(
            ConversationKey("slack", "C1:1.1"), "console-user", at, community="T0FAKE"
        )  # whose feedback give_feedback stores: only the starter's waits
        await store.commit_turn(made.id, ENDED, at)
    finally:
        await store.close()
    await give_feedback(env, made.id, "a mistake")
    for community in ("slack:T0FAKE", "SLACK:T0FAKE", "T0FAKE"):
        code, out, err = await quitbot(
            tmp_path, env, "review", "list", "--json", "--community", community
        )
        assert code == 0 and [item["id"] for item in json.loads(out)] == [made.id], err
    code, out, err = await quitbot(
        tmp_path, env, "review", "list", "--platform", "discord", "--community", "slack:T0FAKE"
    )
    assert code == 1 and "is not on --platform discord" in one_plain_line(err)

    code, out, _ = await quitbot(
        tmp_path, env, "review", "resolve", made.id, "--reopen", "--note", "fine"
    )
    assert code == 0 and "On Slack quitbot answers in its thread again" in out
    assert "Discord" not in out


async def test_uphold_needs_someone_to_have_called_it_a_mistake(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_DATABASE_URL=database_url)
    conversation_id = await ended_by_model(tmp_path, fake_anthropic, env)
    uphold = ("review", "resolve", conversation_id, "--uphold", "--note", "stands")
    code, out, err = await quitbot(tmp_path, env, *uphold)
    assert (code, out) == (1, "")
    assert "nobody has called the end" in one_plain_line(err)
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", conversation_id, "--json")
    assert "review" not in [event["kind"] for event in json.loads(out)["events"]]

    await give_feedback(env, conversation_id, "a mistake")
    code, out, err = await quitbot(tmp_path, env, *uphold)
    assert code == 0 and "upheld" in out, err
    code, out, err = await quitbot(tmp_path, env, *uphold)  # decided: nothing awaits
    assert code == 1 and "nothing to uphold" in err

    code, out, _ = await quitbot(
        tmp_path, env, "review", "resolve", conversation_id, "--reopen", "--note", "fine"
    )
    assert code == 0 and f"quitbot chat --resume {conversation_id}" in out
    assert "Discord" not in out


async def test_the_terminal_says_blocked_each_time(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(tmp_path, fake_anthropic)
    fake_anthropic.add(text("Hi!"))
    lines = "hello\n/end\nyes\nstill there?\nhello?\n"
    code, out, err = await quitbot(tmp_path, env, "chat", stdin=lines)
    assert code == 0, err
    assert out.count("[blocked]") == 2
    code, out, _ = await quitbot(tmp_path, env, "conversations", "list", "--json")
    [listed] = json.loads(out)
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", listed["id"], "--json")
    [end] = [e for e in json.loads(out)["events"] if e["kind"] == "end"]
    assert end["detail"]["via"] == "command"
