"""Test your bot without tokens: fakes of Claude's Messages API, Discord (REST and gateway)
and Slack (Web API and Socket Mode), served on 127.0.0.1 so the real SDKs run against them.

    from quitbot.testing import FakeAnthropic, FakeDiscord
    from quitbot.testing.anthropic import text, tool

    async with FakeAnthropic() as claude, FakeDiscord() as discord_:
        claude.add(tool("next_event", {}), text("Trivia is on Wednesday!"))
        ...  # ANTHROPIC_BASE_URL=claude.base_url; quitbot.discord.configure_endpoints(...)
        assert claude.unexpected == [] and discord_.unexpected == []

These are the fakes quitbot's own test suite runs on. Each refuses what the platform
refuses (the source of every rule is cited beside it) and records every call, so a test
waits on what was sent (`wait_until`, `wait_call`) instead of sleeping. They need aiohttp
only, never pytest; the response builders (`text`, `tool`, `refusal`, ...), the
payload builders (`slack_requests.mention`, ...) and `slack_requests.serve_app` (your Bolt
app on a free port) live in the submodules.
"""

from __future__ import annotations

from quitbot.testing.anthropic import FakeAnthropic
from quitbot.testing.discord import FakeDiscord, ManualClock
from quitbot.testing.slack import FakeSlack
from quitbot.testing.slack_requests import SlackSender

__all__ = ["FakeAnthropic", "FakeDiscord", "FakeSlack", "ManualClock", "SlackSender"]
