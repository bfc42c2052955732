"""What the engine asks an adapter to show, and the bot's own words for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.conversation import Conversation, EndReason, Inbound
from bot.texts import DEFAULT_TEXTS, TEXTS, TextKey, Texts


class NoticeKind(StrEnum):
    DECLINE = "decline"  # the bot's own decline after an API refusal
    WARNING = "warning"  # continuing will end the conversation
    CRISIS = "crisis"  # crisis resources
    END = "end"  # the conversation has ended: why, and how to start again
    BLOCKED = "blocked"  # a message was sent to an ended conversation
    MODEL_UNAVAILABLE = "model_unavailable"  # could not reach the model; message kept
    LIMIT = "limit"  # the operator's limit on ended conversations was reached
    TOO_LONG = "too_long"  # the message was over the size limit; nothing was sent
    CUT_SHORT = "cut_short"  # the reply stopped at the most tokens a reply may have
    CONFIRM_END = "confirm_end"  # asks the person who started it to confirm ending it
    END_LAPSED = "end_lapsed"  # the model's proposed end went unanswered: no longer asked
    AFTER_END = "after_end"  # to the starter, privately: start again, or say it was a mistake
    STARTED = "started"  # a new conversation (or a branch) starts in this place
    REOPENED = "reopened"  # a moderator reopened the conversation
    SHUT_OUT = "shut_out"  # to someone other than the starter: they may no longer take part
    LEFT = "left"  # to someone other than the starter who asked to end: they left it
    WOULD_END = "would_end"  # alert-only mode: for the mod-log only, never shown in the place


# Shown only to the person concerned (an ephemeral message, a DM), never to the whole place.
PRIVATE = frozenset(
    {
        NoticeKind.BLOCKED,
        NoticeKind.LIMIT,
        NoticeKind.TOO_LONG,
        NoticeKind.AFTER_END,
        NoticeKind.SHUT_OUT,
        NoticeKind.LEFT,
    }
)


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to show, in the bot's own plain words (`text`).

    END and BLOCKED notices say *that* it ended and why; the adapter adds how to start again
    on its platform. An END notice in a conversation flagged for crisis carries the crisis
    resources in `resources`, to be shown as part of the same final notice.

    A notice that `replaces` names an earlier message posted in the place (its platform id)
    takes that message's place, controls and all: an END_LAPSED notice withdraws the end
    confirmation nobody answered, so that no stale button can end the conversation later.

    A notice `to` someone is shown to that person only: in a shared place, the warning and
    crisis resources for someone other than the starter are theirs, not the starter's.

    `words` are the texts in force where it is shown (its community's), for the adapter's
    own parts of it: button labels, titles, how to start again.
    """

    kind: NoticeKind
    text: str
    resources: str = ""
    replaces: str = ""
    to: str = ""
    words: Texts = field(default=DEFAULT_TEXTS, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call into the engine came to.

    `reply` is the assistant text already streamed through the ReplyStream (it may be "");
    `notices` are to be shown after it, in order. `conversation` is the state after the turn.
    """

    conversation: Conversation | None
    reply: str = ""
    notices: tuple[Notice, ...] = ()
    duplicate: bool = False
    # Nothing was done: these messages, received at the same place before, come first.
    earlier: tuple[Inbound, ...] = ()

    @property
    def ended(self) -> bool:
        return self.conversation is not None and self.conversation.ladder.ended

    @property
    def just_ended(self) -> bool:
        return any(n.kind is NoticeKind.END for n in self.notices)

    @property
    def blocked(self) -> bool:
        """The message went to an ended conversation (whether or not a notice is due)."""
        return self.ended and not self.just_ended and not self.duplicate


# The bot's own words (the defaults); `bot.texts` holds them, with the operator's overrides.
_D = {key: text.default for key, text in TEXTS.items()}
REFUSAL_DECLINE = _D[TextKey.DECLINE]
WARNING_TEXT = _D[TextKey.WARNING]
MODEL_UNAVAILABLE_TEXT = _D[TextKey.MODEL_UNAVAILABLE]
FAILED_TEXT = _D[TextKey.FAILED]
INTERRUPTED_TEXT = _D[TextKey.INTERRUPTED]
LIMIT_TEXT = _D[TextKey.LIMIT]
BLOCKED_TEXT = _D[TextKey.BLOCKED]
PARTICIPANT_WARNING_TEXT = _D[TextKey.WARNING_PARTICIPANT]
# Alert-only mode: nobody is told that continuing will end anything, since it won't.
ALERT_WARNING_TEXT = _D[TextKey.WARNING_ALERT]
SHUT_OUT_BLOCKED_TEXT = _D[TextKey.BLOCKED_SHUT_OUT]
LEFT_TEXT = _D[TextKey.LEFT]
CUT_SHORT_TEXT = _D[TextKey.CUT_SHORT]
CONFIRM_END_TEXT = _D[TextKey.CONFIRM_END]
KEEP_GOING_TEXT = _D[TextKey.KEEP_GOING]
END_LAPSED_TEXT = _D[TextKey.END_LAPSED]
AFTER_END_TEXT = _D[TextKey.AFTER_END]
STARTED_TEXT = _D[TextKey.STARTED]
BRANCHED_TEXT = _D[TextKey.BRANCHED]
REOPENED_TEXT = _D[TextKey.REOPENED]
FEEDBACK_THANKS = _D[TextKey.FEEDBACK_THANKS]

_END = {
    EndReason.USER_REQUESTED: TextKey.END_USER_REQUESTED,
    EndReason.PERSISTENT_HARMFUL_REQUESTS: TextKey.END_PERSISTENT_HARMFUL_REQUESTS,
    EndReason.PERSISTENT_ABUSE: TextKey.END_PERSISTENT_ABUSE,
}
_SHUT_OUT = {
    EndReason.USER_REQUESTED: TextKey.SHUT_OUT_USER_REQUESTED,
    EndReason.PERSISTENT_HARMFUL_REQUESTS: TextKey.SHUT_OUT_PERSISTENT_HARMFUL_REQUESTS,
    EndReason.PERSISTENT_ABUSE: TextKey.SHUT_OUT_PERSISTENT_ABUSE,
}


def end_text(reason: EndReason, texts: Texts = DEFAULT_TEXTS) -> str:
    """The final notice's reason in plain words."""
    return texts.get(_END[reason])


def shut_out_text(reason: EndReason, texts: Texts = DEFAULT_TEXTS) -> str:
    """What someone other than the starter is told, privately, when shut out."""
    return texts.get(_SHUT_OUT[reason])


def too_long_text(limit: int, texts: Texts = DEFAULT_TEXTS) -> str:
    return texts.get(TextKey.TOO_LONG, limit=limit)


def say(texts: Texts, kind: NoticeKind, key: TextKey, **values: Any) -> Notice:
    """A notice in the words in force (`texts`: a community's, or the operator's), which
    go with it so that the adapter labels its buttons in the same words."""
    return Notice(kind, texts.get(key, **values), words=texts)
