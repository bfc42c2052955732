"""`quitbot.discord.configure_endpoints`: an embedding bot points discord.py at a proxy or
a fake, from arguments or from QUITBOT_DISCORD_API_BASE / QUITBOT_DISCORD_GATEWAY_URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import discord
import pytest
import yarl

import quitbot
from bot.settings import DiscordSettings
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic

Route = discord.http.Route
Gateway = discord.gateway.DiscordWebSocket


@pytest.fixture(autouse=True)
def _put_back(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The addresses are class attributes, shared by every test in this process."""
    monkeypatch.setattr(Route, "BASE", Route.BASE)
    monkeypatch.setattr(Gateway, "DEFAULT_GATEWAY", Gateway.DEFAULT_GATEWAY)
    yield


def test_addresses_given_are_used() -> None:
    quitbot.discord.configure_endpoints(
        api_base="http://127.0.0.1:8080/api/v10/", gateway_url="ws://127.0.0.1:8080/gateway"
    )
    assert Route.BASE == "http://127.0.0.1:8080/api/v10"
    assert yarl.URL("ws://127.0.0.1:8080/gateway") == Gateway.DEFAULT_GATEWAY


def test_the_settings_are_used_and_an_argument_wins(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    section = DiscordSettings.model_construct(
        api_base="https://proxy.example/api/v10", gateway_url="wss://proxy.example/gateway"
    )
    settings = make_settings(tmp_path, fake_anthropic, discord=section)
    quitbot.discord.configure_endpoints(settings, gateway_url="ws://127.0.0.1:9/gateway")
    assert Route.BASE == "https://proxy.example/api/v10"
    assert yarl.URL("ws://127.0.0.1:9/gateway") == Gateway.DEFAULT_GATEWAY


def test_nothing_set_changes_nothing(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    before = Route.BASE, Gateway.DEFAULT_GATEWAY
    quitbot.discord.configure_endpoints(make_settings(tmp_path, fake_anthropic))
    quitbot.discord.configure_endpoints()
    assert before == (Route.BASE, Gateway.DEFAULT_GATEWAY)


@pytest.mark.parametrize(
    ("api_base", "gateway_url"),
    [
        ("ws://127.0.0.1:1/api/v10", None),
        ("127.0.0.1:1/api/v10", None),
        ("http:///api/v10", None),
        (None, "http://127.0.0.1:1/gateway"),
        (None, "wss://host/gate way"),
    ],
)
def test_a_bad_address_is_refused_and_changes_nothing(
    api_base: str | None, gateway_url: str | None
) -> None:
    before = Route.BASE, Gateway.DEFAULT_GATEWAY
    with pytest.raises(ValueError, match="address with a host"):
        quitbot.discord.configure_endpoints(api_base=api_base, gateway_url=gateway_url)
    assert before == (Route.BASE, Gateway.DEFAULT_GATEWAY)


def test_a_bad_address_in_the_environment_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUITBOT_DISCORD_GATEWAY_URL", "https://gateway.example")
    with pytest.raises(quitbot.SettingsError, match="QUITBOT_DISCORD_GATEWAY_URL"):
        quitbot.load_settings(env_file=None)
