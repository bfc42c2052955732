"""The moderators' review queue: ended conversations whose person said "this was a
mistake", and shut-outs (someone other than the starter, shut out of a conversation that
may go on) the person shut out said were a mistake; with what a moderator needs to
decide, and the decision.

The CLI (`quitbot review list|resolve`) and the adapters' moderator commands (through
`Flows.review_queue` / `Flows.resolve_review`) share this one reading of the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.conversation import AuditEvent, Conversation, LadderState, StoredMessage
from bot.engine import Engine


class Decision(StrEnum):
    """What a moderator decides about an end someone called a mistake."""

    REOPEN = "reopen"  # the end was a mistake: the conversation becomes active again
    UPHOLD = "uphold"  # the end (or the shut-out) stands
    READMIT = "readmit"  # the shut-out was a mistake: the person may take part again


@dataclass(frozen=True, slots=True)
class Feedback:
    """One thing a person said about a conversation."""

    user_id: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One conversation awaiting a moderator's decision: its end, or (`shut_out_user_id`
    set) that person's shut-out, when feedback, stated reason and last messages are theirs."""

    conversation: Conversation
    feedback: tuple[Feedback, ...]  # oldest first; the ones since the last decision
    stated_reason: str  # the model's own explanation when it ended it ("" if none)
    last_messages: tuple[StoredMessage, ...]  # the conversation's last few, oldest first
    # Everyone else who wrote in it, and their ladders (shut out: ended).
    participants: Mapping[str, LadderState] = field(default_factory=dict)
    shut_out_user_id: str | None = None

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
        feedback = await _undecided(engine, conversation, events)
        items.append(
            ReviewItem(
                conversation,
                feedback,
                _stated_reason(events),
                tuple(messages[-last:]),
                await engine.participants(conversation.id),
            )
        )
    for conversation, user_id in await engine.disputed_shut_outs(
        platform, limit, community=community
    ):
        items.append(await _shut_out_item(engine, conversation, user_id, last))
    return sorted(items, key=lambda item: item.waiting_since)[:limit]


async def _shut_out_item(
    engine: Engine, conversation: Conversation, user_id: str, last: int
) -> ReviewItem:
    messages, events = await engine.record(conversation.id)
    return ReviewItem(
        conversation,
        await _undecided(engine, conversation, events, user_id),
        _stated_reason(events, user_id),
        tuple([m for m in messages if m.user_id == user_id][-last:]),
        await engine.participants(conversation.id),
        shut_out_user_id=user_id,
    )


@dataclass(frozen=True, slots=True)
class MistakeRate:
    """How often the ladder was wrong, by the moderators' decisions: ends reopened on
    review, and alert-only mode's would-be ends marked wrong, out of all decided."""

    upheld: int = 0
    reopened: int = 0
    would_end_right: int = 0
    would_end_wrong: int = 0
    readmitted: int = 0  # shut-outs a moderator called a mistake

    @classmethod
    def of(cls, decisions: dict[str, int]) -> MistakeRate:
        """From `Store.review_decisions`."""
        return cls(
            decisions.get("upheld", 0),
            decisions.get("reopened", 0),
            decisions.get("would_end_right", 0),
            decisions.get("would_end_wrong", 0),
            decisions.get("readmitted", 0),
        )

    @property
    def decided(self) -> int:
        ends = self.upheld + self.reopened + self.readmitted
        return ends + self.would_end_right + self.would_end_wrong

    @property
    def mistakes(self) -> int:
        return self.reopened + self.readmitted + self.would_end_wrong

    @property
    def rate(self) -> float | None:
        """Mistakes out of all decided; None before any decision."""
        return self.mistakes / self.decided if self.decided else None


def decided(decision: Decision, conversation: Conversation) -> str:
    """How a moderator's answer to their decision begins (the adapters' words alike)."""
    if decision is Decision.UPHOLD:
        return "Upheld the end of" if conversation.ladder.ended else "Upheld the shut-out in"
    if decision is Decision.READMIT:
        return "Readmitted the person shut out of"
    return "Reopened"


async def awaits_decision(
    engine: Engine, conversation: Conversation, shut_out_user_id: str | None = None
) -> bool:
    """Whether the starter called this conversation's end a mistake (or, given a person,
    they called their shut-out one) since the last decision on it: only then is there an
    end or a shut-out to uphold."""
    _, events = await engine.record(conversation.id)
    return bool(await _undecided(engine, conversation, events, shut_out_user_id))


async def disputed_by(engine: Engine, conversation: Conversation) -> list[str]:
    """Who, shut out of this conversation, called that a mistake since it was decided."""
    return [
        user_id
        for user_id, ladder in (await engine.participants(conversation.id)).items()
        if ladder.ended and await awaits_decision(engine, conversation, user_id)
    ]


async def _undecided(
    engine: Engine,
    conversation: Conversation,
    events: list[AuditEvent],
    shut_out_user_id: str | None = None,
) -> tuple[Feedback, ...]:
    """The feedback of whose end it is (the starter, or the person shut out) since the
    last decision on it (and, for a shut-out, since the shut-out itself)."""
    whose = shut_out_user_id or conversation.user_id
    mine = [e for e in events if e.detail.get("participant") == shut_out_user_id]
    decided = _latest(e.at for e in mine if e.kind in {"review", "reopen"})
    shut_out = _latest(e.at for e in mine if e.kind == "participant_shut_out")
    return tuple(
        Feedback(user_id, text, at)
        for user_id, text, at in await engine.feedback_on(conversation.id)
        if user_id == whose
        and (decided is None or at > decided)
        and (shut_out_user_id is None or (shut_out is not None and at >= shut_out))
    )


def _latest(times: Iterable[datetime]) -> datetime | None:
    return max(times, default=None)


def _stated_reason(events: list[AuditEvent], shut_out_user_id: str | None = None) -> str:
    """The explanation the model gave with its last `end_conversation` that ended it (or
    shut this person out)."""
    kind = "participant_shut_out" if shut_out_user_id else "end"
    for event in reversed(events):
        if event.kind == kind and event.detail.get("participant") == shut_out_user_id:
            return str(event.detail.get("explanation", ""))
    return ""
