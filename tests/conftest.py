"""Fixtures shared by every test: the fake Claude API and a runtime wired to it."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import Runtime, build_runtime
from bot.settings import DiscordSettings, Settings, SlackSettings
from quitbot.testing import FakeAnthropic
from tests import postgres


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts a background job (`pytest &`) with Ctrl-C ignored,
    # and every process a test starts inherits that: a `quitbot run` or an example app then
    # never stops on the SIGINT a test sends, and the test hangs. Caught, it resets in them.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def make_settings(tmp_path: Path, fake: FakeAnthropic, **overrides: Any) -> Settings:
    """Settings for a test: nothing read from the environment or a .env file."""
    values: dict[str, Any] = {
        "anthropic_api_key": "test-key",
        "anthropic_base_url": fake.base_url,
        "database_url": f"sqlite:///{tmp_path / 'quitbot.db'}",
        "model_max_retries": 1,
        "discord": DiscordSettings.model_construct(),
        "slack": SlackSettings.model_construct(),
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest_asyncio.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    """A started FakeAnthropic; the test fails if it saw anything unexpected."""
    async with FakeAnthropic() as fake:
        yield fake
        if fake.unexpected:
            pytest.fail("FakeAnthropic saw unexpected calls:\n" + "\n".join(fake.unexpected))


@pytest.fixture
def settings(tmp_path: Path, fake_anthropic: FakeAnthropic) -> Settings:
    return make_settings(tmp_path, fake_anthropic)


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with build_runtime(settings) as built:
        yield built


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One throw-away PostgreSQL database for the whole run, dropped at its end."""
    if not postgres.enabled():
        pytest.skip("QUITBOT_TEST_POSTGRES=0: PostgreSQL tests skipped on request")
    url = str(postgres.run(postgres.create_database()))
    try:
        yield url
    finally:
        postgres.run(postgres.drop_database(url))


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The run's PostgreSQL database, emptied for this test."""
    postgres.run(postgres.empty(postgres_database))
    return postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend, as a QUITBOT_DATABASE_URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'quitbot.db'}"
    return str(request.getfixturevalue("postgres_url"))
