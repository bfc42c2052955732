"""One inbound message -> dedupe, ended gate, per-conversation lock, model, policy, effects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.conversation import AuditEvent, Conversation, ConversationKey, Inbound, StoredMessage
from bot.notices import Outcome
from bot.policy import Rules
from bot.ports import Model, ReplyStream, Store


class ConversationNotFound(LookupError):
    """No conversation has that id (or lives at that key)."""


class Engine:
    """The platform-neutral heart: every adapter drives conversations through these calls."""

    def __init__(
        self,
        store: Store,
        model: Model,
        rules: Rules,
        *,
        crisis_message: str,
        max_ended_per_day: int = 0,
        blocked_notice_seconds: int = 60,
        context_tokens: int = 20_000,
        max_message_chars: int = 16_000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        raise NotImplementedError

    async def handle(self, inbound: Inbound, reply: ReplyStream) -> Outcome:
        """Handle one message: a reply streamed into `reply`, notices in the outcome.

        A message in an ended conversation never reaches the model. The same
        `inbound.event_id` twice is handled once (the second gets `duplicate=True`).
        If no conversation lives at `inbound.key`, one is started.
        """
        raise NotImplementedError

    async def start_new(self, key: ConversationKey, user_id: str) -> Outcome:
        """Start a fresh conversation at `key` (`/new`); the old one stays as it was.

        The outcome carries a LIMIT notice and no conversation if the operator's limit on
        ended conversations stops this user.
        """
        raise NotImplementedError

    async def end_by_user(self, key: ConversationKey, user_id: str) -> Outcome:
        """The user confirmed the end command: end the conversation at `key` at once."""
        raise NotImplementedError

    async def reopen(self, conversation_id: str, moderator_id: str, note: str = "") -> Conversation:
        """A moderator makes an ended conversation active again (on the record)."""
        raise NotImplementedError

    async def feedback(self, conversation_id: str, user_id: str, text: str) -> None:
        """A user says an end was a mistake (or anything else about it); audited."""
        raise NotImplementedError

    async def branch(
        self,
        conversation_id: str,
        new_key: ConversationKey,
        user_id: str,
        *,
        upto: int | None = None,
        upto_platform_message_id: str | None = None,
    ) -> Conversation:
        """Start a conversation at `new_key` carrying the first messages of another.

        `upto` counts messages (both sides, as `show` lists them); or name the platform
        message to stop at (it is included). Raises ValueError if that message is not in it.
        """
        raise NotImplementedError

    async def find(self, key: ConversationKey) -> Conversation | None:
        """The newest conversation at `key`."""
        raise NotImplementedError

    async def get(self, conversation_id: str) -> Conversation | None:
        raise NotImplementedError

    async def record(self, conversation_id: str) -> tuple[list[StoredMessage], list[AuditEvent]]:
        """A conversation's messages and audit trail, for moderators and the CLI."""
        raise NotImplementedError
