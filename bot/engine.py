"""One inbound message -> dedupe, ended gate, per-conversation lock, model, policy, effects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from bot.communities import BadCommunitySettings, CommunitySettings
from bot.context import build_context, participant_label, user_content
from bot.conversation import (
    Actor,
    AuditEvent,
    Conversation,
    ConversationKey,
    EndReason,
    Inbound,
    LadderState,
    StoredMessage,
)
from bot.hooks import Hooks
from bot.logs import about
from bot.notices import LIMIT_TEXT, Notice, NoticeKind, Outcome, say
from bot.policy import Effect, EndRequest, KeepGoing, Reopen, Rules, Speaker, transition
from bot.ports import (
    BlockedOutcome,
    DatabaseUnavailable,
    ListFilter,
    Model,
    NewMessage,
    NoObserver,
    Observer,
    Place,
    Receipts,
    ReceivesAnywhere,
    ReplyStream,
    Store,
)
from bot.readiness import Readiness
from bot.recovery import Recovery
from bot.texts import DEFAULT_TEXTS, TextKey, Texts, usable
from bot.turn import Turn, TurnResult, effect_entry
from bot.usertools import Tool, ToolBox, ToolContext

log = logging.getLogger(__name__)
T = TypeVar("T")

# Audit events worth a log line at INFO, and the parts of their detail that are not text
# anyone wrote (notes, explanations and feedback stay in the record, out of the logs).
_LOGGED = frozenset(
    {
        "redirect",
        "warning",
        "end_declined",
        "end",
        "crisis_flagged",
        "reopen",
        "feedback",
        "review",
        "model_unavailable",
        "end_proposed",
        "end_proposal_lapsed",
        "branched",
        "participant_shut_out",
        "participant_left",
        "participant_readmitted",
        "would_end",
        "tool_call",
        "reply_adopted",
    }
)
_LOGGED_DETAIL = (
    "kind",
    "reason",
    "why",
    "redirects",
    "message_id",
    "error",
    "decision",
    "tool",
    "ok",
    "duration_ms",
    "failure",
    "reply_id",
)

# The audit event that keeps the platform id of the end confirmation shown for the model's
# proposal: the turn that sees the proposal lapse may run in another process, or after a
# restart, and must still find the confirmation to withdraw it.
CONFIRMATION_SHOWN = "end_confirmation_shown"

# A moderator's marks on what alert-only mode would have ended (`review` event decisions).
WOULD_END_RIGHT = "would_end_right"
WOULD_END_WRONG = "would_end_wrong"
_NEWCOMER = LadderState()  # someone other than the starter, writing here for the first time
_HISTORY_LIMIT = 60  # stored messages read per turn (bounds CPU); the token budget trims further


class ConversationNotFound(LookupError):
    """No conversation has that id (or lives at that key)."""


class NotTheStarter(PermissionError):
    """Only the person who started a conversation may end it with the end command."""


class NotProposed(LookupError):
    """The end confirmation answered was the model's proposal, and no proposal is open any
    more (the person wrote on): answering it ends nothing."""


class LimitReached(Exception):
    """The operator's limit on ended conversations stops this user starting another."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's knobs, taken from Settings by the composition root."""

    rules: Rules = field(default_factory=Rules)
    crisis_message: str = ""
    max_ended_per_day: int = 0
    blocked_notice_seconds: int = 60
    context_tokens: int = 20_000
    max_message_chars: int = 16_000
    texts: Texts = DEFAULT_TEXTS  # the operator's words (QUITBOT_TEXTS)


def may_end(conversation: Conversation, user_id: str) -> bool:
    """Whether `user_id` may end `conversation` with the end command: only its starter may,
    so one member of a shared thread cannot close everyone's conversation."""
    return conversation.user_id == user_id


def _limit(texts: Texts) -> Outcome:
    return Outcome(None, notices=(say(texts, NoticeKind.LIMIT, TextKey.LIMIT),))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Knobs:
    """What one conversation's turns run with (its community's settings, or the defaults)."""

    model: Model
    rules: Rules
    crisis_message: str
    tools: Mapping[str, Tool[Any]] = field(default_factory=dict)
    texts: Texts = DEFAULT_TEXTS


# A model for a community's own instructions (None: the operator's) and user tools.
ModelFor = Callable[[str | None, tuple[str, ...]], Model]


@dataclass(frozen=True, slots=True)
class Reception:
    """Keeping just-delivered messages through `receipts` (see `Engine.receive`)."""

    receipts: Receipts
    max_message_chars: int
    clock: Callable[[], datetime]

    async def receive(self, inbound: Inbound) -> bool:
        if len(inbound.text) > self.max_message_chars:
            return True
        kept = await self.receipts.receive(inbound, self.clock())
        if kept:
            log.debug("kept %s for %s", inbound.event_id, inbound.key.place)
        return kept

    async def in_use(self, key: ConversationKey) -> bool:
        return await self.receipts.in_use(key)


class Engine:
    """The platform-neutral heart: every adapter drives conversations through these calls.

    Messages in one conversation are handled one at a time, different conversations
    concurrently. Nothing about a conversation stays in memory after its turn.

    `observer` hears of every message, reply and committed audit event (metrics);
    `readiness` is where adapters report that their platform is connected (/readyz);
    `hooks` hear of every committed audit event of their kinds, after the commit.
    """

    def __init__(
        self,
        store: Store,
        model: Model,
        config: EngineConfig,
        *,
        clock: Callable[[], datetime] = _utcnow,
        observer: Observer | None = None,
        readiness: Readiness | None = None,
        model_for: ModelFor | None = None,
        toolbox: ToolBox | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self._store = store
        self._model = model
        self._config = config
        self._clock = clock
        self.observer: Observer = observer or NoObserver()
        self.readiness = readiness or Readiness()
        self.hooks = hooks or Hooks(observer=self.observer)
        # A model whose request carries a community's own instructions instead of the
        # operator's, or its own choice of tools (None: neither is applied).
        self._model_for = model_for
        self.toolbox = toolbox or ToolBox()
        self._started = clock()
        self._reception = Reception(store, config.max_message_chars, clock)

    def _serialised(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        # The store holds the lock, so that it holds across every process on the database.
        return self._store.serialised(key)

    async def handle(
        self,
        inbound: Inbound,
        reply: ReplyStream,
        *,
        in_order: bool = True,
        recover: Place | None = None,
    ) -> Outcome:
        """Handle one message: a reply streamed into `reply`, notices in the outcome.

        A message in an ended conversation never reaches the model. The same
        `inbound.event_id` twice is handled once (the second gets `duplicate=True`).
        If no conversation lives at `inbound.key`, one is started.

        The receipt order is the turn order, across every process on the database: while
        messages received at the same place before this one wait (`in_order`), nothing is
        done and the outcome's `earlier` names them, to be handled first.

        With `recover` (the message's place: it was received by a run that stopped, or by
        another process), a reply that an earlier attempt showed in full is adopted as the
        turn's reply without asking the model again (`Recovery`), and one it left half-shown
        is marked as cut short there before the message is answered anew.
        """
        # Everyone else's ladder too: whose turn it is decides whose ladder climbs, and
        # anyone at risk keeps the model from ending the conversation.
        async with self._store.serialised_at(inbound) as at:
            if in_order and at.earlier:
                return Outcome(at.conversation, earlier=at.earlier)
            conversation, others = at.conversation, at.others
            if conversation is not None and conversation.ladder.ended:
                with about(conversation.id):
                    return await self._blocked(conversation, inbound)
            if conversation is not None and others.get(inbound.user_id, _NEWCOMER).ended:
                with about(conversation.id):
                    return await self._blocked(conversation, inbound, shut_out=True)
            if len(inbound.text) > self._config.max_message_chars:
                self.observer.received(inbound.key.platform)
                words = await self.words(inbound.key.platform, inbound.community)
                limit = self._config.max_message_chars
                notice = say(words, NoticeKind.TOO_LONG, TextKey.TOO_LONG, limit=limit)
                return Outcome(conversation, notices=(notice,))
            if conversation is None:
                try:
                    conversation = await self._create(
                        inbound.key, inbound.user_id, community=inbound.community
                    )
                except LimitReached:
                    self.observer.received(inbound.key.platform)
                    await self._store.settle(inbound)
                    return _limit(await self.words(inbound.key.platform, inbound.community))
            with about(conversation.id):
                return await self._turn(conversation, inbound, reply, others, at.community, recover)

    async def receive(self, inbound: Inbound) -> bool:
        """Keep a just-delivered message durably, before the platform is told it arrived, so
        a crash at any instant after that loses nothing (`pending` finds it again).

        Cheap (one small write, no lock) so that acknowledging stays fast; False if the event
        came before. A message too long to accept is not kept: `handle` says so.
        """
        return await self._reception.receive(inbound)

    async def pending(self) -> list[Inbound]:
        """Messages received before this engine started but never handled (a crash, a
        kill), oldest first. Later ones belong to turns under way, here or in another
        process sharing the database."""
        return await self._store.pending(self._started)

    async def _blocked(
        self, conversation: Conversation, inbound: Inbound, *, shut_out: bool = False
    ) -> Outcome:
        quiet = timedelta(seconds=self._config.blocked_notice_seconds)
        result = await self._store.record_blocked(conversation.id, inbound, self._clock(), quiet)
        if result is BlockedOutcome.DUPLICATE:
            return Outcome(conversation, duplicate=True)
        platform = conversation.key.platform
        self.observer.received(platform)
        self.observer.blocked(platform)
        log.debug("message from user %s blocked: the conversation has ended", inbound.user_id)
        if result is BlockedOutcome.NOTIFY:
            key = TextKey.BLOCKED_SHUT_OUT if shut_out else TextKey.BLOCKED
            words = await self.words_for(conversation)
            return Outcome(conversation, notices=(say(words, NoticeKind.BLOCKED, key),))
        return Outcome(conversation)

    async def _turn(
        self,
        conversation: Conversation,
        inbound: Inbound,
        reply: ReplyStream,
        others: dict[str, LadderState],
        own: CommunitySettings | None,
        recover: Place | None = None,
    ) -> Outcome:
        at = self._clock()
        content = user_content(inbound.text, inbound.attachments)
        if inbound.user_id != conversation.user_id:
            content.insert(0, participant_label(inbound.user_id))
        message = NewMessage(
            "user",
            inbound.text,
            [{"role": "user", "content": content}],
            at,
            user_id=inbound.user_id,
            platform_message_id=inbound.message_id,
        )
        begun = await self._store.begin_turn_with_context(
            conversation.id, inbound, message, _HISTORY_LIMIT
        )
        if begun is None:
            return Outcome(conversation, duplicate=True)
        if recover is not None:
            adopted = await Recovery(self._store, recover, self.observer).reply(inbound)
            if adopted is not None:
                return await self._adopt(conversation, inbound, *adopted)
        # The stored rows go as soon as the context is built, not after the model's reply;
        # with many turns under way at once that counts.
        stored, context = begun[0], build_context(begun[1], self._config.context_tokens)
        del begun
        self.observer.received(conversation.key.platform)
        # One line per message is for DEBUG (INFO has a line per ladder event instead), and
        # what people write is theirs: it reaches the logs only at DEBUG, never at INFO.
        log.debug(
            "message %s from user %s: %r",
            inbound.message_id or inbound.event_id,
            inbound.user_id,
            inbound.text,
        )
        knobs = self._knobs_with(own)
        author = inbound.user_id
        starter = author == conversation.user_id
        at_risk = any(ladder.crisis for person, ladder in others.items() if person != author)
        turn = Turn(
            knobs.model,
            knobs.rules,
            knobs.crisis_message,
            at,
            message_id=inbound.message_id,
            speaker=Speaker(starter=starter, others_at_risk=at_risk),
            author=author,
            tools=knobs.tools,
            texts=knobs.texts,
            tool_context=ToolContext(
                conversation.id,
                author,
                conversation.community,
                conversation.key.platform,
                self.toolbox.settings,
            ),
        )
        ladder = conversation.ladder if starter else others.get(author, _NEWCOMER)
        platform = conversation.key.platform
        reply.track(inbound.message_id, partial(self._shown, inbound))
        await self._shielded(reply.thinking(), platform, "show thinking")
        try:
            result = await turn.run(ladder, context, reply)
        except asyncio.CancelledError:
            interrupted = knobs.texts.get(TextKey.INTERRUPTED)
            await self._shielded(reply.text(interrupted), platform, "show a reply")
            await self._record_interrupted(conversation, stored, turn, inbound)
            raise
        finally:
            reply_id = await self._shielded(reply.done(), platform, "finish a reply")
        if result.display_failed:
            self.observer.platform_error(platform, "show a reply")
        return await self._commit(conversation, stored, result, reply_id or "", inbound)

    async def _shown(self, inbound: Inbound, reply_id: str, complete: bool) -> None:
        """The reply stream's word that the place shows the reply, kept with the message until
        the commit; failing to keep it never fails the reply (only the kill window widens)."""
        if not reply_id:
            return
        try:
            await self._store.reply_shown(inbound, reply_id, complete)
        except DatabaseUnavailable:
            return  # the store says once that the database went away
        except Exception:
            log.exception("could not note the reply %s shown for %s", reply_id, inbound.event_id)
            return
        # Tests that hold a run between this and the commit wait for this line.
        log.debug("reply %s to %s shown (complete: %s)", reply_id, inbound.event_id, complete)

    async def _adopt(
        self, conversation: Conversation, inbound: Inbound, reply_id: str, text: str
    ) -> Outcome:
        """Record a complete reply an earlier attempt showed as this turn's, as if the model
        had just written it. The ladder stays as it was: what that attempt's tool calls
        earned died with it, uncommitted. The record says the reply was adopted."""
        now = self._clock()
        message = NewMessage(
            "assistant",
            text,
            [{"role": "assistant", "content": [{"type": "text", "text": text}]}],
            now,
            platform_message_id=reply_id,
        )
        detail = {"message_id": inbound.message_id, "reply_id": reply_id}
        events = [AuditEvent("reply_adopted", now, Actor.BOT, detail)]
        updated = await self._store.commit_turn(
            conversation.id, conversation.ladder, now, [message], events, answered=inbound
        )
        platform = conversation.key.platform
        self.observer.received(platform)
        self.observer.replied(platform)
        self._recorded(updated, events)
        return Outcome(updated, reply=text)

    async def _record_interrupted(
        self, conversation: Conversation, stored: StoredMessage, turn: Turn, inbound: Inbound
    ) -> None:
        """Keep what a turn cut short by a shutdown had come to, marked as interrupted.

        The partial reply stays out of the model's context (its tool calls may lack their
        results), so the next message simply continues the conversation.
        """
        result = turn.interrupted()
        if result is None:
            return
        result.events.append(
            AuditEvent("reply_interrupted", self._clock(), Actor.BOT, {"chars": len(result.text)})
        )
        try:
            await self._commit(conversation, stored, result, "", inbound)
        except Exception:
            log.exception("could not record an interrupted turn in %s", conversation.id)

    async def _commit(
        self,
        conversation: Conversation,
        stored: StoredMessage,
        result: TurnResult,
        reply_id: str,
        answered: Inbound,
    ) -> Outcome:
        notices = await self._withdrawals(conversation.id, result.notices)
        messages: list[NewMessage] = []
        if result.unavailable:
            words = await self.words_for(conversation)
            notices.append(say(words, NoticeKind.MODEL_UNAVAILABLE, TextKey.MODEL_UNAVAILABLE))
        text = result.text
        if result.refused:
            text = "\n\n".join(n.text for n in notices if n.kind is NoticeKind.DECLINE)
        if result.interrupted:
            text = f"{text} [interrupted]".strip()
        if result.api or result.refused or result.interrupted:
            messages.append(
                NewMessage(
                    "assistant",
                    text,
                    result.api,
                    self._clock(),
                    platform_message_id=reply_id,
                    in_context=not (result.refused or result.interrupted),
                )
            )
        starter = answered.user_id == conversation.user_id
        updated = await self._store.commit_turn(
            conversation.id,
            result.ladder if starter else conversation.ladder,
            self._clock(),
            messages,
            result.events,
            exclude_seq=stored.seq if result.refused else None,
            answered=answered,
            participant=None if starter else (answered.user_id, result.ladder),
        )
        self._recorded(updated, result.events)
        if result.text or result.refused:
            self.observer.replied(updated.key.platform)
            log.debug("reply text: %r", text)
        return Outcome(updated, reply=result.text, notices=tuple(notices))

    async def _withdrawals(self, conversation_id: str, notices: Sequence[Notice]) -> list[Notice]:
        """The turn's notices, a lapsed proposal's naming the confirmation it withdraws; where
        none was shown (its post failed, or the platform keeps no ids) there is nothing to
        withdraw and the notice goes."""
        if not any(n.kind is NoticeKind.END_LAPSED for n in notices):
            return list(notices)
        shown = await self._confirmation(conversation_id)
        return [
            replace(n, replaces=shown) if n.kind is NoticeKind.END_LAPSED else n
            for n in notices
            if shown or n.kind is not NoticeKind.END_LAPSED
        ]

    async def _confirmation(self, conversation_id: str) -> str:
        """The platform id of the confirmation shown for the latest proposal, or ""."""
        for event in reversed(await self._store.events(conversation_id)):
            if event.kind == CONFIRMATION_SHOWN:
                return str(event.detail.get("message_id") or "")
            if event.kind == "end_proposed":
                return ""
        return ""

    async def confirmation_shown(self, conversation: Conversation, message_id: str) -> None:
        """The end confirmation for the model's proposal was posted as `message_id`."""
        now = self._clock()
        event = AuditEvent(CONFIRMATION_SHOWN, now, Actor.BOT, {"message_id": message_id})
        await self._store.add_events(conversation.id, (event,))
        self._recorded(conversation, (event,))

    def _recorded(self, conversation: Conversation, events: Sequence[AuditEvent]) -> None:
        """Committed events reach the observer and, as one line each, the log (their kinds,
        reasons and who; never what anyone wrote)."""
        if not events:
            return
        self.observer.recorded(conversation.key.platform, events)
        self.hooks.recorded(conversation, events)
        with about(conversation.id):
            for event in events:
                if event.kind in _LOGGED:
                    why = {k: event.detail[k] for k in _LOGGED_DETAIL if k in event.detail}
                    log.info("%s by %s %s", event.kind, event.actor.value, why or "")

    async def _create(
        self,
        key: ConversationKey,
        user_id: str,
        *,
        branched_from: str | None = None,
        history: tuple[NewMessage, ...] = (),
        events: tuple[AuditEvent, ...] = (),
        community: str = "",
    ) -> Conversation:
        if not await self.may_start(key.platform, user_id):
            log.info("user %s on %s reached the ended-conversation limit", user_id, key.platform)
            raise LimitReached(LIMIT_TEXT)
        return await self._store.create(
            key,
            user_id,
            self._clock(),
            branched_from=branched_from,
            history=history,
            events=events,
            community=community,
        )

    async def _knobs(self, conversation: Conversation) -> _Knobs:
        """The model, thresholds and crisis message for this conversation: its community's
        own where it set them, the process-wide ones otherwise. Read at every turn, so a
        change applies at once in every process."""
        if not conversation.community:
            return self._default_knobs()
        own = await self._store.community_settings(
            conversation.key.platform, conversation.community
        )
        return self._knobs_with(own)

    def _default_knobs(self) -> _Knobs:
        return _Knobs(
            self._model,
            self._config.rules,
            self._config.crisis_message,
            self.toolbox.tools,
            self._config.texts,
        )

    def _knobs_with(self, own: CommunitySettings | None) -> _Knobs:
        """The knobs of a community with these own settings (None: it has none)."""
        default = self._default_knobs()
        if own is None:
            return default
        names = self.toolbox.chosen(own.tools)
        model = self._model
        if self._model_for is not None and (
            own.system_prompt_extra is not None or names != tuple(self.toolbox.tools)
        ):
            model = self._model_for(own.system_prompt_extra, names)
        return _Knobs(
            model,
            own.rules(self._config.rules),
            own.crisis_message or default.crisis_message,
            {name: self.toolbox.tools[name] for name in names},
            self._config.texts.over(usable(own.texts)),
        )

    @property
    def texts(self) -> Texts:
        """The operator's words (a community's own may differ: `words`)."""
        return self._config.texts

    async def words(self, platform: str, community: str) -> Texts:
        """The words in force in a community: its own texts over the operator's, or the
        operator's alone while the database cannot say (words are no reason to fail)."""
        if not community:
            return self._config.texts
        try:
            own = await self._store.community_settings(platform, community)
        except DatabaseUnavailable as exc:
            log.warning("the operator's words stand in for a community's: %s", exc)
            return self._config.texts
        return self._config.texts.over(usable(own.texts if own else None))

    async def words_for(self, conversation: Conversation) -> Texts:
        """The words in force in this conversation's community."""
        return await self.words(conversation.key.platform, conversation.community)

    async def community_settings(self, platform: str, community: str) -> CommunitySettings:
        """A community's own settings (all None: it uses the process-wide ones)."""
        return await self._store.community_settings(platform, community) or CommunitySettings()

    async def set_community_settings(
        self, platform: str, community: str, changes: CommunitySettings, by: str
    ) -> CommunitySettings:
        """Change some of a community's settings (those `changes` sets); the result.

        Raises BadCommunitySettings when the ladder would no longer warn before it ends.
        """
        return await self._change_community(platform, community, by, lambda s: s.merged(changes))

    async def reset_community_settings(
        self, platform: str, community: str, by: str, name: str | None = None
    ) -> CommunitySettings:
        """Back to the process-wide value for one of this community's settings (`name`), or
        for all of them; the result.

        Raises UnknownSetting for a name that is no setting's, and BadCommunitySettings when
        the ladder would no longer warn before it ends (the other threshold stays its own).
        """
        return await self._change_community(platform, community, by, lambda s: s.cleared(name))

    async def _change_community(
        self,
        platform: str,
        community: str,
        by: str,
        change: Callable[[CommunitySettings], CommunitySettings],
    ) -> CommunitySettings:
        updated = change(await self.community_settings(platform, community))
        updated.check(self._config.rules)
        unknown = [name for name in updated.tools or () if name not in self.toolbox.tools]
        if unknown:
            enabled = ", ".join(self.toolbox.tools) or "none"
            raise BadCommunitySettings(
                f"no tool {', '.join(unknown)} is enabled here (enabled: {enabled})"
            )
        await self._store.set_community_settings(platform, community, updated, self._clock(), by)
        return updated

    async def may_start(self, platform: str, user_id: str) -> bool:
        """Whether the operator's limit on ended conversations lets this user start one."""
        limit = self._config.max_ended_per_day
        if not limit:
            return True
        since = self._clock() - timedelta(days=1)
        return await self._store.ended_count(platform, user_id, since) < limit

    async def start_new(
        self, key: ConversationKey, user_id: str, *, community: str = ""
    ) -> Outcome:
        """Start a fresh conversation at `key` (`/new`); the old one stays as it was.

        The outcome carries a LIMIT notice and no conversation if the operator's limit on
        ended conversations stops this user.
        """
        async with self._serialised(key):
            try:
                return Outcome(await self._create(key, user_id, community=community))
            except LimitReached:
                return _limit(await self.words(key.platform, community))

    async def end_by_user(
        self, key: ConversationKey, user_id: str, *, proposal: bool = False, via: str = ""
    ) -> Outcome:
        """The user confirmed the end command (or, with `proposal`, the model's proposal to
        end): end the conversation at `key` at once. `via` is how the person asked, for the
        audit trail ("command", "shortcut", "button"; default "proposal" or "command").

        Raises NotTheStarter for anyone but the person who started it (in a shared thread,
        one member cannot close everyone's conversation); moderators have their own tools.
        Raises NotProposed when `proposal` is answered after it lapsed: checked under the
        conversation's lock, so a click racing the person's next message cannot end it.
        """
        async with self._serialised(key):
            conversation = await self._store.current(key)
            if conversation is None:
                raise ConversationNotFound(f"no conversation at {key.platform}:{key.place}")
            if not may_end(conversation, user_id):
                raise NotTheStarter("only the person who started this conversation can end it")
            if proposal and not conversation.ladder.ended and not conversation.ladder.end_proposed:
                raise NotProposed("the proposal to end this conversation lapsed")
            knobs = await self._knobs(conversation)
            ladder, effects = transition(
                conversation.ladder,
                EndRequest(EndReason.USER_REQUESTED, Actor.USER),
                knobs.rules,
            )
            if not effects:
                return Outcome(conversation)
            now = self._clock()
            detail = {"user_id": user_id, "via": via or ("proposal" if proposal else "command")}
            events, notices = self._entries(
                effects,
                Actor.USER,
                detail,
                now,
                crisis_message=knobs.crisis_message,
                texts=knobs.texts,
            )
            updated = await self._store.commit_turn(conversation.id, ladder, now, (), events)
            self._recorded(updated, events)
            return Outcome(updated, notices=notices)

    def _entries(
        self,
        effects: tuple[Effect, ...],
        actor: Actor,
        detail: dict[str, Any],
        now: datetime,
        *,
        crisis_message: str | None = None,
        texts: Texts | None = None,
    ) -> tuple[tuple[AuditEvent, ...], tuple[Notice, ...]]:
        """The audit events and notices that ladder effects outside a turn call for."""
        crisis = self._config.crisis_message if crisis_message is None else crisis_message
        words = texts or self._config.texts
        pairs = [effect_entry(effect, actor, detail, crisis, now, words) for effect in effects]
        return (
            tuple(event for event, _ in pairs if event is not None),
            tuple(notice for _, notice in pairs if notice is not None),
        )

    async def leave(self, conversation: Conversation, user_id: str, via: str) -> None:
        """Someone other than the starter asked to end: they leave it, on the record; it
        goes on (only its starter can end it)."""
        event = AuditEvent(
            "participant_left", self._clock(), Actor.USER, {"participant": user_id, "via": via}
        )
        await self._store.add_events(conversation.id, (event,))
        self._recorded(conversation, (event,))

    async def participants(self, conversation_id: str) -> dict[str, LadderState]:
        """The ladder of each person other than the starter who wrote in the conversation."""
        return await self._store.participants(conversation_id)

    async def keep_going(self, key: ConversationKey, user_id: str) -> Conversation | None:
        """The person chose "keep talking" at an end confirmation; a proposed end lapses.

        Returns the conversation (None if none lives at `key`); records only if a proposal
        was pending.
        """
        async with self._serialised(key):
            conversation = await self._store.current(key)
            if conversation is None:
                return None
            ladder, effects = transition(conversation.ladder, KeepGoing(), self._config.rules)
            if not effects:
                return conversation
            now = self._clock()
            detail = {"user_id": user_id, "via": "keep_talking"}
            events, _ = self._entries(effects, Actor.USER, detail, now)
            updated = await self._store.commit_turn(conversation.id, ladder, now, (), events)
            self._recorded(updated, events)
            return updated

    async def reopen(self, conversation_id: str, moderator_id: str, note: str = "") -> Conversation:
        """A moderator makes an ended conversation active again (on the record).

        Reopening an active conversation changes nothing and records nothing.
        """
        conversation = await self._require(conversation_id)
        async with self._serialised(conversation.key):
            conversation = await self._require(conversation_id)
            ladder, effects = transition(conversation.ladder, Reopen(), self._config.rules)
            if not effects:
                return conversation
            now = self._clock()
            detail = {"moderator_id": moderator_id, "note": note}
            events, _ = self._entries(effects, Actor.MODERATOR, detail, now)
            updated = await self._store.commit_turn(conversation.id, ladder, now, (), events)
            self._recorded(updated, events)
            return updated

    async def readmit(
        self, conversation_id: str, user_id: str, moderator_id: str, note: str = ""
    ) -> bool:
        """A moderator lets someone shut out of a conversation back in (on the record, as
        `participant_readmitted`); False, recording nothing, when they were not shut out."""
        return await self._decide_shut_out(conversation_id, user_id, moderator_id, note, None)

    async def review(
        self, conversation_id: str, moderator_id: str, *, reopen: bool, note: str = ""
    ) -> Conversation:
        """A moderator's decision on a conversation in the review queue, on the record as a
        `review` event (`decision` "reopened" or "upheld"); with `reopen` the conversation is
        reopened in the same write. Raises ConversationNotFound."""
        conversation = await self._require(conversation_id)
        async with self._serialised(conversation.key):
            conversation = await self._require(conversation_id)
            now = self._clock()
            decision = "reopened" if reopen else "upheld"
            detail = {"moderator_id": moderator_id, "decision": decision, "note": note}
            events = [AuditEvent("review", now, Actor.MODERATOR, detail)]
            ladder = conversation.ladder
            if reopen:
                ladder, effects = transition(ladder, Reopen(), self._config.rules)
                reopened, _ = self._entries(
                    effects, Actor.MODERATOR, {"moderator_id": moderator_id, "note": note}, now
                )
                events += reopened
            updated = await self._store.commit_turn(conversation.id, ladder, now, (), events)
            self._recorded(updated, events)
            return updated

    async def review_shut_out(
        self,
        conversation_id: str,
        user_id: str,
        moderator_id: str,
        *,
        readmit: bool,
        note: str = "",
    ) -> bool:
        """A moderator's decision on someone's disputed shut-out, on the record as a `review`
        event naming them (`participant`; `decision` "readmitted" or "upheld"); with `readmit`
        they are let back in in the same write (`participant_readmitted`). False, recording
        nothing, when they are not shut out of it. Raises ConversationNotFound."""
        decision = "readmitted" if readmit else "upheld"
        return await self._decide_shut_out(conversation_id, user_id, moderator_id, note, decision)

    async def _decide_shut_out(
        self, conversation_id: str, user_id: str, moderator_id: str, note: str, review: str | None
    ) -> bool:
        """Readmit (`review` None: outside the queue; or "readmitted") or uphold ("upheld")
        someone's shut-out in one write; False when they are not shut out."""
        conversation = await self._require(conversation_id)
        async with self._serialised(conversation.key):
            conversation = await self._require(conversation_id)
            theirs = (await self._store.participants(conversation.id)).get(user_id)
            if theirs is None or not theirs.ended:
                return False
            now = self._clock()
            detail = {"participant": user_id, "moderator_id": moderator_id, "note": note}
            events = []
            if review is not None:
                events.append(
                    AuditEvent("review", now, Actor.MODERATOR, {**detail, "decision": review})
                )
            readmitted = None
            if review != "upheld":
                ladder, _ = transition(theirs, Reopen(), self._config.rules, Speaker(starter=False))
                readmitted = (user_id, ladder)
                events.append(AuditEvent("participant_readmitted", now, Actor.MODERATOR, detail))
            updated = await self._store.commit_turn(
                conversation.id, conversation.ladder, now, (), events, participant=readmitted
            )
            self._recorded(updated, events)
            return True

    async def mark_would_end(
        self, conversation_id: str, moderator_id: str, *, right: bool, note: str = ""
    ) -> None:
        """A moderator's mark on the `would_end` decisions (alert-only mode) of a
        conversation: a `review` event, `decision` "would_end_right" or "would_end_wrong".
        Raises ConversationNotFound."""
        conversation = await self._require(conversation_id)
        decision = WOULD_END_RIGHT if right else WOULD_END_WRONG
        detail = {"moderator_id": moderator_id, "decision": decision, "note": note}
        events = [AuditEvent("review", self._clock(), Actor.MODERATOR, detail)]
        await self._store.add_events(conversation.id, events)
        self._recorded(conversation, events)

    async def awaiting_marks(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Conversations with a `would_end` no moderator has marked since, longest-waiting
        first."""
        return await self._store.awaiting_marks(platform, limit, community=community)

    async def review_decisions(self, since: datetime) -> dict[str, int]:
        """How many review decisions of each kind since then."""
        return await self._store.review_decisions(since)

    async def daily_activity(
        self, platform: str, community: str, since: datetime
    ) -> list[tuple[str, str, int]]:
        """What happened in one community each day since then (`Store.daily_activity`)."""
        return await self._store.daily_activity(platform, community, since)

    async def awaiting_review(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Ended conversations whose person said the end was a mistake and no moderator has
        decided on since (on `platform`, in `community`, when given), the longest-waiting
        first."""
        return await self._store.awaiting_review(platform, limit, community=community)

    async def disputed_shut_outs(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[tuple[Conversation, str]]:
        """(conversation, person) for each shut-out its person said was a mistake and no
        moderator has decided on since, the longest-waiting first."""
        return await self._store.disputed_shut_outs(platform, limit, community=community)

    async def feedback_on(self, conversation_id: str) -> list[tuple[str, str, datetime]]:
        """(user_id, text, at) of what people said about a conversation, oldest first."""
        return await self._store.feedback(conversation_id)

    async def feedback(self, conversation_id: str, user_id: str, text: str) -> None:
        """A user says an end was a mistake (or anything else about it); audited."""
        conversation = await self._require(conversation_id)
        now = self._clock()
        event = AuditEvent("feedback", now, Actor.USER, {"user_id": user_id, "text": text})
        await self._store.add_feedback(conversation.id, user_id, text, now, (event,))
        self._recorded(conversation, (event,))

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
        message to stop at (it is included). Raises ValueError if that message is not in it,
        LimitReached if the operator's limit stops this user.
        """
        source = await self._require(conversation_id)
        messages = await self._store.messages(source.id)
        count = _branch_point(messages, upto, upto_platform_message_id)
        history = tuple(
            NewMessage(m.role, m.text, m.api, m.at, m.user_id, "", m.in_context)
            for m in messages[:count]
        )
        now = self._clock()
        started = AuditEvent(
            "branched", now, Actor.USER, {"user_id": user_id, "from": source.id, "upto": count}
        )
        async with self._serialised(new_key):
            created = await self._create(
                new_key,
                user_id,
                branched_from=source.id,
                history=history,
                events=(started,),
                community=source.community,
            )
        note = AuditEvent(
            "branched_to", now, Actor.USER, {"user_id": user_id, "to": created.id, "upto": count}
        )
        await self._store.add_events(source.id, (note,))
        self._recorded(created, (started,))
        self._recorded(source, (note,))
        return created

    async def find(self, key: ConversationKey) -> Conversation | None:
        """The newest conversation at `key`."""
        return await self._store.current(key)

    async def in_use(self, key: ConversationKey) -> bool:
        """Whether a conversation lives at `key`, or a message received there (by any
        process on the database) waits to start one."""
        return await self._store.in_use(key)

    async def get(self, conversation_id: str) -> Conversation | None:
        return await self._store.get(conversation_id)

    async def conversations(
        self,
        platform: str,
        community: str,
        *,
        state: str | None,
        limit: int,
        offset: int,
        more: ListFilter = ListFilter(),  # noqa: B008 - frozen, so one shared default is safe
    ) -> list[Conversation]:
        """One community's conversations, newest first, a page at a time."""
        where = {"platform": platform, "community": community, "state": state}
        return await self._store.list_conversations(limit=limit, offset=offset, more=more, **where)

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        """A conversation's messages, oldest first."""
        return await self._store.messages((await self._require(conversation_id)).id)

    async def record(self, conversation_id: str) -> tuple[list[StoredMessage], list[AuditEvent]]:
        """A conversation's messages and audit trail, for moderators and the CLI."""
        conversation = await self._require(conversation_id)
        return (
            await self._store.messages(conversation.id),
            await self._store.events(conversation.id),
        )

    async def _require(self, conversation_id: str) -> Conversation:
        conversation = await self._store.get(conversation_id)
        if conversation is None:
            raise ConversationNotFound(f"no conversation with id {conversation_id!r}")
        return conversation

    async def _shielded(self, call: Awaitable[T], platform: str, what: str) -> T | None:
        """Await an adapter call; a platform error is logged and counted, and never lets a
        turn go unrecorded."""
        try:
            return await call
        except Exception:
            log.exception("the platform adapter could not %s", what)
            self.observer.platform_error(platform, what)
            return None


def _branch_point(
    messages: list[StoredMessage], upto: int | None, platform_message_id: str | None
) -> int:
    if platform_message_id is not None:
        for index, message in enumerate(messages):
            if message.platform_message_id == platform_message_id:
                return index + 1
        raise ValueError("that message is not part of the conversation")
    if upto is None or not 0 <= upto <= len(messages):
        raise ValueError(f"pick a message from 0 to {len(messages)}")
    return upto


def reception_anywhere(engine: Engine) -> Reception | None:
    """`Engine.receive` and `Engine.in_use` for an event loop on another thread than the
    engine's (a platform's listener of its own, so that acknowledging never waits on the
    turns), if the store offers its receipts there. A function, not a method: a seam for
    adapters, kept out of the public API that `quitbot.Engine` carries."""
    store = engine._store
    if not isinstance(store, ReceivesAnywhere):
        return None
    return replace(engine._reception, receipts=store.anywhere())
