"""`doctor`: the token (auth.test), the scopes it was granted, and the mode's settings."""

from __future__ import annotations

from pathlib import Path

from bot.settings import SlackSettings
from platforms.slack import doctor
from platforms.slack.scopes import BOT_SCOPES
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.platforms.slack.conftest import slack_settings


async def test_all_good(
    tmp_path: Path, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    settings = make_settings(tmp_path, fake_anthropic, slack=slack_settings(fake_slack))
    lines = await doctor(settings)
    assert all(ok for ok, _ in lines), lines
    assert any("token works" in line for _, line in lines)
    assert fake_slack.methods() == ["auth.test"]


async def test_missing_scopes_are_named(
    tmp_path: Path, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    fake_slack.scopes = ",".join(sorted(BOT_SCOPES - {"reactions:write", "files:read"}))
    settings = make_settings(tmp_path, fake_anthropic, slack=slack_settings(fake_slack))
    failed = [line for ok, line in await doctor(settings) if not ok]
    assert len(failed) == 1 and "files:read, reactions:write" in failed[0]


async def test_a_refused_token(
    tmp_path: Path, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    fake_slack.fail("auth.test", "invalid_auth")
    settings = make_settings(tmp_path, fake_anthropic, slack=slack_settings(fake_slack))
    failed = [line for ok, line in await doctor(settings) if not ok]
    assert failed == ["Slack: the bot token was refused (invalid_auth)"]


async def test_mode_settings(
    tmp_path: Path, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    # Settings refuse these at start-up; doctor still explains them if built another way.
    socket = slack_settings(fake_slack, mode="socket").model_copy(update={"app_token": None})
    http = slack_settings(fake_slack, mode="http").model_copy(update={"signing_secret": None})
    for section, needed in ((socket, "SLACK_APP_TOKEN"), (http, "SLACK_SIGNING_SECRET")):
        settings = make_settings(tmp_path, fake_anthropic).model_copy(update={"slack": section})
        lines = await doctor(settings)
        assert [line for ok, line in lines if not ok] == [lines[0][1]]
        assert needed in lines[0][1]


async def test_slack_off(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    off = SlackSettings.model_construct()
    lines = await doctor(make_settings(tmp_path, fake_anthropic, slack=off))
    assert lines == [(True, "Slack: off (SLACK_BOT_TOKEN is not set)")]
