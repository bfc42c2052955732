"""The moderators' review queue: ended conversations whose person said "this was a
mistake", with what a moderator needs to decide, and the decision.

The CLI (`quitbot review list|resolve`) and the adapters' moderator commands (through
`Flows.review_queue` / `Flows.resolve_review`) share this one reading of the queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.conversation import AuditEvent, Conversation, LadderState, StoredMessage
from bot.engine import Engine


class Decision(StrEnum):
    """What a moderator decides about an end someone called a mistake."""

    REOPEN = "reopen"  # the end was a mistake: the conversation becomes active again
    UPHOLD = "uphold"  # the end stands


@dataclass(frozen=True, slots=True)
class Feedback:
    """One thing a person said about a conversation."""

    user_id: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One conversation awaiting a moderator's decision."""

    conversation: Conversation
    feedback: tuple[Feedback, ...]  # oldest first; the ones since the last decision
    stated_reason: str  # the model's own explanation when it ended it ("" if none)
    last_messages: tuple[StoredMessage, ...]  # the conversation's last few, oldest first
    # Everyone else who wrote in it, and their ladders (shut out: ended).
    participants: Mapping[str, LadderState] = field(default_factory=dict)

    @property
    def redirects(self) -> int:
        return self.conversation.ladder.redirects

    @property
    def waiting_since(self) -> datetime:
        return self.feedback[0].at if self.feedback else self.conversation.updated_at


async def review_queue(
    engine: Engine,
    *,
    platform: str | None = None,
    community: str | None = None,
    limit: int = 20,
    last: int = 4,
) -> list[ReviewItem]:
    """The queue (of one platform and community, when given), longest-waiting first: at
    most `limit` items with their `last` messages."""
    items = []
    for conversation in await engine.awaiting_review(platform, limit, community=community):
        messages, events = await engine.record(conversation.id)
        feedback = await _undecided(engine, conversation.id, events)
        items.append(
            ReviewItem(
                conversation,
                feedback,
                _stated_reason(events),
                tuple(messages[-last:]),
                await engine.participants(conversation.id),
            )
        )
    return items


@dataclass(frozen=True, slots=True)
class MistakeRate:
    """How often the ladder was wrong, by the moderators' decisions: ends reopened on
    review, and alert-only mode's would-be ends marked wrong, out of all decided."""

    upheld: int = 0
    reopened: int = 0
    would_end_right: int = 0
    would_end_wrong: int = 0

    @classmethod
    def of(cls, decisions: dict[str, int]) -> MistakeRate:
        """From `Store.review_decisions`."""
        return cls(
            decisions.get("upheld", 0),
            decisions.get("reopened", 0),
            decisions.get("would_end_right", 0),
            decisions.get("would_end_wrong", 0),
        )

    @property
    def decided(self) -> int:
        return self.upheld + self.reopened + self.would_end_right + self.would_end_wrong

    @property
    def mistakes(self) -> int:
        return self.reopened + self.would_end_wrong

    @property
    def rate(self) -> float | None:
        """Mistakes out of all decided; None before any decision."""
        return self.mistakes / self.decided if self.decided else None


async def awaits_decision(engine: Engine, conversation_id: str) -> bool:
    """Whether someone called this conversation's end a mistake since the last decision on
    it: only then is there an end to uphold."""
    _, events = await engine.record(conversation_id)
    return bool(await _undecided(engine, conversation_id, events))


async def _undecided(
    engine: Engine, conversation_id: str, events: list[AuditEvent]
) -> tuple[Feedback, ...]:
    decided = _last_decision(events)
    return tuple(
        Feedback(user_id, text, at)
        for user_id, text, at in await engine.feedback_on(conversation_id)
        if decided is None or at > decided
    )


def _last_decision(events: list[AuditEvent]) -> datetime | None:
    decisions = [e.at for e in events if e.kind in {"review", "reopen"}]
    return max(decisions) if decisions else None


def _stated_reason(events: list[AuditEvent]) -> str:
    """The explanation the model gave with its last `end_conversation`."""
    for event in reversed(events):
        if event.kind == "end":
            return str(event.detail.get("explanation", ""))
    return ""
