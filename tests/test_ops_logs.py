"""Logs as an operator reads them: real `quitbot` processes at DEBUG, secrets never shown,
message text only at DEBUG, the conversation id on every line about a conversation."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.anthropic import FakeAnthropic, error, stream_error, text, tool
from tests.processes import clean_env, quitbot, reaching_discord

API_KEY = "sk-ant-api03-Secret-Key-0123456789abcdef"
WRONG_KEY = "sk-ant-api03-Wrong-Key-fedcba9876543210"
SECRETS = {
    "DISCORD_TOKEN": "MTIz.discord-token-secret.abcdefghijklmnop",
    "SLACK_BOT_TOKEN": "xoxb-1234-5678-slack-bot-secret",
    "SLACK_APP_TOKEN": "xapp-1-A123-slack-app-secret",
    "SLACK_SIGNING_SECRET": "0123456789abcdef-signing-secret",
}
ABUSE = {"kind": "abuse", "note": "insults"}
END = {"reason": "persistent_abuse", "explanation": "kept insulting after the warning"}


def env_with_secrets(tmp_path: Path, fake: FakeAnthropic, key: str, **extra: str) -> dict[str, str]:
    env = clean_env(tmp_path, fake, **SECRETS, **extra)
    env["ANTHROPIC_API_KEY"] = key
    return env


async def test_no_secret_ever_reaches_the_logs_even_at_debug(tmp_path: Path) -> None:
    async with FakeAnthropic(api_key=API_KEY) as fake:
        debug = {"QUITBOT_LOG_LEVEL": "DEBUG"}
        # A whole conversation, to its end.
        fake.add(text("Hi! How can I help?"))
        for _ in range(3):
            fake.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("Go on."))
        fake.add(tool("end_conversation", END))
        lines = ["hello", *["you are useless garbage"] * 4, "hello?"]
        env = env_with_secrets(tmp_path, fake, API_KEY, **debug)
        code, out, conversation_log = await quitbot(
            tmp_path, env, "chat", stdin="\n".join(lines) + "\n"
        )
        assert code == 0 and "[end]" in out, conversation_log
        # An authentication failure: the wrong key is refused.
        env = env_with_secrets(tmp_path, fake, WRONG_KEY, **debug)
        code, out, auth_log = await quitbot(tmp_path, env, "chat", stdin="hello\n")
        assert "[model_unavailable]" in out, auth_log
        # Model errors, one of which echoes the key back in its message, and one a token
        # the model client knows nothing of (a proxy in between could say anything).
        fake.add(error(400, message=f"bad request from key {API_KEY}"))
        fake.add(error(400, message=f"odd header {SECRETS['DISCORD_TOKEN']}"))
        fake.add(stream_error("half a rep"))
        env = env_with_secrets(tmp_path, fake, API_KEY, **debug)
        code, out, error_log = await quitbot(tmp_path, env, "chat", stdin="1\n2\n3\n")
        assert out.count("[model_unavailable]") == 3, error_log
        assert fake.unexpected == []

    logs = conversation_log + auth_log + error_log
    assert "DEBUG" in logs and "you are useless garbage" in logs  # DEBUG really was on
    for secret in [API_KEY, WRONG_KEY, *SECRETS.values()]:
        assert secret not in logs
    assert "[redacted]" in error_log


async def test_message_text_stays_out_of_logs_above_debug(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("Go on."))
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_LOG_LEVEL="INFO")
    code, out, err = await quitbot(tmp_path, env, "chat", stdin="a very private sentence\n")
    assert code == 0 and "keep it civil" in out
    assert "redirect by model" in err  # the bot does log at INFO, just not what people wrote
    assert "a very private sentence" not in err and "keep it civil" not in err
    assert "insults" not in err  # the model's note is the record's, not the log's


async def test_json_lines_carry_the_conversation_id(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("Go on."))
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_LOG_FORMAT="json", QUITBOT_LOG_LEVEL="DEBUG")
    code, _, err = await quitbot(tmp_path, env, "chat", stdin="you are useless\n")
    assert code == 0, err
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]
    about = [e for e in entries if e["logger"] == "bot.engine"]
    assert about, entries
    ids = {e.get("conversation_id") for e in about}
    assert len(ids) == 1 and None not in ids
    [conversation_id] = ids
    assert str(conversation_id).startswith("c")
    assert any(e["message"].startswith("redirect by model") for e in about)


async def test_run_at_debug_with_both_platforms_never_logs_a_token(tmp_path: Path) -> None:
    import signal

    from tests.fakes.discord import FakeDiscord
    from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
    from tests.processes import start_quitbot

    async with (
        FakeAnthropic(api_key=API_KEY) as fake,
        FakeDiscord() as discord,
        FakeSlack() as slack,
    ):
        env = clean_env(
            tmp_path,
            fake,
            QUITBOT_LOG_LEVEL="DEBUG",
            **reaching_discord(discord),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN=APP_TOKEN,
            QUITBOT_SLACK_API_URL=slack.base_url,
        )
        env["ANTHROPIC_API_KEY"] = API_KEY
        process = await start_quitbot(tmp_path, env, "run")
        try:
            await discord.wait_until(lambda: discord.guild_creates == 1)
            await slack.wait_socket_open()
            fake.add(text("Hello from a real process."))
            opening = await discord.post(
                discord.channel_id, discord.alice, f"<@{discord.bot_id}> hi", mention_bot=True
            )
            await discord.wait_until(
                lambda: any(
                    m["content"] == "Hello from a real process."
                    for m in discord.messages.values()
                    if m["channel_id"] == opening["id"]
                )
            )
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await process.communicate()
    logs = err.decode()
    assert process.returncode == 0, logs
    assert "DEBUG" in logs
    for secret in (API_KEY, discord.token, BOT_TOKEN, APP_TOKEN):
        assert secret not in logs, secret


async def test_the_terminal_chat_keeps_info_lines_off_the_conversation_unless_asked(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("Go on."))
    env = clean_env(tmp_path, fake_anthropic)
    env.pop("QUITBOT_LOG_LEVEL", None)
    code, out, err = await quitbot(tmp_path, env, "chat", stdin="you are useless\n")
    assert code == 0 and "keep it civil" in out
    assert "redirect by model" not in err
