"""What the core needs from the outside world: small protocols, one per neighbour."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bot.communities import CommunitySettings
from bot.conversation import (
    Attachment,
    AuditEvent,
    ContextEntry,
    Conversation,
    ConversationKey,
    FileRef,
    Inbound,
    LadderState,
    StoredMessage,
)
from bot.notices import Notice

# --- the adapter's side ------------------------------------------------------------------


ReplyShown = Callable[[str, bool], Awaitable[None]]
"""What a reply stream tells as its reply reaches the place: (the platform id of its first
message, whether the place now shows all of it)."""


@dataclass(frozen=True, slots=True)
class ShownReply:
    """A reply an earlier attempt at a turn showed in the place before its process stopped:
    the platform id of its first message, and whether the platform had taken all of it."""

    reply_id: str
    complete: bool


class ReplyStream(Protocol):
    """Where the engine streams one reply; an adapter makes one per inbound message."""

    def track(self, answering: str, shown: ReplyShown) -> None:
        """The reply answers the platform's message `answering`. Await `shown(id, complete)`
        once the platform has the reply's first message (`complete` if that one post held
        all of it), and `shown(id, True)` once the platform has all of it (a stream stopped,
        the last edit made): so that a process killed before the turn's commit leaves word
        of what the place already shows. Where the platform can keep a mark on the reply
        itself, saying whom it answers (Slack's message metadata), put it on the message
        that completes it: `Place.marked_reply` finds it with no word from the store."""

    async def thinking(self) -> None:
        """The model is about to be asked: show a typing indicator or status."""

    async def text(self, delta: str) -> None:
        """More reply text arrived; the adapter decides how often to render it."""

    async def done(self) -> str:
        """The reply is complete; return the platform id of its (first) message, or ""."""

    async def close(self) -> None:
        """The turn is over, whatever happened: stop anything still running (typing)."""


class Place(Protocol):
    """One conversation's place on a platform (a Discord thread or DM, a Slack thread, a
    terminal session): everything the core's flows do there goes through these calls.

    Rendering is the adapter's business: it decides how a notice looks and which controls
    it carries, so that every control it shows can be used where it is shown.
    """

    def reply(self) -> ReplyStream:
        """A fresh stream for one reply in this place."""
        ...

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        """Show `notice` to everyone in the place; its platform message id, or ""."""
        ...

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        """Show `notice` to one person only (an ephemeral message, a DM)."""
        ...

    async def close(self, conversation: Conversation) -> None:
        """The conversation ended: stop people posting here where the platform can (lock
        the thread), or at least mark the place as ended."""
        ...

    async def reopen(self, conversation: Conversation) -> str:
        """Undo `close` after a moderator reopened it; "" or what went wrong, in plain words."""
        ...

    async def reply_after(self, message_id: str, reply_id: str) -> str | None:
        """The text of the bot's reply to `message_id` that begins with message `reply_id`
        (its later parts too), read from the platform's messages after `message_id`; None
        when it is not there any more or the platform would not say."""
        ...

    async def marked_reply(self, message_id: str) -> tuple[str, str] | None:
        """A complete reply to `message_id` that carries the platform's own mark of it (see
        `ReplyStream.track`), as (its first message's id, its text), for when the store has
        no word of it (the run died right after posting); None where the platform keeps no
        such mark or none is there."""
        ...

    async def cut_short(self, message_id: str, reply_id: str) -> None:
        """The reply to `message_id` beginning with `reply_id` was left half-shown by a process
        that stopped: mark it as cut short where the platform allows (the answer is given
        anew below it)."""
        ...


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which conversations a list holds besides state, platform and community (None: any):
    how they ended, who started them, when (at or after `since`, before `before`)."""

    ended_reason: str | None = None
    user_id: str | None = None
    since: datetime | None = None
    before: datetime | None = None


class QuietPlace:
    """A place that shows nothing and closes nothing, for flows run where no platform is
    (evaluations, a dashboard without the platform's token); `reply` is the user's."""

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        return ""

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        return None

    async def close(self, conversation: Conversation) -> None:
        return None

    async def reopen(self, conversation: Conversation) -> str:
        return ""

    async def reply_after(self, message_id: str, reply_id: str) -> str | None:
        return None

    async def marked_reply(self, message_id: str) -> tuple[str, str] | None:
        return None

    async def cut_short(self, message_id: str, reply_id: str) -> None:
        return None


class Places(Protocol):
    """How the core reaches a conversation's place that no event is in flight for
    (a moderator reopening another thread, a feedback form sent from a DM), and the
    files of a message no event is in flight for (kept by a run that stopped)."""

    def place(self, key: ConversationKey) -> Place: ...

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        """The files as the model gets them, read within the platform's limits; one that
        cannot be read any more (gone, expired) is only named (`FileRef.unread`)."""
        ...


class ModLogKind(StrEnum):
    ENDED = "ended"
    REOPENED = "reopened"
    FEEDBACK = "feedback"
    SHUT_OUT = "shut_out"  # someone other than the starter may no longer take part
    WOULD_END = "would_end"  # alert-only mode: where the ladder would have ended


@dataclass(frozen=True, slots=True)
class ModLogEntry:
    """One line for the moderators' log channel: what happened to which conversation."""

    kind: ModLogKind
    conversation: Conversation
    # the moderator who reopened it, the person giving feedback, or the person shut out
    actor_id: str = ""
    text: str = ""  # the reopen note, the feedback, or why someone was shut out
    message_id: str = ""  # the platform message to link to (the final notice), if any


class ModLog(Protocol):
    """The moderators' log channel; writing to it never fails the flow that wrote."""

    async def write(self, entry: ModLogEntry) -> None: ...


class PlatformUnavailable(Exception):
    """A platform adapter cannot start or go on (a refused token, a port in use, no network).

    Its message says in plain words what is wrong and what to do; `quitbot run` prints it
    and exits non-zero instead of showing a traceback.
    """


class PlatformUnreachable(PlatformUnavailable):
    """The platform could not be reached (network, DNS, an outage), which may pass:
    `quitbot run` tries again a few times, with a growing pause, before it gives up."""


# --- the model's side --------------------------------------------------------------------


class DatabaseUnavailable(Exception):
    """A Store call failed because the database server does not answer (stopped, restarting,
    the network down): nothing of that call was kept, and it may work once the server is
    back. The store says once that it went away and once that it is back, so callers need not
    log each failure."""


class ModelUnavailable(Exception):
    """The model API could not be reached (after the SDK's own retries) or rejected us."""


@dataclass(frozen=True, slots=True)
class Usage:
    """The tokens one Messages API response was billed for (the API's `usage`)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One Messages API response, assembled from the stream."""

    content: list[dict[str, Any]]  # assistant content blocks: text and tool_use
    stop_reason: str
    stop_details: dict[str, Any] | None = None
    usage: Usage = Usage()

    @property
    def refused(self) -> bool:
        return self.stop_reason == "refusal"

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [block for block in self.content if block.get("type") == "tool_use"]


TextSink = Callable[[str], Awaitable[None]]


class Model(Protocol):
    """Claude behind one call: the system prompt, tools and caching are the model's business."""

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        """Stream one response to `messages`, passing text deltas to `on_text`.

        Text that follows an `end_conversation` tool_use block is not passed on.
        Raises ModelUnavailable when the API cannot answer. `messages` is read-only; the
        engine passes a `bot.context.Context`, whose stored messages a model that posts
        JSON can send on as text (`Context.json_items`) instead of reading them.
        """
        ...


# --- the operator's side ----------------------------------------------------------------


class Observer(Protocol):
    """What the core reports as it goes, for metrics: one call per thing that happened.

    The engine calls it at its one choke point, the commit of a turn's audit events, so
    every metric agrees with the record. Calls must be cheap and must not raise.
    """

    def received(self, platform: str) -> None:
        """A person's message was taken in (not a duplicate delivery)."""

    def replied(self, platform: str) -> None:
        """The assistant answered (with text, or the bot's own decline)."""

    def blocked(self, platform: str) -> None:
        """A message arrived in an ended conversation; no model call was made."""

    def recorded(self, platform: str, events: Sequence[AuditEvent]) -> None:
        """Audit events were committed for a conversation on `platform`."""

    def model_call(self, first_token: float | None, total: float, usage: Usage) -> None:
        """One Messages API response: seconds to its first text (None without text), to
        its end, and the tokens it used."""

    def model_error(self, kind: str) -> None:
        """A model call failed; `kind` is the error's class in snake case."""

    def platform_error(self, platform: str, operation: str) -> None:
        """A call to the platform's API failed (`operation` says what was attempted)."""

    def hook_failed(self, hook: str, why: str) -> None:
        """An event hook failed on one event: `why` is error, timeout or dropped."""

    def webhook(self, target: str, outcome: str) -> None:
        """One webhook request (or its end): `outcome` is delivered, failed or given_up."""


class NoObserver:
    """Observes nothing: the default when no metrics are wanted (tests, operator commands)."""

    def received(self, platform: str) -> None:
        return None

    def replied(self, platform: str) -> None:
        return None

    def blocked(self, platform: str) -> None:
        return None

    def recorded(self, platform: str, events: Sequence[AuditEvent]) -> None:
        return None

    def model_call(self, first_token: float | None, total: float, usage: Usage) -> None:
        return None

    def model_error(self, kind: str) -> None:
        return None

    def platform_error(self, platform: str, operation: str) -> None:
        return None

    def hook_failed(self, hook: str, why: str) -> None:
        return None

    def webhook(self, target: str, outcome: str) -> None:
        return None


# --- the store's side --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; the store numbers it."""

    role: str
    text: str
    api: list[dict[str, Any]]
    at: datetime
    user_id: str = ""
    platform_message_id: str = ""
    in_context: bool = True


# Keys of an audit event's detail that hold free text (what a person wrote as feedback, a
# moderator's note, the model's explanation): retention and forgetting remove these and
# keep the rest (kinds, reasons, ids, counts).
EVENT_TEXT_KEYS = ("text", "note", "explanation")


@dataclass(frozen=True, slots=True)
class Purged:
    """What a retention purge or a forget removed (or emptied), by table."""

    messages: int = 0
    feedback: int = 0
    events: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.messages + self.feedback + self.events + self.pending


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """Everything the store keeps that names one person on one platform."""

    conversations: list[Conversation]  # the ones they started, oldest first
    messages: list[tuple[str, StoredMessage]]  # (conversation id, message) they wrote anywhere
    feedback: list[tuple[str, str, datetime]]  # (conversation id, text, at)
    # Received but not yet answered (a turn under way, or a run that stopped first).
    waiting: list[Inbound] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CommunityRecord:
    """One community's stored settings, and who changed them last."""

    platform: str
    community: str
    settings: CommunitySettings
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class AtPlace:
    """See `Store.at_place`."""

    conversation: Conversation | None
    others: dict[str, LadderState] = field(default_factory=dict)
    # Received before the message at hand, oldest first: the receipt order is the turn
    # order, whichever process received them.
    earlier: tuple[Inbound, ...] = ()
    # The own settings of the conversation's community (the message's, before there is a
    # conversation), if it has any: read with the rest, as every turn needs them.
    community: CommunitySettings | None = None


@dataclass(frozen=True, slots=True)
class Outbox:
    """Which committed audit events the store also queues for delivery, and to where: each
    event of one of `kinds` gets a row per target in the same transaction as the event, so
    nothing recorded is lost to a crash between the commit and its delivery."""

    targets: tuple[str, ...] = ()  # stable names of the destinations (digests of URLs)
    kinds: frozenset[str] = frozenset()

    def targets_for(self, events: Sequence[AuditEvent]) -> list[tuple[str, ...]]:
        """For each event, the targets it is queued for (none for a kind not sent)."""
        return [self.targets if event.kind in self.kinds else () for event in events]


NO_OUTBOX = Outbox()  # queue nothing: no webhooks configured


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued audit event claimed for delivery to one target, with its conversation.

    `event_id` is the event's number in the database: unique, and the same at every retry
    (a receiver dedupes on it). `attempts` counts this claim too.
    """

    event_id: int
    target: str
    attempts: int
    conversation_id: str
    key: ConversationKey
    community: str
    event: AuditEvent


class BlockedOutcome(StrEnum):
    DUPLICATE = "duplicate"  # this platform event was already handled
    NOTIFY = "notify"  # tell the poster the conversation has ended
    QUIET = "quiet"  # told recently; say nothing


class Receipts(Protocol):
    """What acknowledging a just-delivered message needs of the store (see `Store.receive`
    and `Store.in_use`)."""

    async def receive(self, inbound: Inbound, at: datetime) -> bool: ...

    async def in_use(self, key: ConversationKey) -> bool: ...


@runtime_checkable
class ReceivesAnywhere(Protocol):
    """A store whose receipts can be awaited from an event loop on another thread than the
    one it was opened on (a platform's listener of its own)."""

    def anywhere(self) -> Receipts: ...


class Store(Protocol):
    """Persistence of conversations, messages, audit events, processed events and feedback."""

    def serialised(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Hold the conversation at `key` against every other holder, in this process and in
        every other process sharing the database, until the block exits.

        A process that dies holding it (even by SIGKILL) lets it go at once.
        """
        ...

    async def current(self, key: ConversationKey) -> Conversation | None:
        """The newest conversation at `key`, if any."""
        ...

    async def in_use(self, key: ConversationKey) -> bool:
        """Whether a conversation lives at `key`, or a message received there waits to start
        one (received by any process sharing the database)."""
        ...

    async def at_place(self, inbound: Inbound) -> AtPlace:
        """What a turn for `inbound` starts from, read together (every message needs it all):
        the conversation at its place, everyone else's ladders, the messages received
        at that place before it and not answered yet, and its community's own settings."""
        ...

    def serialised_at(self, inbound: Inbound) -> AbstractAsyncContextManager[AtPlace]:
        """`serialised(inbound.key)`, giving `at_place(inbound)` as read once it is held
        (after the commit of every turn that held it before): in one round trip where the
        store can, as every message's turn needs both."""
        ...

    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def create(
        self,
        key: ConversationKey,
        user_id: str,
        at: datetime,
        *,
        branched_from: str | None = None,
        history: Sequence[NewMessage] = (),
        events: Sequence[AuditEvent] = (),
        community: str = "",
    ) -> Conversation: ...

    async def receive(self, inbound: Inbound, at: datetime) -> bool:
        """Claim a just-delivered event and keep its message (with its `files`, where to
        read them; never their contents) until a turn takes it, in one small write; False,
        storing nothing, if the event was received before."""
        ...

    async def settle(self, inbound: Inbound) -> None:
        """Forget a received message that will never be stored (the limit stopped it)."""
        ...

    async def reply_shown(self, inbound: Inbound, reply_id: str, complete: bool) -> None:
        """Note, with the received message, that the platform shows its reply as `reply_id`
        (all of it when `complete`), until the turn's commit; nothing once it committed."""
        ...

    async def shown(self, inbound: Inbound) -> ShownReply | None:
        """The reply an earlier attempt at `inbound` showed (`reply_shown`), if any."""
        ...

    async def pending(self, before: datetime) -> list[Inbound]:
        """Messages received before `before` but never handled (the process that received
        them stopped first), oldest first."""
        ...

    async def begin_turn(
        self, conversation_id: str, inbound: Inbound, message: NewMessage
    ) -> StoredMessage | None:
        """Claim the inbound event (or find it among those received) and store the user's
        message in one transaction. A received message stays received until `commit_turn`
        answers it; if a turn for it began before (its process died), the message stored
        then is returned and nothing is stored again.

        Returns None, storing nothing, if the platform event was handled before.
        """
        ...

    async def begin_turn_with_context(
        self, conversation_id: str, inbound: Inbound, message: NewMessage, limit: int
    ) -> tuple[StoredMessage, list[ContextEntry]] | None:
        """`begin_turn`, then what `recent_context(conversation_id, limit)` would return
        after it, the user's message included, together (a turn needs both)."""
        ...

    async def commit_turn(
        self,
        conversation_id: str,
        ladder: LadderState,
        at: datetime,
        messages: Sequence[NewMessage] = (),
        events: Sequence[AuditEvent] = (),
        exclude_seq: int | None = None,
        answered: Inbound | None = None,
        participant: tuple[str, LadderState] | None = None,
    ) -> Conversation:
        """Store the turn's messages, the new ladder state and its events in one transaction.

        `exclude_seq` marks that earlier message as out of context (a refused turn);
        `answered` (the message the turn answered) leaves the received ones with it;
        `participant` (user id, ladder) is the ladder of someone other than the starter
        whose message the turn answered (shut out when it has ended).
        """
        ...

    async def participants(self, conversation_id: str) -> dict[str, LadderState]:
        """The ladder of each person other than the starter who wrote in the conversation."""
        ...

    async def record_blocked(
        self, conversation_id: str, inbound: Inbound, at: datetime, quiet: timedelta
    ) -> BlockedOutcome:
        """Claim a message sent to an ended conversation; decide whether to notify its poster."""
        ...

    async def recent_context(self, conversation_id: str, limit: int) -> list[ContextEntry]:
        """The newest `limit` messages, oldest first, as the model's context needs them."""
        ...

    async def messages(self, conversation_id: str) -> list[StoredMessage]: ...

    async def events(self, conversation_id: str) -> list[AuditEvent]: ...

    async def add_events(self, conversation_id: str, events: Sequence[AuditEvent]) -> None: ...

    async def add_feedback(
        self,
        conversation_id: str,
        user_id: str,
        text: str,
        at: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Keep what a user said about a conversation, with its audit `events`, at once."""
        ...

    async def list_conversations(
        self,
        *,
        state: str | None = None,
        platform: str | None = None,
        limit: int = 100,
        community: str | None = None,
        offset: int = 0,
        more: ListFilter = ListFilter(),
    ) -> list[Conversation]:
        """Newest first; only `state`, `platform`, `community` and what `more` asks when
        given; `offset` skips that many (a page of a longer list)."""
        ...

    async def ended_count(self, platform: str, user_id: str, since: datetime) -> int:
        """How many ends this person earned since then: their own conversations ended (not
        at their request), and the conversations of others they were shut out of."""
        ...

    async def forget_events_before(self, before: datetime) -> int:
        """Drop processed platform event ids older than `before`; how many were dropped.

        Platforms retry an event within minutes, so old ids only take up space.
        """
        ...

    async def feedback(self, conversation_id: str) -> list[tuple[str, str, datetime]]:
        """(user_id, text, at) of each feedback row, oldest first."""
        ...

    async def purge_text(self, before: datetime) -> Purged:
        """Empty the text of every message older than `before` (its text and API content;
        it leaves the model's context), of feedback, and the `EVENT_TEXT_KEYS` of audit
        events; drop messages received before then and never handled. One transaction."""
        ...

    async def forget_user(self, platform: str, user_id: str, event: AuditEvent) -> Purged:
        """Delete what one person wrote on `platform`: their messages everywhere, the replies
        in conversations they started, their feedback and unhandled messages, and the
        `EVENT_TEXT_KEYS` of the audit events about them; then add `event` (which must carry
        no content) to every conversation this touched. One transaction."""
        ...

    async def person(self, platform: str, user_id: str) -> PersonRecord:
        """Everything kept that names this person (for a data export)."""
        ...

    async def community_settings(self, platform: str, community: str) -> CommunitySettings | None:
        """A community's own settings (None: it has none)."""
        ...

    async def set_community_settings(
        self, platform: str, community: str, settings: CommunitySettings, at: datetime, by: str
    ) -> None:
        """Replace a community's settings, remembering when and by whom."""
        ...

    async def communities(self, platform: str | None = None) -> list[CommunityRecord]:
        """Every community with settings of its own."""
        ...

    async def awaiting_review(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Ended conversations (on `platform` and in `community`, or any) with feedback that
        no `review` or `reopen` event has answered since, the longest-waiting first."""
        ...

    async def disputed_shut_outs(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[tuple[Conversation, str]]:
        """(conversation, person) for each shut-out that person called a mistake since it
        was last decided (a `review` event naming them), the longest-waiting first."""
        ...

    async def awaiting_marks(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Conversations with a `would_end` (alert-only mode) that no `review` event has
        marked since, the longest-waiting first."""
        ...

    async def review_decisions(self, since: datetime) -> dict[str, int]:
        """How many `review` events since then, by their `decision`."""
        ...

    async def daily_activity(
        self, platform: str, community: str, since: datetime
    ) -> list[tuple[str, str, int]]:
        """(UTC day as YYYY-MM-DD, series, count) for one community since then: series
        `conversation` (started), `redirect`, `warning`, `crisis_flagged`, `end:<reason>`,
        `feedback` (someone called an end a mistake) and `review:<decision>`."""
        ...

    async def claim_outbox(
        self, targets: Sequence[str], now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxItem]:
        """Take up to `limit` queued events for `targets` that are due at `now`, oldest first,
        and hold them for `lease` (no other claim, in any process, takes them meanwhile; a
        process that dies lets them go when the lease runs out). Each claim counts an
        attempt."""
        ...

    async def outbox_done(self, items: Sequence[tuple[int, str]]) -> None:
        """Forget these (event_id, target) rows: delivered, or given up on."""
        ...

    async def outbox_retry(self, items: Sequence[tuple[int, str]], due: datetime) -> None:
        """Let these (event_id, target) rows be claimed again from `due` on."""
        ...

    async def close(self) -> None: ...
