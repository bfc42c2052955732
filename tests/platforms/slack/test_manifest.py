"""deploy/slack-manifest.yml asks for exactly what the app uses."""

from __future__ import annotations

from pathlib import Path

from platforms.slack.render import BRANCH, END
from platforms.slack.scopes import BOT_EVENTS, BOT_SCOPES, COMMAND

MANIFEST = Path(__file__).parents[3] / "deploy" / "slack-manifest.yml"


def items_under(key: str) -> list[str]:
    """The `- item` lines of the YAML list directly under `key:` (no YAML library needed)."""
    lines = MANIFEST.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{key}:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    found = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(line) - len(line.lstrip()) <= indent and not stripped.startswith("- "):
            break
        if stripped.startswith("- ") and len(line) - len(line.lstrip()) <= indent + 2:
            found.append(stripped[2:].strip())
    return found


def test_scopes_are_exactly_the_needed_ones() -> None:
    assert sorted(items_under("bot")) == sorted(BOT_SCOPES)


def test_events_are_exactly_the_handled_ones() -> None:
    assert sorted(items_under("bot_events")) == sorted(BOT_EVENTS)


def test_command_shortcut_and_both_modes() -> None:
    text = MANIFEST.read_text()
    assert f"- command: {COMMAND}" in text
    assert f"callback_id: {BRANCH}" in text
    assert f"callback_id: {END}" in text  # ending from inside a thread
    assert "socket_mode_enabled: true" in text
    urls = [line for line in text.splitlines() if "/slack/events" in line and "#" not in line]
    assert len(urls) == 3  # commands, events and interactivity share the one endpoint
    assert "is_enabled: true" in text  # interactivity: buttons and the shortcut
