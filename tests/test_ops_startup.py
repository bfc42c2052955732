"""Start-up as an operator meets it: settings in any written form, a missing --env-file,
doctor's verdict on `run`, and Slack's HTTP listener (issue 21, item 2)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.processes import (
    clean_env,
    free_port,
    quitbot,
    reaching_slack_http,
    read_until,
    running_quitbot,
    start_quitbot,
)


@pytest.mark.parametrize("written", ["U0123", "U0123, U0456", '["U0123","U0456"]'])
async def test_a_list_setting_in_any_usual_form(tmp_path: Path, written: str) -> None:
    env = clean_env(tmp_path, None, QUITBOT_SLACK_ADMIN_USER_IDS=written)
    code, out, err = await quitbot(tmp_path, env, "conversations", "list")
    assert (code, out.strip(), err) == (0, "No conversations.", "")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUITBOT_SLACK_ADMIN_USER_IDS", '["U0123"'),
        ("QUITBOT_SLACK_ADMIN_USER_IDS", '[{"id": "U0123"}]'),
        ("QUITBOT_DISCORD_SHARD_IDS", "[0,x"),
        ("QUITBOT_DISCORD_SHARD_IDS", "zero"),
    ],
)
async def test_a_bad_list_setting_is_one_line_and_exit_2(
    tmp_path: Path, name: str, value: str
) -> None:
    env = clean_env(tmp_path, None, QUITBOT_DISCORD_SHARD_COUNT="2", **{name: value})
    code, out, err = await quitbot(tmp_path, env, "conversations", "list")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == "quitbot: bad configuration:"
    [line] = err.splitlines()[1:]
    assert line.startswith(f"  {name}: ")
    assert "Traceback" not in err


async def test_stray_section_variables_do_not_crash(tmp_path: Path) -> None:
    env = clean_env(tmp_path, None, QUITBOT_SLACK="x", QUITBOT_DISCORD="{")
    code, _, err = await quitbot(tmp_path, env, "conversations", "list")
    assert code == 0 and err == ""


async def test_a_named_env_file_must_exist(tmp_path: Path) -> None:
    env = clean_env(tmp_path, None)
    missing = tmp_path / "missing.env"
    code, out, err = await quitbot(tmp_path, env, "--env-file", str(missing), "doctor")
    assert code == 2 and out == ""
    assert err.strip() == f"quitbot: --env-file {missing}: there is no such file"

    given = tmp_path / "given.env"
    given.write_text("QUITBOT_SLACK_ADMIN_USER_IDS=U0123\n")
    code, out, err = await quitbot(tmp_path, env, "--env-file", str(given), "conversations", "list")
    assert code == 0, err


async def test_doctor_says_run_will_refuse_without_a_platform(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(tmp_path, fake_anthropic)
    code, out, _ = await quitbot(tmp_path, env, "doctor")
    assert code == 1
    [verdict] = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert "`quitbot run` will refuse to start: no platform is configured" in verdict
    code, _, err = await quitbot(tmp_path, env, "run")
    assert code == 2 and "no platform is configured" in err


async def test_slack_http_listens_where_told_without_bolts_token_warning(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    port = free_port()
    async with FakeSlack() as slack:
        http = reaching_slack_http(slack, port) | {"QUITBOT_SLACK_HTTP_HOST": "127.0.0.1"}
        env = clean_env(tmp_path, fake_anthropic, **http)
        async with running_quitbot(tmp_path, env, "listening for events") as logged:
            pass
    assert logged.returncode == 0, logged.text
    assert f"listening for events, commands and interactivity on 127.0.0.1:{port}/" in logged.text
    # Bolt reads SLACK_BOT_TOKEN from the environment itself; quitbot gives it the client.
    assert "will be unused" not in logged.text and "WARNING" not in logged.text, logged.text


async def test_run_waits_for_a_platform_it_cannot_reach_yet(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    port = free_port()  # nothing listens there until the first try has failed
    env = clean_env(
        tmp_path,
        fake_anthropic,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        QUITBOT_SLACK_API_URL=f"http://127.0.0.1:{port}/api/",
        QUITBOT_START_RETRIES="5",
    )
    process = await start_quitbot(tmp_path, env, "run")
    assert process.stderr is not None
    lines: list[str] = []
    try:
        await asyncio.wait_for(read_until(process.stderr, "trying again in 1 s", lines), 30)
        async with FakeSlack(port=port) as slack:
            await asyncio.wait_for(slack.wait_socket_open(), 30)
            process.send_signal(signal.SIGTERM)
            _, rest = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = "".join(lines) + rest.decode()
    assert process.returncode == 0, log
    assert "slack: could not reach Slack" in lines[-1] and "(retry 1 of 5)" in lines[-1]
    assert "Traceback" not in log


async def test_run_gives_up_on_an_unreachable_database_in_one_line_per_try(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(
        tmp_path,
        fake_anthropic,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        QUITBOT_DATABASE_URL=f"postgresql://quitbot:pw@127.0.0.1:{free_port()}/quitbot",
        QUITBOT_START_RETRIES="1",
    )
    code, _, err = await quitbot(tmp_path, env, "run")
    assert code == 2 and "Traceback" not in err, err
    retried, gave_up = err.strip().splitlines()
    assert "cannot connect to PostgreSQL" in retried and "(retry 1 of 1)" in retried
    assert ":pw@" not in retried  # the URL is shown without its password
    assert gave_up.startswith("quitbot: database: cannot connect to PostgreSQL")
