"""The fakes moved to `quitbot.testing` (shipped, so a bot built on quitbot can test with
them); their old names stay as aliases of the same modules, so `from tests.fakes.discord
import FakeDiscord` keeps working and `monkeypatch.setattr(fakes.discord, "WAIT_SECONDS",
...)` still patches the one module the fake reads."""

from __future__ import annotations

import sys
from importlib import import_module

__all__ = [
    "anthropic",
    "discord",
    "discord_oauth",
    "discord_payloads",
    "loopback",
    "slack",
    "slack_oidc",
    "slack_requests",
]

for _name in __all__:
    globals()[_name] = sys.modules[f"{__name__}.{_name}"] = import_module(
        f"quitbot.testing.{_name}"
    )
