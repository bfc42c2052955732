"""The dashboard as an operator starts it: `quitbot dashboard` alone or beside `run`, its
settings refused in one line, and no secret of its own in the logs, even at DEBUG."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord_oauth import CLIENT_ID, CLIENT_SECRET, MANAGE_THREADS, FakeDiscordOAuth
from tests.fakes.slack import FakeSlack
from tests.processes import clean_env, free_port, quitbot, reaching_slack_http, running_quitbot

SECRET = "a-dashboard-session-secret-of-enough-bytes-0123456789"
SLACK_CLIENT_SECRET = "slack-client-secret-for-the-logs-test"


def dashboard_env(
    tmp_path: Path, port: int, oauth: FakeDiscordOAuth | None = None
) -> dict[str, str]:
    env = {
        "QUITBOT_DASHBOARD_PORT": str(port),
        "QUITBOT_DASHBOARD_URL": f"http://127.0.0.1:{port}",
        "QUITBOT_DASHBOARD_SECRET": SECRET,
    }
    if oauth is not None:
        env |= {
            "DISCORD_CLIENT_ID": CLIENT_ID,
            "DISCORD_CLIENT_SECRET": CLIENT_SECRET,
            "QUITBOT_DISCORD_OAUTH_BASE": oauth.base_url,
            "SLACK_CLIENT_ID": "1111.2222",
            "SLACK_CLIENT_SECRET": SLACK_CLIENT_SECRET,
        }
    return env


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (None, "QUITBOT_DASHBOARD_SECRET is not set"),
        ("short", "QUITBOT_DASHBOARD_SECRET is too short"),
    ],
)
async def test_a_missing_or_short_secret_is_one_line_and_exit_2(
    tmp_path: Path, secret: str | None, says: str
) -> None:
    env = clean_env(tmp_path, None, **dashboard_env(tmp_path, free_port()))
    env.pop("QUITBOT_DASHBOARD_SECRET")
    if secret is not None:
        env["QUITBOT_DASHBOARD_SECRET"] = secret
    code, out, err = await quitbot(tmp_path, env, "dashboard")
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"quitbot: {says}: ") and "32" in line


async def test_run_with_a_dashboard_port_checks_the_secret_too(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_DASHBOARD_PORT=str(free_port()))
    code, _, err = await quitbot(tmp_path, env, "run")
    assert code == 2 and err.startswith("quitbot: QUITBOT_DASHBOARD_SECRET is not set")


async def test_the_dashboard_alone_signs_in_and_logs_no_secret_even_at_debug(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with FakeDiscordOAuth((f"http://127.0.0.1:{port}/signin/discord/callback",)) as oauth:
        oauth.add_user("9001", "Mod", {"111": MANAGE_THREADS})
        oauth.acting = "9001"
        env = clean_env(
            tmp_path, None, QUITBOT_LOG_LEVEL="DEBUG", **dashboard_env(tmp_path, port, oauth)
        )
        async with running_quitbot(tmp_path, env, "the dashboard on", "dashboard") as logged:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.get(f"http://127.0.0.1:{port}/signin/discord") as signed_in:
                    assert "/c/discord/111/queue" in await signed_in.text()
                callback = f"http://127.0.0.1:{port}/signin/discord/callback"
                async with http.get(callback, params={"code": "x", "state": "y"}) as refused:
                    assert refused.status == 400
            cookies = [c.value for c in jar]
    assert logged.returncode == 0, logged.text
    assert "DEBUG" in logged.text  # DEBUG really was on
    tokens = list(oauth._tokens)
    for secret in [SECRET, CLIENT_SECRET, SLACK_CLIENT_SECRET, *tokens, *cookies]:
        assert secret not in logged.text


async def test_run_serves_the_dashboard_beside_the_platforms(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    port, slack_port = free_port(), free_port()
    async with FakeSlack() as slack:
        http_mode = reaching_slack_http(slack, slack_port) | {
            "QUITBOT_SLACK_HTTP_HOST": "127.0.0.1"
        }
        env = clean_env(tmp_path, fake_anthropic, **http_mode, **dashboard_env(tmp_path, port))
        async with (
            running_quitbot(tmp_path, env, "the dashboard on") as logged,
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/") as page,
        ):
            assert page.status == 200 and "Sign in" in await page.text()
    assert logged.returncode == 0, logged.text
