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
from importlib.metadata import version as _version

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
from bot.settings import Settings, SettingsError, load_settings
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

__all__ = [
    "HOOKS_GROUP",
    "HOOK_KINDS",
    "RESERVED",
    "TOOLS_GROUP",
    "Actor",
    "AuditEvent",
    "BadCommunitySettings",
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
