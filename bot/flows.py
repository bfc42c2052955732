"""The conversation service: every flow that makes up quitting, written once for every platform.

An adapter translates a platform event into one call here and hands over its ports (a
`Place` for the conversation's place, `Places` to reach others, a `ModLog`); the flow
decides everything else: what is shown publicly or privately, when a place is closed or
reopened, what goes to the mod-log. Expected refusals (not the starter, the limit, not
found...) come back as a `Result` carrying a `Refusal`, never as an exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from bot.communities import BadCommunitySettings, CommunitySettings, UnknownSetting
from bot.conversation import AuditEvent, Conversation, ConversationKey, Inbound, storable
from bot.engine import (
    ConversationNotFound,
    Engine,
    LimitReached,
    NotProposed,
    NotTheStarter,
    may_end,
)
from bot.logs import about
from bot.notices import PRIVATE, Notice, NoticeKind, Outcome, say
from bot.ports import DatabaseUnavailable, ModLog, ModLogEntry, ModLogKind, Place, Places
from bot.review import Decision, ReviewItem, awaits_decision, disputed_by, review_queue
from bot.texts import DEFAULT_TEXTS, TEXTS, TextKey, Texts

log = logging.getLogger(__name__)
T = TypeVar("T")

OpenPlace = Callable[[], Awaitable[tuple[ConversationKey, Place] | None]]
"""Opens a new place for a conversation (a thread, a DM); None if the platform would not."""


class Refusal(StrEnum):
    """Why a flow did nothing; `REFUSAL_KEY` names the text to show the person."""

    NOT_FOUND = "not_found"
    NOT_STARTER = "not_starter"
    ALREADY_ENDED = "already_ended"
    NOT_ASKED = "not_asked"
    NOT_ENDED = "not_ended"
    LIMIT = "limit"
    NOT_A_MESSAGE = "not_a_message"
    NO_PLACE = "no_place"
    NOT_MODERATOR = "not_moderator"
    BAD_SETTINGS = "bad_settings"
    UNKNOWN_SETTING = "unknown_setting"
    NOT_CONCERNED = "not_concerned"
    NOT_FLAGGED = "not_flagged"


# Each refusal's words are a text of its own (a community's, or the operator's, may differ);
# the limit's is the same text as the notice the limit gives a new message.
REFUSAL_KEY = {
    Refusal.NOT_FOUND: TextKey.REFUSED_NOT_FOUND,
    Refusal.NOT_STARTER: TextKey.REFUSED_NOT_STARTER,
    Refusal.ALREADY_ENDED: TextKey.REFUSED_ALREADY_ENDED,
    Refusal.NOT_ASKED: TextKey.REFUSED_NOT_ASKED,
    Refusal.NOT_ENDED: TextKey.REFUSED_NOT_ENDED,
    Refusal.LIMIT: TextKey.LIMIT,
    Refusal.NOT_A_MESSAGE: TextKey.REFUSED_NOT_A_MESSAGE,
    Refusal.NO_PLACE: TextKey.REFUSED_NO_PLACE,
    Refusal.NOT_MODERATOR: TextKey.REFUSED_NOT_MODERATOR,
    Refusal.BAD_SETTINGS: TextKey.REFUSED_BAD_SETTINGS,
    Refusal.UNKNOWN_SETTING: TextKey.REFUSED_UNKNOWN_SETTING,
    Refusal.NOT_CONCERNED: TextKey.REFUSED_NOT_CONCERNED,
    Refusal.NOT_FLAGGED: TextKey.REFUSED_NOT_FLAGGED,
}
# The bot's own words for each refusal (the defaults).
REFUSAL_TEXT = {refusal: TEXTS[key].default for refusal, key in REFUSAL_KEY.items()}


def refusal_text(refusal: Refusal | None, words: Texts = DEFAULT_TEXTS) -> str:
    """A refusal in `words` (the community's where it was asked), "" for none."""
    return words.get(REFUSAL_KEY[refusal]) if refusal is not None else ""


@dataclass(frozen=True, slots=True)
class Result:
    """What a flow came to: a conversation, or a refusal and nothing changed.

    `notices` are for the adapter to show to the person who asked (privately), e.g. the
    end confirmation; `events` carries the audit trail for `audit`; `problem` says in plain
    words what the platform would not do although the flow itself went through.
    """

    conversation: Conversation | None = None
    refusal: Refusal | None = None
    notices: tuple[Notice, ...] = ()
    events: tuple[AuditEvent, ...] = ()
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def text(self) -> str:
        """The refusal in the bot's own words ("" when the flow went through)."""
        return refusal_text(self.refusal)

    def said(self, words: Texts) -> str:
        """The refusal in `words`, the texts in force where it was asked."""
        return refusal_text(self.refusal, words)


@dataclass(frozen=True, slots=True)
class CommunityResult:
    """A community's settings as a flow returns them, or a refusal (`problem` says what is
    wrong with settings that were refused)."""

    settings: CommunitySettings | None = None
    refusal: Refusal | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def text(self) -> str:
        return self.said(DEFAULT_TEXTS)

    def said(self, words: Texts) -> str:
        return self.problem or refusal_text(self.refusal, words)


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    """The review queue as a flow returns it: the items, or a refusal."""

    items: tuple[ReviewItem, ...] = ()
    refusal: Refusal | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def text(self) -> str:
        return refusal_text(self.refusal)

    def said(self, words: Texts) -> str:
        return refusal_text(self.refusal, words)


def _refused(refusal: Refusal, conversation: Conversation | None = None) -> Result:
    return Result(conversation, refusal)


class NoModLog:
    """For deployments without a mod-log channel."""

    async def write(self, entry: ModLogEntry) -> None:
        return None


class Flows:
    """Every flow of one adapter, over the shared engine."""

    def __init__(
        self, engine: Engine, platform: str, places: Places, modlog: ModLog | None = None
    ) -> None:
        self.engine = engine
        self._platform = platform
        self._places = places
        self._modlog = modlog or NoModLog()
        self._turns: set[asyncio.Task[Any]] = set()
        self._draining = False

    # --- converse, then close ------------------------------------------------------------

    async def converse(self, inbound: Inbound, place: Place, *, recover: bool = False) -> Outcome:
        """One message: the reply streamed into `place`, its notices shown, and if the
        conversation ended, the place closed and the starter offered a way on. With
        `recover` (a message a stopped run received) a reply it already showed in full is
        adopted rather than given twice (see `Engine.handle`)."""
        if self._draining:
            # Shutting down: a turn begun now would outlive the platform's client. The
            # message stays kept, and the next run's `answer_pending` answers it.
            log.info("shutting down: %s is left for the next run", inbound.event_id)
            return Outcome(None)
        # Tracked to the end, notices and closing included, so that `drain` lets them
        # finish before the platform's client is closed.
        task = asyncio.current_task()
        if task is not None:
            self._turns.add(task)
        try:
            return await self._converse(inbound, place, recover=recover)
        finally:
            self._turns.discard(task)

    async def _converse(
        self, inbound: Inbound, place: Place, *, in_order: bool = True, recover: bool = False
    ) -> Outcome:
        reply = place.reply()
        try:
            recovering = place if recover else None
            outcome = await self.engine.handle(
                inbound, reply, in_order=in_order, recover=recovering
            )
        except Exception as exc:
            # The outermost guard: whatever broke, the person hears of it, and what was
            # received stays kept (`answer_pending` takes it up after a restart).
            if isinstance(exc, DatabaseUnavailable):  # the store said so: no traceback
                log.error("handling message %s failed: %s", inbound.event_id, exc)
            else:
                log.exception("handling message %s failed", inbound.event_id)
            # The operator's words: the database that would say the community's may be down.
            failed = say(self.engine.texts, NoticeKind.MODEL_UNAVAILABLE, TextKey.FAILED)
            await self._guarded(place.post(failed, None), "say a message failed")
            return Outcome(None, notices=(failed,))
        finally:
            await self._guarded(reply.close(), "stop a reply")
        if outcome.earlier:
            return await self._after(outcome.earlier, inbound, place, recover=recover)
        if outcome.duplicate:
            return outcome
        with about(outcome.conversation.id if outcome.conversation else None):
            await self._show(place, outcome, inbound.user_id)
            if outcome.blocked and outcome.conversation is not None:
                # Posting in an ended place may have reopened it (a moderator unlocked it).
                await self._guarded(place.close(outcome.conversation), "close an ended place")
        return outcome

    async def _after(
        self, earlier: Sequence[Inbound], inbound: Inbound, place: Place, *, recover: bool
    ) -> Outcome:
        """Messages received at the place before `inbound` (by this process or another one,
        which may be answering them right now, or have died doing it) are answered first,
        in the order they came; each is answered once, whoever gets there first. One pass
        only: a message that keeps failing holds up nobody's later ones. A reply another
        process showed in full before it died is adopted, not given twice."""
        for first in earlier:
            await self._converse(await self.recall(first), place, in_order=False, recover=True)
        return await self._converse(inbound, place, in_order=False, recover=recover)

    async def receive(self, inbound: Inbound) -> bool:
        """Keep a just-delivered message before acknowledging it to the platform (see
        `Engine.receive`); then `converse` answers it. False for an event seen before."""
        return await self.engine.receive(inbound)

    async def answer_pending(self) -> int:
        """Answer, in order, the messages a previous run received but never handled (it
        was killed); call once the platform is connected. How many there were."""
        pending = [i for i in await self.engine.pending() if i.key.platform == self._platform]
        for inbound in pending:
            place = self._places.place(inbound.key)
            await self.converse(await self.recall(inbound), place, recover=True)
        return len(pending)

    async def recall(self, inbound: Inbound) -> Inbound:
        """A kept message with its files read by the adapter (their contents are never
        kept, so a message a previous run kept has them read again); if reading fails, the
        model is still told their names."""
        if not inbound.files:
            return inbound
        read = await self._guarded(self._places.read(inbound.files), "read a message's files")
        if read is None:
            read = tuple(file.unread() for file in inbound.files)
        return replace(inbound, attachments=read)

    async def _show(self, place: Place, outcome: Outcome, user_id: str) -> None:
        conversation = outcome.conversation
        for notice in outcome.notices:
            if notice.kind is NoticeKind.WOULD_END and conversation is not None:
                await self._log(ModLogKind.WOULD_END, conversation, notice.to, notice.text)
                continue
            if notice.kind in PRIVATE or notice.to:
                person = notice.to or user_id
                await self._guarded(place.tell(person, notice, conversation), "tell a person")
                if notice.kind is NoticeKind.SHUT_OUT and conversation is not None:
                    await self._log(ModLogKind.SHUT_OUT, conversation, person, notice.text)
                continue
            shown = await self._guarded(place.post(notice, conversation), "post a notice")
            if conversation is None:
                continue
            if notice.kind is NoticeKind.END:
                await self._closed(place, conversation, shown or "")
            elif notice.kind is NoticeKind.CONFIRM_END and shown:
                await self.engine.confirmation_shown(conversation, shown)

    async def _closed(self, place: Place, conversation: Conversation, final_id: str) -> None:
        """After the final notice: close the place, then offer the starter a way on where
        they can act on it (the closed place may no longer take clicks)."""
        await self._guarded(place.close(conversation), "close the place")
        words = await self.engine.words_for(conversation)
        offer = say(words, NoticeKind.AFTER_END, TextKey.AFTER_END)
        await self._guarded(place.tell(conversation.user_id, offer, conversation), "offer a way on")
        entry = ModLogEntry(ModLogKind.ENDED, conversation, message_id=final_id)
        await self._guarded(self._modlog.write(entry), "write to the mod-log")

    async def _log(
        self, kind: ModLogKind, conversation: Conversation, person: str, text: str
    ) -> None:
        """A mod-log line about one person: shut out, or (alert-only mode) where the ladder
        would have ended."""
        entry = ModLogEntry(kind, conversation, actor_id=person, text=text)
        await self._guarded(self._modlog.write(entry), "write to the mod-log")

    async def drain(self, grace: float) -> None:
        """On shutdown: let replies under way finish for up to `grace` seconds, then cut
        them short (the engine records them as interrupted and says so in the reply). No
        new turn begins from now on."""
        self._draining = True
        if not self._turns:
            return
        log.info("waiting up to %ss for %d replies under way", grace, len(self._turns))
        _, late = await asyncio.wait(set(self._turns), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    # --- end with a confirmation ---------------------------------------------------------

    async def ask_to_end(
        self, key: ConversationKey, user_id: str, *, proposal: bool = False
    ) -> Result:
        """The end command: the confirmation to show the person, or why not. With
        `proposal` (an answer to the model's proposal is coming), why not also when no
        proposal is open any more."""
        conversation = await self.engine.find(key)
        if conversation is None:
            return _refused(Refusal.NOT_FOUND)
        if conversation.ladder.ended:
            return _refused(Refusal.ALREADY_ENDED, conversation)
        if not may_end(conversation, user_id):
            if proposal:
                return _refused(Refusal.NOT_STARTER, conversation)
            # Someone else asking to end leaves it: only its starter can end it.
            await self.engine.leave(conversation, user_id, via="command")
            words = await self.engine.words_for(conversation)
            return Result(conversation, notices=(say(words, NoticeKind.LEFT, TextKey.LEFT),))
        if proposal and not conversation.ladder.end_proposed:
            return _refused(Refusal.NOT_ASKED, conversation)
        confirm = say(
            await self.engine.words_for(conversation), NoticeKind.CONFIRM_END, TextKey.CONFIRM_END
        )
        return Result(conversation, notices=(confirm,))

    async def confirm_end(
        self,
        key: ConversationKey,
        user_id: str,
        place: Place,
        *,
        proposal: bool = False,
        via: str = "",
    ) -> Result:
        """The person confirmed an end (the command's, or with `proposal` the model's
        proposal, which must still be open): end it now, show the final notice, close the
        place. `via` says how they asked, for the record (see Engine.end_by_user)."""
        try:
            outcome = await self.engine.end_by_user(key, user_id, proposal=proposal, via=via)
        except ConversationNotFound:
            return _refused(Refusal.NOT_FOUND)
        except NotTheStarter:
            return _refused(Refusal.NOT_STARTER, await self.engine.find(key))
        except NotProposed:
            return _refused(Refusal.NOT_ASKED, await self.engine.find(key))
        if not outcome.just_ended:
            return _refused(Refusal.ALREADY_ENDED, outcome.conversation)
        await self._show(place, outcome, user_id)
        return Result(outcome.conversation)

    async def keep_going(self, key: ConversationKey, user_id: str) -> Result:
        """The person chose to keep talking at an end confirmation."""
        conversation = await self.engine.find(key)
        if conversation is None:
            return _refused(Refusal.NOT_FOUND)
        if not may_end(conversation, user_id):
            return _refused(Refusal.NOT_STARTER, conversation)
        kept = await self.engine.keep_going(key, user_id)
        # Checked after the engine's serialised read: an end that won the race shows here.
        if kept is not None and kept.ladder.ended:
            return _refused(Refusal.ALREADY_ENDED, kept)
        return Result(kept)

    # --- start afresh, branch ------------------------------------------------------------

    async def start_new(
        self, platform: str, user_id: str, open_place: OpenPlace, *, community: str = ""
    ) -> Result:
        """A fresh conversation in a place opened for it, unless the operator's limit on
        ended conversations stops this user (checked first, so no place is opened in vain).
        `community` (a guild or team id) picks whose settings apply."""
        if not await self.engine.may_start(platform, user_id):
            return _refused(Refusal.LIMIT)
        opened = await open_place()
        if opened is None:
            return _refused(Refusal.NO_PLACE)
        key, place = opened
        outcome = await self.engine.start_new(key, user_id, community=community)
        if outcome.conversation is None:
            return _refused(Refusal.LIMIT)
        words = await self.engine.words(platform, community)
        notice = say(words, NoticeKind.STARTED, TextKey.STARTED)
        await self._guarded(place.post(notice, outcome.conversation), "greet a new conversation")
        return Result(outcome.conversation)

    async def branch(
        self,
        source: ConversationKey | str,
        user_id: str,
        open_place: OpenPlace,
        *,
        upto: int | None = None,
        upto_message_id: str | None = None,
    ) -> Result:
        """A new conversation carrying another's history up to a message the person picked
        (by platform message id, or the first `upto` messages)."""
        conversation = await self._resolve(source)
        if conversation is None:
            return _refused(Refusal.NOT_FOUND)
        messages = await self.engine.messages(conversation.id)
        if upto_message_id is not None:
            if upto_message_id not in {m.platform_message_id for m in messages}:
                return _refused(Refusal.NOT_A_MESSAGE, conversation)
        elif upto is None or not 0 <= upto <= len(messages):
            return _refused(Refusal.NOT_A_MESSAGE, conversation)
        if not await self.engine.may_start(conversation.key.platform, user_id):
            return _refused(Refusal.LIMIT, conversation)
        opened = await open_place()
        if opened is None:
            return _refused(Refusal.NO_PLACE, conversation)
        key, place = opened
        try:
            created = await self.engine.branch(
                conversation.id, key, user_id, upto=upto, upto_platform_message_id=upto_message_id
            )
        except LimitReached:
            return _refused(Refusal.LIMIT, conversation)
        notice = say(await self.engine.words_for(created), NoticeKind.STARTED, TextKey.BRANCHED)
        await self._guarded(place.post(notice, created), "greet a branch")
        return Result(created)

    # --- feedback, moderators ------------------------------------------------------------

    async def feedback(self, conversation_id: str, user_id: str, text: str) -> Result:
        """What a person said about a conversation (usually "this was a mistake"): on the
        record and in the mod-log."""
        conversation = await self.engine.get(conversation_id)
        if conversation is None:
            return _refused(Refusal.NOT_FOUND)
        if not await self._concerns(conversation, user_id):
            return _refused(Refusal.NOT_CONCERNED, conversation)
        text = storable(text)
        await self.engine.feedback(conversation.id, user_id, text)
        entry = ModLogEntry(ModLogKind.FEEDBACK, conversation, actor_id=user_id, text=text)
        await self._guarded(self._modlog.write(entry), "write to the mod-log")
        return Result(conversation)

    async def _concerns(self, conversation: Conversation, user_id: str) -> bool:
        """Whether what happened in `conversation` is this person's to dispute: it is theirs,
        or they were shut out of it."""
        if conversation.user_id == user_id:
            return True
        ladder = (await self.engine.participants(conversation.id)).get(user_id)
        return ladder is not None and ladder.ended

    async def reopen(
        self,
        target: ConversationKey | str,
        moderator_id: str,
        note: str = "",
        *,
        is_moderator: bool,
        place: Place | None = None,
    ) -> Result:
        """A moderator reopens an ended conversation: on the record, the place opened again
        and told, the mod-log written."""
        if not is_moderator:
            return _refused(Refusal.NOT_MODERATOR)
        conversation = await self._resolve(target)
        if conversation is None:
            return _refused(Refusal.NOT_FOUND)
        if not conversation.ladder.ended:
            return _refused(Refusal.NOT_ENDED, conversation)
        reopened = await self.engine.reopen(conversation.id, moderator_id, storable(note))
        return await self._reopened(reopened, moderator_id, note, place)

    async def _reopened(
        self, reopened: Conversation, moderator_id: str, note: str, place: Place | None
    ) -> Result:
        """After a reopen is on the record: the place opened again and told, the mod-log."""
        where = place or self._places.place(reopened.key)
        problem = await self._guarded(where.reopen(reopened), "reopen the place")
        if problem is None:
            problem = "I could not reopen its place on the platform."
        if not problem:
            words = await self.engine.words_for(reopened)
            notice = say(words, NoticeKind.REOPENED, TextKey.REOPENED)
            await self._guarded(where.post(notice, reopened), "say it was reopened")
        entry = ModLogEntry(ModLogKind.REOPENED, reopened, actor_id=moderator_id, text=note)
        await self._guarded(self._modlog.write(entry), "write to the mod-log")
        return Result(reopened, problem=problem)

    async def review_queue(
        self, *, is_moderator: bool, community: str | None = None, limit: int = 10
    ) -> ReviewQueue:
        """This platform's review queue (ended conversations someone called a mistake),
        longest-waiting first, for moderators; pass `community` (the guild or team the
        moderator moderates) to see only its conversations."""
        if not is_moderator:
            return ReviewQueue(refusal=Refusal.NOT_MODERATOR)
        items = await review_queue(
            self.engine, platform=self._platform, community=community, limit=limit
        )
        return ReviewQueue(tuple(items))

    async def resolve_review(
        self,
        target: ConversationKey | str,
        moderator_id: str,
        decision: Decision,
        note: str = "",
        *,
        is_moderator: bool,
        community: str | None = None,
        place: Place | None = None,
        shut_out_user_id: str | None = None,
    ) -> Result:
        """A moderator's decision on a conversation in the queue, on the record. Reopening
        also opens its place again, tells the people there and writes the mod-log. With
        `community`, a conversation of another community is not found (a moderator of one
        server cannot decide for another).

        A shut-out is decided with `shut_out_user_id`, or without it when the decision is
        to readmit (or to uphold in an active conversation) and one person's disputed
        shut-out of it awaits a decision."""
        if not is_moderator:
            return _refused(Refusal.NOT_MODERATOR)
        conversation = await self._resolve(target)
        if conversation is None or (community is not None and conversation.community != community):
            return _refused(Refusal.NOT_FOUND)
        ended = conversation.ladder.ended
        on_shut_out = decision is Decision.READMIT or (decision is Decision.UPHOLD and not ended)
        if shut_out_user_id is not None or on_shut_out:
            return await self._resolve_shut_out(
                conversation, shut_out_user_id, moderator_id, decision, note
            )
        if not ended:
            return _refused(Refusal.NOT_ENDED, conversation)
        reopen = decision is Decision.REOPEN
        if not reopen and not await awaits_decision(self.engine, conversation):
            return _refused(Refusal.NOT_FLAGGED, conversation)
        decided = await self.engine.review(
            conversation.id, moderator_id, reopen=reopen, note=storable(note)
        )
        if not reopen:
            return Result(decided)
        return await self._reopened(decided, moderator_id, note, place)

    async def _resolve_shut_out(
        self,
        conversation: Conversation,
        user_id: str | None,
        moderator_id: str,
        decision: Decision,
        note: str,
    ) -> Result:
        """Readmit (REOPEN means the same for a named person) or uphold someone's shut-out;
        upholding only what they disputed."""
        disputed = await disputed_by(self.engine, conversation)
        if user_id is None and len(disputed) == 1:
            user_id = disputed[0]
        if user_id is None:
            nothing = not disputed and not conversation.ladder.ended
            return _refused(Refusal.NOT_ENDED if nothing else Refusal.NOT_FLAGGED, conversation)
        readmit = decision is not Decision.UPHOLD
        if not readmit and user_id not in disputed:
            return _refused(Refusal.NOT_FLAGGED, conversation)
        decided = await self.engine.review_shut_out(
            conversation.id, user_id, moderator_id, readmit=readmit, note=storable(note)
        )
        if not decided:
            return _refused(Refusal.NOT_FLAGGED, conversation)
        return Result(await self.engine.get(conversation.id) or conversation)

    async def community_settings(self, community: str, *, is_moderator: bool) -> CommunityResult:
        """A community's own settings (None where it uses the process-wide value), for
        its moderators."""
        if not is_moderator:
            return CommunityResult(refusal=Refusal.NOT_MODERATOR)
        own = await self.engine.community_settings(self._platform, community)
        return CommunityResult(own)

    async def set_community_settings(
        self,
        community: str,
        changes: CommunitySettings,
        moderator_id: str,
        *,
        is_moderator: bool,
    ) -> CommunityResult:
        """A community's moderators change some of its settings (those `changes` sets);
        they apply from the next message in every conversation of that community."""
        return await self._community_change(
            lambda: self.engine.set_community_settings(
                self._platform, community, changes, moderator_id
            ),
            is_moderator=is_moderator,
        )

    async def reset_community_settings(
        self, community: str, name: str | None, moderator_id: str, *, is_moderator: bool
    ) -> CommunityResult:
        """A community's moderators put one of its settings (`name`), or all of them (None),
        back to the process-wide value, from the next message on."""
        return await self._community_change(
            lambda: self.engine.reset_community_settings(
                self._platform, community, moderator_id, name
            ),
            is_moderator=is_moderator,
        )

    async def _community_change(
        self, change: Callable[[], Awaitable[CommunitySettings]], *, is_moderator: bool
    ) -> CommunityResult:
        """A moderator's change to their community's settings, or why it was refused."""
        if not is_moderator:
            return CommunityResult(refusal=Refusal.NOT_MODERATOR)
        try:
            return CommunityResult(await change())
        except UnknownSetting as exc:
            return CommunityResult(refusal=Refusal.UNKNOWN_SETTING, problem=str(exc))
        except BadCommunitySettings as exc:
            return CommunityResult(refusal=Refusal.BAD_SETTINGS, problem=str(exc))

    async def status(self, target: ConversationKey | str, *, is_moderator: bool) -> Result:
        """A conversation's state, for moderators."""
        if not is_moderator:
            return _refused(Refusal.NOT_MODERATOR)
        conversation = await self._resolve(target)
        if conversation is None:
            return _refused(Refusal.NOT_FOUND)
        return Result(conversation)

    async def audit(self, target: ConversationKey | str, *, is_moderator: bool) -> Result:
        """A conversation's audit trail, oldest first, for moderators."""
        found = await self.status(target, is_moderator=is_moderator)
        if found.conversation is None:
            return found
        _, events = await self.engine.record(found.conversation.id)
        return Result(found.conversation, events=tuple(events))

    async def find(self, key: ConversationKey) -> Conversation | None:
        """The newest conversation at `key`, if any."""
        return await self.engine.find(key)

    async def in_use(self, key: ConversationKey) -> bool:
        """Whether the place at `key` is a conversation's, or about to be: a message received
        there (a mention another process is answering) waits to start one."""
        return await self.engine.in_use(key)

    async def _resolve(self, target: ConversationKey | str) -> Conversation | None:
        if isinstance(target, ConversationKey):
            return await self.engine.find(target)
        return await self.engine.get(target)

    async def _guarded(self, call: Awaitable[T], what: str) -> T | None:
        """A platform call inside a flow: its failure is logged and counted and the flow
        goes on, because what the flow recorded must not be lost to a platform hiccup."""
        try:
            return await call
        except Exception:
            log.exception("the platform adapter could not %s", what)
            self.engine.observer.platform_error(self._platform, what)
            return None
