"""What the app asks of Slack: the manifest, `doctor` and the tests agree on these lists."""

from __future__ import annotations

COMMAND = "/quitbot"

# Each scope is here because a call or an event below needs it.
BOT_SCOPES = frozenset(
    {
        "app_mentions:read",  # app_mention events
        "assistant:write",  # assistant.threads.setStatus / setTitle / setSuggestedPrompts
        "channels:history",  # message.channels: thread replies without a mention
        "groups:history",  # message.groups: the same in private channels
        "im:history",  # message.im: direct messages and assistant threads
        "chat:write",  # replies, streaming, notices, ephemeral notices, mod-log posts
        "commands",  # /quitbot and the "Branch from here" shortcut
        "files:read",  # downloading files people share
        "reactions:write",  # the ended reaction on a thread's first message
        "users:read",  # users.info: is this person a workspace admin?
    }
)

BOT_EVENTS = frozenset(
    {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "assistant_thread_started",
        "assistant_thread_context_changed",
    }
)


def missing_scopes(granted_header: str) -> list[str]:
    """The needed scopes absent from an `x-oauth-scopes` header, sorted."""
    granted = {scope.strip() for scope in granted_header.split(",") if scope.strip()}
    return sorted(BOT_SCOPES - granted)
