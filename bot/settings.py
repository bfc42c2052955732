"""All configuration, read once at start-up by `load_settings()`; nothing here runs at import."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as UnreadableSetting

from bot.policy import Rules
from bot.texts import DEFAULT_TEXTS, BadTexts, Texts, load

DEFAULT_MODEL = "claude-sonnet-5-5"
# Shorter secrets are guessable offline from one signed request.
MIN_WEBHOOK_SECRET = 16

DEFAULT_CRISIS_MESSAGE = (
    "If you are thinking about harming yourself or someone else, please reach out now. "
    "If you are in immediate danger, call your local emergency number (911 in the US, "
    "112 in the EU, 999 in the UK). In the US you can call or text 988 (Suicide & Crisis "
    "Lifeline); in the UK and Ireland call Samaritans on 116 123; elsewhere, find a free, "
    "confidential helpline at https://findahelpline.com."
)


class DatabaseUrlError(ValueError):
    """QUITBOT_DATABASE_URL names something quitbot cannot open."""


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed QUITBOT_DATABASE_URL (with the pool size, for PostgreSQL)."""

    backend: Literal["sqlite", "postgresql"]
    path: str = ""  # SQLite: a filesystem path, or ":memory:"
    url: str = ""  # PostgreSQL: a libpq-style URL, as the driver takes it
    pool_size: int = 10

    @property
    def shown(self) -> str:
        """The target for logs and messages, without a password."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.path}"
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}


def parse_database_url(url: str) -> DatabaseTarget:
    """Parse SQLAlchemy-style URLs: `sqlite:///relative.db`, `sqlite:////abs/path.db`,
    `postgresql://user:password@host:5432/dbname`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseUrlError(f"{url!r} is not a URL; use e.g. sqlite:///quitbot.db")
    if scheme in _POSTGRES_SCHEMES:
        return _parse_postgres_url(rest)
    if scheme not in {"sqlite", "sqlite+aiosqlite"}:
        raise DatabaseUrlError(
            f"unknown database scheme {scheme!r}; use sqlite:///quitbot.db or "
            "postgresql://user:password@host:5432/dbname"
        )
    if not rest.startswith("/") or rest == "/":
        raise DatabaseUrlError(
            f"{url!r} has no file path; use sqlite:///quitbot.db or sqlite:////abs/path.db"
        )
    path = rest[1:]
    if path == ":memory:":
        return DatabaseTarget("sqlite", ":memory:")
    if "?" in path:
        raise DatabaseUrlError(f"{url!r}: query options are not supported")
    return DatabaseTarget("sqlite", path)


def _parse_postgres_url(rest: str) -> DatabaseTarget:
    """Check what the driver would only find out when connecting; the URL may hold a password,
    so no message repeats it."""
    url = "postgresql://" + rest
    example = "use postgresql://user:password@host:5432/dbname"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise DatabaseUrlError(f"the PostgreSQL URL has a bad host or port; {example}") from None
    if parts.fragment:
        raise DatabaseUrlError(f"the PostgreSQL URL has a '#' part; {example}")
    if not parts.hostname and "host=" not in parts.query:
        raise DatabaseUrlError(f"the PostgreSQL URL names no host; {example}")
    if not parts.path.strip("/"):
        raise DatabaseUrlError(f"the PostgreSQL URL names no database; {example}")
    return DatabaseTarget("postgresql", url=url)


_LIST_FORMS = 'write one item, items separated by commas (a,b) or a JSON list (["a","b"])'


def listed(value: Any) -> Any:
    """A list setting as people write it: one item (`U0123`), comma-separated (`U1,U2`) or a
    JSON list (`["U1","U2"]`)."""
    if isinstance(value, int):
        return [value]
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ValueError(f"starts with '[' but is not a JSON list; {_LIST_FORMS}") from None
    if not isinstance(parsed, list):
        raise ValueError(f"is not a list; {_LIST_FORMS}")
    return parsed


# populate_by_name: tests and callers may write DiscordSettings(token=...) as well as the
# conventional environment names.
_COMMON = SettingsConfigDict(
    env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
)


DISCORD_API_SCHEMES = ("https", "http")
DISCORD_GATEWAY_SCHEMES = ("wss", "ws")


def endpoint(value: str | None, schemes: tuple[str, ...]) -> str | None:
    """`value` if it is an absolute URL of one of `schemes` (a proxy's or a test fake's
    address for a platform's API); ValueError in plain words otherwise."""
    if value is None or value == "":
        return None
    scheme, _, rest = value.partition("://")
    host = rest.split("/", 1)[0]
    if scheme.lower() not in schemes or not host or any(c.isspace() for c in value):
        raise ValueError(
            f"{value!r} is not a {' or '.join(s + '://' for s in schemes)} address with a host"
        )
    return value


class DiscordSettings(BaseSettings):
    """Discord section; the adapter runs when `token` is set."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="QUITBOT_DISCORD_")

    token: SecretStr | None = Field(default=None, validation_alias="DISCORD_TOKEN")
    api_base: str | None = None
    gateway_url: str | None = None
    dev_guild_id: int | None = None
    moderator_role_id: int | None = None
    modlog_channel_id: int | None = None
    shard_count: int | None = Field(default=None, ge=1)
    # NoDecode: the raw text reaches `listed`, so `0`, `0,1` and `[0,1]` all work.
    shard_ids: Annotated[list[int] | None, NoDecode] = None
    max_attachment_bytes: int = Field(default=100_000, ge=0)
    # The dashboard's "Sign in with Discord" (an OAuth2 application's id and secret).
    client_id: str | None = Field(default=None, validation_alias="DISCORD_CLIENT_ID")
    client_secret: SecretStr | None = Field(default=None, validation_alias="DISCORD_CLIENT_SECRET")
    # Where the dashboard sends people to sign in and exchanges their code; a test's fake.
    oauth_base: str = "https://discord.com"

    _shard_list = field_validator("shard_ids", mode="before")(listed)

    @field_validator("api_base")
    @classmethod
    def _api_base_is_http(cls, value: str | None) -> str | None:
        return endpoint(value, DISCORD_API_SCHEMES)

    @field_validator("gateway_url")
    @classmethod
    def _gateway_is_websocket(cls, value: str | None) -> str | None:
        return endpoint(value, DISCORD_GATEWAY_SCHEMES)

    @property
    def enabled(self) -> bool:
        return self.token is not None and bool(self.token.get_secret_value())

    @model_validator(mode="after")
    def _shard_ids_need_a_count(self) -> DiscordSettings:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("QUITBOT_DISCORD_SHARD_IDS needs QUITBOT_DISCORD_SHARD_COUNT")
            bad = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
            if bad:
                raise ValueError(f"QUITBOT_DISCORD_SHARD_IDS {bad} are not below the shard count")
        return self


def _secret(value: SecretStr | None) -> bool:
    return value is not None and bool(value.get_secret_value())


class SlackSettings(BaseSettings):
    """Slack section; the adapter runs when the bot token (and its mode's secret) is set."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="QUITBOT_SLACK_")

    bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    mode: Literal["socket", "http"] = "socket"
    # 0.0.0.0: Slack must reach the HTTP listener from outside; a reverse proxy on the same
    # host can keep it on 127.0.0.1.
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=3000, ge=1, le=65535)
    api_url: str | None = None
    # NoDecode: as the Discord shard ids, `U1`, `U1,U2` and `["U1","U2"]` all work.
    admin_user_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    modlog_channel: str | None = None
    max_attachment_bytes: int = Field(default=100_000, ge=0)
    # The dashboard's "Sign in with Slack" (OpenID Connect).
    client_id: str | None = Field(default=None, validation_alias="SLACK_CLIENT_ID")
    client_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_CLIENT_SECRET")
    # Where the dashboard sends people to sign in and exchanges their code; a test's fake.
    oauth_base: str = "https://slack.com"

    _admin_list = field_validator("admin_user_ids", mode="before")(listed)

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value())

    @model_validator(mode="after")
    def _mode_has_its_secret(self) -> SlackSettings:
        if not self.enabled:
            return self
        if self.mode == "http" and not _secret(self.signing_secret):
            raise ValueError("QUITBOT_SLACK_MODE=http needs SLACK_SIGNING_SECRET")
        if self.mode == "socket" and not _secret(self.app_token):
            raise ValueError(
                "Slack's Socket Mode needs SLACK_APP_TOKEN (an xapp- token), "
                "or set QUITBOT_SLACK_MODE=http with SLACK_SIGNING_SECRET"
            )
        return self

    @field_validator("api_url")
    @classmethod
    def _api_url_ends_in_api(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith("/api/"):
            raise ValueError("must end in /api/, e.g. https://slack.com/api/")
        return value


# Sessions are signed with HMAC-SHA256; a shorter key is guessable offline from one cookie.
DASHBOARD_SECRET_BYTES = 32


class DashboardSettings(BaseSettings):
    """The moderators' web dashboard: served by `quitbot dashboard`, and by `quitbot run`
    when `port` is set."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="QUITBOT_DASHBOARD_")

    # Loopback by default: put a TLS-terminating proxy in front to reach it from outside.
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    url: str = ""  # the public base URL, e.g. https://mod.example.org (OAuth redirects)
    secret: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// on this machine only)")
        return value.rstrip("/")

    def problem(self) -> str | None:
        """Why the dashboard cannot be served with these settings, in one line."""
        secret = self.secret.get_secret_value() if self.secret else ""
        if len(secret.encode()) < DASHBOARD_SECRET_BYTES:
            what = "is not set" if not secret else "is too short"
            return (
                f"QUITBOT_DASHBOARD_SECRET {what}: the dashboard signs sessions with it; "
                f"set at least {DASHBOARD_SECRET_BYTES} random bytes, e.g. the output of "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if not self.url:
            return (
                "QUITBOT_DASHBOARD_URL is not set: the public address the dashboard is reached at"
            )
        return None


class Settings(BaseSettings):
    """Everything quitbot reads from the environment and `.env`.

    Build it with `load_settings()` in `main`; tests construct it directly.
    """

    model_config = SettingsConfigDict(**_COMMON, env_prefix="QUITBOT_")

    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL")
    )
    model: str = DEFAULT_MODEL
    max_tokens: int = Field(default=4096, ge=1, le=64_000)
    context_tokens: int = Field(default=20_000, ge=500)
    model_timeout_seconds: float = Field(default=60.0, gt=0)
    model_max_retries: int = Field(default=2, ge=0, le=10)
    system_prompt_extra: str = ""

    redirects_before_warning: int = Field(default=2, ge=1)
    redirects_before_end: int = Field(default=3, ge=1)
    # "alert": alert-only mode, where the ladder would end the moderators are alerted instead.
    enforcement: Literal["end", "alert"] = "end"
    crisis_message: str = Field(default=DEFAULT_CRISIS_MESSAGE, min_length=1)
    max_ended_per_day: int = Field(default=0, ge=0)
    blocked_notice_seconds: int = Field(default=60, ge=0)
    max_message_chars: int = Field(default=16_000, ge=100)
    # A TOML file of the operator's own words for notices and buttons (`quitbot texts`
    # prints one to start from); read once, by `load_settings` or the first `words`.
    texts: Path | None = None
    _words: Texts | None = PrivateAttr(default=None)

    database_url: str = "sqlite:///quitbot.db"
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # 0 turns the HTTP health and metrics endpoints off; loopback unless told otherwise,
    # because /metrics tells anyone who can reach it how busy the bot is.
    health_port: int = Field(default=0, ge=0, le=65535)
    health_host: str = "127.0.0.1"
    # 0 keeps message text for ever.
    retention_days: int = Field(default=0, ge=0)
    # `run` waits out a database or platform it cannot reach yet (pauses of 1, 2, 4 ... 30 s);
    # 10 tries cover about three minutes of a network or DNS outage at boot.
    start_retries: int = Field(default=10, ge=0, le=100)
    # The user tools the model may call (names, comma-separated; `*` for every installed
    # one). None by default: an installed package never hands the model a tool unasked.
    tools: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Per-tool timeouts in seconds, as JSON (`{"faq": 5}`), over each tool's own default.
    tool_timeouts: dict[str, float] = Field(default_factory=dict)
    # NoDecode: the raw text reaches `_url_list`, so one URL, `a,b` and a JSON list all work.
    webhook_url: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None

    # NoDecode: the sections come from their own QUITBOT_DISCORD_*/QUITBOT_SLACK_* variables;
    # a stray QUITBOT_DISCORD or QUITBOT_SLACK would otherwise be read as JSON and crash.
    discord: Annotated[DiscordSettings, NoDecode] = Field(
        default_factory=lambda: DiscordSettings.model_construct()
    )
    slack: Annotated[SlackSettings, NoDecode] = Field(
        default_factory=lambda: SlackSettings.model_construct()
    )
    dashboard: Annotated[DashboardSettings, NoDecode] = Field(
        default_factory=lambda: DashboardSettings.model_construct()
    )

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("tool_timeouts")
    @classmethod
    def _positive_timeouts(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, seconds in value.items() if seconds <= 0]
        if bad:
            raise ValueError(f"timeouts must be positive: {', '.join(bad)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str) -> str:
        try:
            parse_database_url(value)
        except DatabaseUrlError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _url_list(cls, value: Any) -> Any:
        """One URL, a comma-separated list, or a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("webhook_url")
    @classmethod
    def _urls_are_http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError("each URL must be http:// or https:// with a host")
        return urls

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> Settings:
        secret = "" if self.webhook_secret is None else self.webhook_secret.get_secret_value()
        if self.webhook_url and len(secret) < MIN_WEBHOOK_SECRET:
            raise ValueError(
                f"QUITBOT_WEBHOOK_URL needs QUITBOT_WEBHOOK_SECRET, at least "
                f"{MIN_WEBHOOK_SECRET} characters (e.g. the output of `openssl rand -hex 32`)"
            )
        return self

    @model_validator(mode="after")
    def _end_not_before_warning(self) -> Settings:
        if self.redirects_before_end < self.redirects_before_warning:
            raise ValueError(
                "QUITBOT_REDIRECTS_BEFORE_END must be at least QUITBOT_REDIRECTS_BEFORE_WARNING"
            )
        return self

    @property
    def words(self) -> Texts:
        """The texts in force process-wide: the defaults with `texts`' overrides.

        Raises TextsError (one line: the file, the key and the problem) for a file that
        cannot be used.
        """
        if self._words is None:
            try:
                self._words = load(self.texts) if self.texts is not None else DEFAULT_TEXTS
            except BadTexts as exc:
                raise TextsError(f"QUITBOT_TEXTS: {exc}") from None
        return self._words

    def rules(self) -> Rules:
        """The ladder's process-wide rules (a community may have its own)."""
        return Rules(
            self.redirects_before_warning, self.redirects_before_end, self.enforcement == "alert"
        )

    @property
    def database(self) -> DatabaseTarget:
        return replace(parse_database_url(self.database_url), pool_size=self.database_pool_size)

    def secrets(self) -> list[str]:
        """Every credential's value, for the log formatter to mask wherever one turns up."""
        found = [
            self.anthropic_api_key,
            self.discord.token,
            self.slack.bot_token,
            self.slack.app_token,
            self.slack.signing_secret,
            self.discord.client_secret,
            self.slack.client_secret,
            self.dashboard.secret,
            self.webhook_secret,
        ]
        return [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]


class SettingsError(Exception):
    """Bad configuration, one readable line per bad field."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class TextsError(Exception):
    """The operator's texts file (QUITBOT_TEXTS) cannot be used; the message is one line."""


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Read the environment (and `env_file` if it exists) once; raise SettingsError if bad,
    TextsError if the texts file (QUITBOT_TEXTS) is."""
    lines: list[str] = []
    sections: dict[str, Any] = {}
    for name, cls, prefix in (
        ("discord", DiscordSettings, "QUITBOT_DISCORD_"),
        ("slack", SlackSettings, "QUITBOT_SLACK_"),
        ("dashboard", DashboardSettings, "QUITBOT_DASHBOARD_"),
    ):
        try:
            sections[name] = cls(_env_file=env_file)  # type: ignore[call-arg]
        except ValidationError as exc:
            lines += _explain(exc, prefix, cls)
        except UnreadableSetting as exc:
            lines.append(_unreadable(exc, prefix, cls))
    try:
        settings = Settings(_env_file=env_file, **sections)  # type: ignore[call-arg]
    except ValidationError as exc:
        lines += _explain(exc, "QUITBOT_", Settings)
    except UnreadableSetting as exc:
        lines.append(_unreadable(exc, "QUITBOT_", Settings))
    if lines:
        raise SettingsError(lines)
    settings.words  # noqa: B018 -- read and checked now, at start-up, not at the first notice
    return settings


def _explain(exc: ValidationError, prefix: str, cls: type[BaseSettings]) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] in {"discord", "slack", "dashboard"}:
            continue  # already explained by that section's own validation
        if not loc:  # a rule across fields; its message names the variables itself
            lines.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        name = _env_name(loc[0], prefix, cls)
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        # A database URL may carry a password.
        secret = any(
            word in name for word in ("TOKEN", "KEY", "SECRET", "DATABASE_URL", "WEBHOOK_URL")
        )
        shown = "" if not loc or secret or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{name}: {message}{shown}")
    return lines


def _unreadable(exc: UnreadableSetting, prefix: str, cls: type[BaseSettings]) -> str:
    """pydantic-settings' own failure to decode a value (no field of ours should reach it;
    this keeps a field added later from ending in a traceback)."""
    found = re.search(r'field "([^"]+)"', str(exc))
    name = _env_name(found.group(1), prefix, cls) if found else prefix.rstrip("_")
    return f"{name}: cannot be read; {_LIST_FORMS}"


def _env_name(field: str, prefix: str, cls: type[BaseSettings]) -> str:
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if info is None:
        return field.upper()
    return f"{prefix}{field.upper()}"
