"""quitbot's public API: build a Claude assistant for Discord and Slack that can end a
conversation as a last resort, with your own tools.

Everything here is re-exported from quitbot's core (`bot`, `platforms`), which stays free to
change inside; these names follow semantic versioning (CHANGELOG.md), and
tests/quitbot/api.txt lists each with its signature. Import quitbot before anything named
`bot` (see `quitbot._home`).
"""

from __future__ import annotations

from quitbot._home import ShadowedCore, load_core

load_core()

# ruff: noqa: E402 -- the core may only be imported once `load_core` has put it in place.
from importlib import import_module as _import_module
from importlib.metadata import version as _version
from types import ModuleType as _ModuleType

from bot.app import Runtime, build_runtime
from bot.cli import main
from bot.communities import BadCommunitySettings, CommunitySettings
from bot.conversation import (
    Actor,
    AuditEvent,
    ConcernKind,
    Conversation,
    ConversationKey,
    EndReason,
    Inbound,
)
from bot.engine import Engine
from bot.hooks import HOOK_KINDS, HOOKS_GROUP, Hook, HookEvent, HookLoadError, Hooks
from bot.notices import Notice, NoticeKind, Outcome
from bot.ports import Model, ModelReply, ReplyShown, ReplyStream
from bot.settings import Settings, SettingsError, TextsError, load_settings
from bot.texts import DEFAULT_TEXTS, TEXTS, BadTexts, Markup, Text, TextKey, Texts
from bot.usertools import (
    RESERVED,
    TOOLS_GROUP,
    Tool,
    ToolContext,
    ToolError,
    ToolFailure,
    ToolRegistry,
    tool,
)

__version__ = _version("quitbot")

# Submodules that need a platform's SDK, loaded on first use (`quitbot.discord.attach`,
# `quitbot.slack.register`), so `import quitbot` needs none; not in `__all__`, so
# `from quitbot import *` needs none either.
PLATFORM_MODULES = ("discord", "slack")


def __getattr__(name: str) -> _ModuleType:
    if name in PLATFORM_MODULES:
        return _import_module(f"quitbot.{name}")
    raise AttributeError(f"module 'quitbot' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TEXTS",
    "HOOKS_GROUP",
    "HOOK_KINDS",
    "PLATFORM_MODULES",
    "RESERVED",
    "TEXTS",
    "TOOLS_GROUP",
    "Actor",
    "AuditEvent",
    "BadCommunitySettings",
    "BadTexts",
    "CommunitySettings",
    "ConcernKind",
    "Conversation",
    "ConversationKey",
    "EndReason",
    "Engine",
    "Hook",
    "HookEvent",
    "HookLoadError",
    "Hooks",
    "Inbound",
    "Markup",
    "Model",
    "ModelReply",
    "Notice",
    "NoticeKind",
    "Outcome",
    "ReplyShown",
    "ReplyStream",
    "Runtime",
    "Settings",
    "SettingsError",
    "ShadowedCore",
    "Text",
    "TextKey",
    "Texts",
    "TextsError",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolRegistry",
    "__version__",
    "build_runtime",
    "load_settings",
    "main",
    "tool",
]
