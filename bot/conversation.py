"""The core's vocabulary: where a conversation lives, what arrives, what it has become."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple


class EndReason(StrEnum):
    """Why a conversation ended; the values are the `end_conversation` tool's contract."""

    PERSISTENT_HARMFUL_REQUESTS = "persistent_harmful_requests"
    PERSISTENT_ABUSE = "persistent_abuse"
    USER_REQUESTED = "user_requested"


class ConcernKind(StrEnum):
    """What the model noted; the values are the `note_concern` tool's contract."""

    HARMFUL_REQUEST = "harmful_request"
    ABUSE = "abuse"
    SELF_HARM_RISK = "self_harm_risk"
    HARM_TO_OTHERS_RISK = "harm_to_others_risk"


class Actor(StrEnum):
    """Who caused something that goes on the record."""

    USER = "user"
    MODEL = "model"
    MODERATOR = "moderator"
    BOT = "bot"


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation lives: `place` is unique within `platform`.

    Adapters choose `place` (a Discord thread id, a Slack `channel:thread_ts`, a console
    session name); the core only compares keys.
    """

    platform: str
    place: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a user sent. Text is read (up to a limit), images go to Claude, others are named."""

    name: str
    media_type: str
    data: bytes = b""
    size: int = 0


@dataclass(frozen=True, slots=True)
class FileRef:
    """Where a file a user sent can be read, kept with the message until its turn (never
    the file's contents). `locator` is the adapter's own (a download URL): the core only
    keeps it and hands it back to the adapter that made it.
    """

    name: str
    media_type: str
    size: int = 0
    locator: str = ""

    def __post_init__(self) -> None:
        for name in ("name", "media_type", "locator"):
            object.__setattr__(self, name, storable(getattr(self, name)))

    def unread(self) -> Attachment:
        """The file only named: what the model is told of a file that could not be read."""
        return Attachment(self.name, self.media_type, b"", self.size)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a person, normalised by an adapter.

    Its text is made safe to store on construction: a lone UTF-16 surrogate (which no
    platform should send, but a client bug or a fuzzer can) becomes U+FFFD instead of
    failing the database insert after the platform was told the message arrived.
    """

    key: ConversationKey
    event_id: str
    user_id: str
    text: str
    message_id: str = ""
    attachments: tuple[Attachment, ...] = ()
    # The server or workspace it came from (a Discord guild id, a Slack team id), whose own
    # settings apply to the conversation it starts; "" for none (a DM, the console).
    community: str = ""
    # Where its files can be read again: kept with the message, so that a message answered
    # after a restart still has them (`attachments` are read only when its turn comes).
    files: tuple[FileRef, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", storable(self.text))


def storable(text: str) -> str:
    """`text` with any lone surrogate replaced by U+FFFD, so it encodes as UTF-8."""
    if text.isascii():  # no surrogate, and no copy made to find out
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 joins a well-formed pair back into one character; only lone halves are replaced.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


@dataclass(frozen=True, slots=True)
class LadderState:
    """The escalation ladder's whole state for one conversation."""

    redirects: int = 0
    warned: bool = False
    crisis: bool = False
    ended: bool = False
    ended_by: Actor | None = None
    ended_reason: EndReason | None = None
    # The model proposed ending on the person's behalf and the bot asked them to confirm;
    # cleared when they confirm, decline, or simply write on (the proposal lapses).
    end_proposed: bool = False


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation as stored: identity, place, ladder state, timestamps."""

    id: str
    key: ConversationKey
    user_id: str
    ladder: LadderState
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    branched_from: str | None = None
    community: str = ""  # whose per-community settings apply ("" = the process-wide ones)

    @property
    def state(self) -> str:
        return "ended" if self.ladder.ended else "active"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message as a person sees it: a user's message or the assistant's whole turn.

    `api` holds the Messages API messages it contributes to the model's context: one user
    message, or for an assistant turn its text and tool_use blocks with the tool_results
    that answered them. `seq` counts from 1 in the order `show` lists them.
    """

    seq: int
    role: str  # "user" | "assistant"
    text: str
    api: list[dict[str, Any]]
    at: datetime
    user_id: str = ""
    platform_message_id: str = ""
    in_context: bool = True  # False for a refused turn, which must never be sent again


class ContextEntry(NamedTuple):
    """A stored message as the model's context needs it: its API messages still the JSON
    text the store keeps (`StoredMessage.api` encoded). Most are sent on as that text,
    never decoded (see bot/context.py).

    A named tuple, not a frozen dataclass: every turn reads up to 60 of these, and a frozen
    dataclass's `__init__` sets each field through `object.__setattr__` (about twice the
    cost of a tuple's, on the store's thread, which holds the GIL meanwhile; bench/README.md,
    issue 22's fourth round)."""

    seq: int
    role: str  # "user" | "assistant"
    api_json: str
    in_context: bool = True


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of a conversation's record: who, when, why, and the platform message ids."""

    kind: str
    at: datetime
    actor: Actor
    detail: dict[str, Any] = field(default_factory=dict)
