"""Settings: read once, validated with plain-words errors, database URLs parsed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from anthropic._data import DEPRECATED_MODELS

from bot.settings import (
    DEFAULT_MODEL,
    DatabaseUrlError,
    Settings,
    SettingsError,
    load_settings,
    parse_database_url,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("QUITBOT_", "ANTHROPIC_", "DISCORD_", "SLACK_")):
            monkeypatch.delenv(name)


def test_defaults_match_design() -> None:
    settings = load_settings(None)
    assert settings.redirects_before_warning == 2
    assert settings.redirects_before_end == 3
    assert settings.database.path == "quitbot.db"
    assert "988" in settings.crisis_message
    assert not settings.discord.enabled and not settings.slack.enabled


def test_default_model_is_current() -> None:
    assert DEFAULT_MODEL not in DEPRECATED_MODELS


def test_conventional_names_and_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "ANTHROPIC_API_KEY=sk-test\nDISCORD_TOKEN=abc\nSLACK_BOT_TOKEN=xoxb-1\n"
        "QUITBOT_SLACK_MODE=http\nSLACK_SIGNING_SECRET=s\nQUITBOT_REDIRECTS_BEFORE_END=5\n"
        'QUITBOT_SLACK_ADMIN_USER_IDS=["U1","U2"]\n'
    )
    settings = load_settings(env)
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-test"
    assert settings.discord.enabled and settings.slack.enabled
    assert settings.slack.mode == "http" and settings.slack.admin_user_ids == ["U1", "U2"]
    assert settings.redirects_before_end == 5


def test_every_bad_field_gets_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUITBOT_MAX_TOKENS", "lots")
    monkeypatch.setenv("QUITBOT_DATABASE_URL", "mysql://x")
    monkeypatch.setenv("QUITBOT_SLACK_API_URL", "https://slack.example/")
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token")
    monkeypatch.setenv("QUITBOT_DISCORD_SHARD_COUNT", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings(None)
    lines = caught.value.lines
    assert len(lines) == 4
    assert any(line.startswith("QUITBOT_MAX_TOKENS: ") for line in lines)
    assert any(line.startswith("QUITBOT_DATABASE_URL: unknown database scheme") for line in lines)
    assert any(line.startswith("QUITBOT_SLACK_API_URL: must end in /api/") for line in lines)
    assert any(line.startswith("QUITBOT_DISCORD_SHARD_COUNT: ") for line in lines)
    assert all("secret-token" not in line for line in lines)


def test_end_threshold_cannot_come_before_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUITBOT_REDIRECTS_BEFORE_WARNING", "3")
    monkeypatch.setenv("QUITBOT_REDIRECTS_BEFORE_END", "2")
    with pytest.raises(SettingsError, match="at least QUITBOT_REDIRECTS_BEFORE_WARNING"):
        load_settings(None)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///quitbot.db", "quitbot.db"),
        ("sqlite:////var/lib/quitbot/quitbot.db", "/var/lib/quitbot/quitbot.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite+aiosqlite:///data/q.db", "data/q.db"),
    ],
)
def test_database_urls(url: str, path: str) -> None:
    assert parse_database_url(url).path == path


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://quitbot:s3cret@db.internal:5432/quitbot",
        "postgres://db/quitbot",
        "postgresql+asyncpg://db/quitbot?sslmode=require",
        "postgresql:///quitbot?host=/var/run/postgresql",
    ],
)
def test_postgres_urls_select_postgres(url: str) -> None:
    target = parse_database_url(url)
    assert target.backend == "postgresql"
    assert target.url.startswith("postgresql://")
    assert "s3cret" not in target.shown


def test_pool_size_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUITBOT_DATABASE_URL", "postgresql://db/quitbot")
    monkeypatch.setenv("QUITBOT_DATABASE_POOL_SIZE", "25")
    assert load_settings(None).database.pool_size == 25
    monkeypatch.setenv("QUITBOT_DATABASE_POOL_SIZE", "0")
    with pytest.raises(SettingsError, match="QUITBOT_DATABASE_POOL_SIZE"):
        load_settings(None)


def test_a_bad_database_url_is_not_repeated_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUITBOT_DATABASE_URL", "postgresql://quitbot:s3cret@db:port/quitbot")
    with pytest.raises(SettingsError) as caught:
        load_settings(None)
    assert caught.value.lines == [
        "QUITBOT_DATABASE_URL: the PostgreSQL URL has a bad host or port; "
        "use postgresql://user:password@host:5432/dbname"
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://localhost", "names no database"),
        ("postgresql:///quitbot", "names no host"),
        ("postgresql://db:port/quitbot", "bad host or port"),
        ("quitbot.db", "not a URL"),
        ("sqlite://", "no file path"),
        ("sqlite:///", "no file path"),
        ("redis://localhost", "unknown database scheme"),
    ],
)
def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message):
        parse_database_url(url)


def test_env_example_documents_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    expected = {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"}
    for name in Settings.model_fields:
        if name in {"discord", "slack", "dashboard", "anthropic_api_key", "anthropic_base_url"}:
            continue
        expected.add(f"QUITBOT_{name.upper()}")
    from bot.settings import DashboardSettings, DiscordSettings, SlackSettings

    for section, prefix in (
        (DiscordSettings, "QUITBOT_DISCORD_"),
        (SlackSettings, "QUITBOT_SLACK_"),
        (DashboardSettings, "QUITBOT_DASHBOARD_"),
    ):
        for name, field in section.model_fields.items():
            alias = field.validation_alias
            expected.add(alias if isinstance(alias, str) else f"{prefix}{name.upper()}")
    assert expected <= documented, f"undocumented: {sorted(expected - documented)}"
    lines = example.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]+=", line):
            assert index > 0 and lines[index - 1].startswith("#"), f"no comment above {line}"


def test_slack_mode_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    with pytest.raises(SettingsError, match="Socket Mode needs SLACK_APP_TOKEN"):
        load_settings(None)
    monkeypatch.setenv("QUITBOT_SLACK_MODE", "http")
    with pytest.raises(SettingsError, match="QUITBOT_SLACK_MODE=http needs SLACK_SIGNING_SECRET"):
        load_settings(None)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    assert load_settings(None).slack.enabled


@pytest.mark.parametrize(
    ("written", "shards"), [("0", [0]), ("1", [1]), ("0,1", [0, 1]), ("[0, 1]", [0, 1])]
)
def test_shard_ids_take_one_number_a_list_or_json(
    monkeypatch: pytest.MonkeyPatch, written: str, shards: list[int]
) -> None:
    monkeypatch.setenv("QUITBOT_DISCORD_SHARD_COUNT", "2")
    monkeypatch.setenv("QUITBOT_DISCORD_SHARD_IDS", written)
    assert load_settings(None).discord.shard_ids == shards


def test_shard_ids_that_are_not_numbers_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUITBOT_DISCORD_SHARD_COUNT", "2")
    monkeypatch.setenv("QUITBOT_DISCORD_SHARD_IDS", "first")
    with pytest.raises(SettingsError, match="QUITBOT_DISCORD_SHARD_IDS"):
        load_settings(None)


@pytest.mark.parametrize(
    ("written", "read"),
    [("U1", ["U1"]), (" U1 , U2 ", ["U1", "U2"]), ('["U1", "U2"]', ["U1", "U2"]), ("", [])],
)
def test_admin_ids_in_any_usual_form(
    monkeypatch: pytest.MonkeyPatch, written: str, read: list[str]
) -> None:
    monkeypatch.setenv("QUITBOT_SLACK_ADMIN_USER_IDS", written)
    assert load_settings(None).slack.admin_user_ids == read


def test_shard_ids_as_json_and_bare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUITBOT_DISCORD_SHARD_COUNT", "4")
    for written, read in (("[0, 3]", [0, 3]), ("2", [2]), ("1,2", [1, 2])):
        monkeypatch.setenv("QUITBOT_DISCORD_SHARD_IDS", written)
        assert load_settings(None).discord.shard_ids == read


def test_slack_http_host_defaults_to_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None).slack.http_host == "0.0.0.0"
    monkeypatch.setenv("QUITBOT_SLACK_HTTP_HOST", "127.0.0.1")
    assert load_settings(None).slack.http_host == "127.0.0.1"


@pytest.mark.parametrize(
    "urls",
    ["https://a.example/h, http://b.example/h", '["https://a.example/h", "http://b.example/h"]'],
)
def test_webhook_urls_come_as_a_list_or_as_json(monkeypatch: pytest.MonkeyPatch, urls: str) -> None:
    monkeypatch.setenv("QUITBOT_WEBHOOK_URL", urls)
    monkeypatch.setenv("QUITBOT_WEBHOOK_SECRET", "s" * 16)
    settings = load_settings(None)
    assert settings.webhook_url == ["https://a.example/h", "http://b.example/h"]
    assert "s" * 16 in settings.secrets()  # masked in every log line


def test_webhooks_need_a_secret_and_an_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None).webhook_url == []
    monkeypatch.setenv("QUITBOT_WEBHOOK_URL", "https://hooks.example/T0/tok3n")
    monkeypatch.setenv("QUITBOT_WEBHOOK_SECRET", "short")
    with pytest.raises(SettingsError, match="needs QUITBOT_WEBHOOK_SECRET, at least 16"):
        load_settings(None)
    monkeypatch.setenv("QUITBOT_WEBHOOK_URL", "file:///etc/tok3n")
    with pytest.raises(SettingsError) as caught:
        load_settings(None)
    assert caught.value.lines[0].startswith("QUITBOT_WEBHOOK_URL: each URL must be http")
    assert all("tok3n" not in line for line in caught.value.lines)  # a URL may hold a token
