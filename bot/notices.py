"""What the engine asks an adapter to show, and the bot's own words for it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.conversation import Conversation, EndReason, Inbound


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
    """

    kind: NoticeKind
    text: str
    resources: str = ""
    replaces: str = ""
    to: str = ""


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


REFUSAL_DECLINE = "I can't help with that. Is there something else I can do for you?"
WARNING_TEXT = (
    "Heads up: I've had to decline several requests in this conversation. If this "
    "continues, I will end the conversation. You're welcome to ask about something else."
)
MODEL_UNAVAILABLE_TEXT = (
    "I couldn't reach the model just now, so there is no reply yet. Your message is saved; "
    "please try again in a moment."
)
FAILED_TEXT = (
    "Something went wrong on my side, so there is no reply yet. Please try again in a moment."
)
INTERRUPTED_TEXT = "\n\n(This reply was interrupted. Please send your message again.)"
LIMIT_TEXT = (
    "Several of your conversations have ended recently, so you can't start a new one right "
    "now. Please try again later."
)

# What the person kept doing: an end earned by the ladder, said of the conversation ("it")
# or of the person shut out of someone else's ("you").
_KEPT = {
    EndReason.PERSISTENT_HARMFUL_REQUESTS: (
        "kept asking for harmful content after being redirected and warned"
    ),
    EndReason.PERSISTENT_ABUSE: "kept being abusive after being redirected and warned",
}


def end_text(reason: EndReason) -> str:
    """The final notice's reason in plain words."""
    why = "you asked to end it" if reason is EndReason.USER_REQUESTED else f"it {_KEPT[reason]}"
    return f"This conversation has ended because {why}."


BLOCKED_TEXT = "This conversation has ended, so I won't reply here."
PARTICIPANT_WARNING_TEXT = (
    "Heads up: I've had to decline several of your requests in this conversation, which "
    "someone else started. If this continues, you will no longer be able to take part in it. "
    "You're welcome to ask about something else."
)
# Alert-only mode: nobody is told that continuing will end anything, since it won't.
ALERT_WARNING_TEXT = (
    "Heads up: I've had to decline several of your requests in this conversation. You're "
    "welcome to ask about something else."
)
SHUT_OUT_BLOCKED_TEXT = (
    "You can no longer take part in this conversation, so I won't reply to you here. You can "
    "start a conversation of your own at any time."
)
LEFT_TEXT = (
    "You've left this conversation; it goes on for the person who started it. Only they can "
    "end it. You can start a conversation of your own at any time."
)


def shut_out_text(reason: EndReason) -> str:
    """What someone other than the starter is told, privately, when shut out."""
    why = "you asked to leave it" if reason is EndReason.USER_REQUESTED else f"you {_KEPT[reason]}"
    return (
        f"You can no longer take part in this conversation because {why}. "
        "It goes on for the person who started it. You can start a conversation of your own "
        "at any time."
    )


CUT_SHORT_TEXT = (
    "(My reply was cut short: it reached the longest reply I may give. Ask me to go on if "
    "you want the rest.)"
)
CONFIRM_END_TEXT = (
    "Do you want to end this conversation? Nobody will be able to continue it, and you can "
    "start a new one at once."
)
KEEP_GOING_TEXT = "Okay, the conversation goes on."
END_LAPSED_TEXT = "The conversation went on, so ending it is no longer asked."
AFTER_END_TEXT = (
    "Your conversation has ended. You can start a new one at once, or tell the moderators "
    "if you think ending it was a mistake."
)
STARTED_TEXT = "This is your new conversation. What would you like to talk about?"
BRANCHED_TEXT = (
    "This conversation carries an earlier one up to the message you picked. Take it from there."
)
REOPENED_TEXT = "A moderator reopened this conversation. You can continue here."
FEEDBACK_THANKS = "Thank you. Your feedback is on the record, and moderators can review it."


def too_long_text(limit: int) -> str:
    return f"That message is too long for me ({limit:,} characters at most). Nothing was sent."
