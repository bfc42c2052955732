"""`quitbot run` as an operator monitors it: the health endpoints of a real process."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import aiohttp

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.processes import (
    clean_env,
    free_port,
    reaching_slack_socket,
    running_quitbot,
    start_quitbot,
)


async def test_run_serves_health_and_metrics_and_logs_json(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    port = free_port()
    async with FakeSlack() as slack:
        env = clean_env(
            tmp_path,
            fake_anthropic,
            **reaching_slack_socket(slack),
            QUITBOT_HEALTH_PORT=str(port),
            QUITBOT_LOG_FORMAT="json",
        )
        async with running_quitbot(tmp_path, env, "health and metrics") as logged:
            await slack.wait_socket_open()
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/healthz") as response:
                    assert response.status == 200
                async with http.get(f"{base}/readyz") as response:
                    body = await response.json()
                    assert body["database"] is True and "slack" in body["platforms"]
                async with http.get(f"{base}/metrics") as response:
                    assert response.status == 200
                    assert "quitbot_model_tokens_total" in await response.text()
    lines = logged.lines
    assert logged.returncode == 0, logged.text
    for line in filter(str.strip, lines):
        entry = json.loads(line)
        assert {"at", "level", "logger", "message"} <= set(entry)
    assert any(f"127.0.0.1:{port}" in json.loads(line)["message"] for line in lines)


async def test_a_busy_health_port_stops_run_plainly(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeSlack() as slack:
            env = clean_env(
                tmp_path,
                fake_anthropic,
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_APP_TOKEN=APP_TOKEN,
                QUITBOT_SLACK_API_URL=slack.base_url,
                QUITBOT_HEALTH_PORT=str(port),
            )
            process = await start_quitbot(tmp_path, env, "run")
            _, err = await process.communicate()
    assert process.returncode == 1
    assert f"quitbot: cannot serve health and metrics on 127.0.0.1:{port}" in err.decode()
    assert "Traceback" not in err.decode()


async def test_run_purges_old_text_at_start_and_on_a_schedule(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.conversation import ConversationKey, LadderState
    from bot.ports import NewMessage
    from bot.settings import parse_database_url
    from bot.store import open_store

    env = clean_env(tmp_path, fake_anthropic, QUITBOT_RETENTION_DAYS="30")
    store = await open_store(parse_database_url(env["QUITBOT_DATABASE_URL"]))
    long_ago = datetime.now(UTC) - timedelta(days=31)
    try:
        conversation = await store.create(ConversationKey("slack", "C1:1"), "U1", long_ago)
        old = NewMessage("user", "from last season", [], long_ago, user_id="U1")
        await store.commit_turn(conversation.id, LadderState(), long_ago, [old])
    finally:
        await store.close()
    async with FakeSlack() as slack:
        env |= {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "QUITBOT_SLACK_API_URL": slack.base_url,
        }
        async with running_quitbot(tmp_path, env, "retention: emptied 1") as logged:
            pass
    assert logged.returncode == 0, logged.text
    store = await open_store(parse_database_url(env["QUITBOT_DATABASE_URL"]))
    try:
        [message] = await store.messages(conversation.id)
        assert message.text == "" and message.user_id == "U1"
    finally:
        await store.close()
