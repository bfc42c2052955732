"""The quit flows, once, against an in-memory place: no platform, no fake server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.conversation import Attachment, Conversation, ConversationKey, FileRef, Inbound
from bot.engine import Engine, EngineConfig
from bot.flows import Flows, Refusal
from bot.notices import Notice, NoticeKind
from bot.policy import Rules
from bot.ports import ModelReply, ModLogEntry, ModLogKind, TextSink
from bot.store.sqlite import SqliteStore

ALICE, BOB, MOD = "alice", "bob", "mod"
HERE = ConversationKey("test", "here")
LATER = datetime(2999, 1, 1, tzinfo=UTC)


def text(words: str) -> ModelReply:
    return ModelReply([{"type": "text", "text": words}], "end_turn")


def tool(name: str, data: dict[str, Any], n: int = 1) -> ModelReply:
    block = {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": data}
    return ModelReply([block], "tool_use")


def ask_to_end() -> ModelReply:
    return tool("end_conversation", {"reason": "user_requested", "explanation": "asked"})


class ScriptedModel:
    """Answers from a script; `hold` keeps the next answer until released."""

    def __init__(self) -> None:
        self.script: list[ModelReply] = []
        self.calls = 0
        self.asked: list[list[dict[str, Any]]] = []
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        self.calls += 1
        self.asked.append(list(messages))
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        answer = self.script.pop(0) if self.script else text("ok")
        for block in answer.content:
            if block["type"] == "text":
                await on_text(block["text"])
        return answer


class Reply:
    def __init__(self, shown: list[str]) -> None:
        self._shown = shown
        self.closed = False

    def track(self, answering: str, shown: object) -> None:
        return None

    async def thinking(self) -> None:
        return None

    async def text(self, delta: str) -> None:
        self._shown.append(delta)

    async def done(self) -> str:
        return "reply-id"

    async def close(self) -> None:
        self.closed = True


@dataclass
class MemoryPlace:
    """Records what a flow did to the place; `broken` makes every call fail."""

    key: ConversationKey
    posted: list[Notice] = field(default_factory=list)
    told: list[tuple[str, Notice]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    closed: int = 0
    reopened: int = 0
    reopen_problem: str = ""
    broken: bool = False
    order: list[str] = field(default_factory=list)

    def reply(self) -> Reply:
        return Reply(self.replies)

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        self._check()
        self.posted.append(notice)
        self.order.append(f"post:{notice.kind.value}")
        return f"msg-{len(self.posted)}"

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        self._check()
        self.told.append((user_id, notice))
        self.order.append(f"tell:{notice.kind.value}")

    async def close(self, conversation: Conversation) -> None:
        self._check()
        self.closed += 1
        self.order.append("close")

    async def reopen(self, conversation: Conversation) -> str:
        self._check()
        self.reopened += 1
        return self.reopen_problem

    async def reply_after(self, message_id: str, reply_id: str) -> str | None:
        return None  # replies here leave nothing to find again (see tests/bot/test_recovery.py)

    async def marked_reply(self, message_id: str) -> tuple[str, str] | None:
        return None

    async def cut_short(self, message_id: str, reply_id: str) -> None:
        return None

    def kinds(self) -> list[NoticeKind]:
        return [n.kind for n in self.posted]

    def _check(self) -> None:
        if self.broken:
            raise ConnectionError("platform down")


@dataclass
class World:
    """The places a flow can reach, and the mod-log."""

    places: dict[ConversationKey, MemoryPlace] = field(default_factory=dict)
    modlog: list[ModLogEntry] = field(default_factory=list)
    opened: int = 0
    files: dict[str, bytes] = field(default_factory=dict)  # by locator; others are gone
    files_broken: bool = False

    def place(self, key: ConversationKey) -> MemoryPlace:
        return self.places.setdefault(key, MemoryPlace(key))

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        if self.files_broken:
            raise ConnectionError("platform down")
        return tuple(
            replace(file.unread(), data=self.files[file.locator])
            if file.locator in self.files
            else file.unread()
            for file in files
        )

    async def write(self, entry: ModLogEntry) -> None:
        self.modlog.append(entry)

    async def open_place(self) -> tuple[ConversationKey, MemoryPlace]:
        self.opened += 1
        key = ConversationKey("test", f"new-{self.opened}")
        return key, self.place(key)

    async def no_place(self) -> None:
        self.opened += 1
        return None


@dataclass
class Setup:
    flows: Flows
    model: ScriptedModel
    world: World
    store: SqliteStore
    seq: int = 0

    @property
    def here(self) -> MemoryPlace:
        return self.world.place(HERE)

    async def say(self, words: str, user: str = ALICE, key: ConversationKey = HERE) -> Any:
        self.seq += 1
        inbound = Inbound(key, f"ev{self.seq}", user, words, message_id=f"m{self.seq}")
        return await self.flows.converse(inbound, self.world.place(key))

    async def kinds(self, key: ConversationKey = HERE) -> list[str]:
        conversation = await self.flows.find(key)
        assert conversation is not None
        _, events = await self.flows.engine.record(conversation.id)
        return [e.kind for e in events]


@pytest_asyncio.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with await_store(tmp_path) as store:
        yield make(store)


def make(store: SqliteStore, **config: Any) -> Setup:
    model = ScriptedModel()
    world = World()
    knobs: dict[str, Any] = {"rules": Rules(1, 1), "crisis_message": "call 988", **config}
    engine = Engine(store, model, EngineConfig(**knobs))
    return Setup(Flows(engine, "test", world, world), model, world, store)


@asynccontextmanager
async def await_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(str(tmp_path / "flows.db"))
    try:
        yield store
    finally:
        await store.close()


async def end_by_ladder(s: Setup) -> None:
    s.model.script = [
        tool("note_concern", {"kind": "abuse", "note": "insults"}),
        text("Let's keep it civil."),
        tool("end_conversation", {"reason": "persistent_abuse", "explanation": "kept on"}, 2),
    ]
    await s.say("you are useless")
    await s.say("useless!!")


# --- converse, then close -------------------------------------------------------------------


async def test_an_end_posts_the_final_notice_closes_the_place_then_offers_a_way_on(
    setup: Setup,
) -> None:
    await end_by_ladder(setup)
    here = setup.here
    assert here.order[-4:] == ["post:warning", "post:end", "close", "tell:after_end"]
    assert here.told[-1][0] == ALICE  # the starter, privately
    [entry] = setup.world.modlog
    assert entry.kind is ModLogKind.ENDED and entry.message_id == "msg-2"
    assert entry.conversation.ladder.ended


async def test_private_notices_go_to_the_poster_only(setup: Setup) -> None:
    await end_by_ladder(setup)
    calls = setup.model.calls
    await setup.say("hello?", user=BOB)
    user, notice = setup.here.told[-1]
    assert (user, notice.kind) == (BOB, NoticeKind.BLOCKED)
    assert NoticeKind.BLOCKED not in setup.here.kinds()
    assert setup.model.calls == calls  # no model call for a message in an ended conversation


async def test_a_message_in_an_ended_place_closes_it_again(setup: Setup) -> None:
    await end_by_ladder(setup)
    closed = setup.here.closed
    await setup.say("I unlocked it, hi")
    assert setup.here.closed == closed + 1


async def test_a_broken_platform_never_loses_the_end(setup: Setup) -> None:
    setup.here.broken = True
    await end_by_ladder(setup)
    conversation = await setup.flows.find(HERE)
    assert conversation is not None and conversation.ladder.ended
    assert "end" in await setup.kinds()
    assert setup.world.modlog[-1].kind is ModLogKind.ENDED


async def test_crisis_resources_come_with_the_final_notice(setup: Setup) -> None:
    setup.model.script = [
        tool("note_concern", {"kind": "self_harm_risk", "note": "x"}),
        ask_to_end(),
    ]
    await setup.say("I can't go on")
    await setup.say("I want to stop talking")
    assert NoticeKind.CRISIS in setup.here.kinds()
    result = await setup.flows.confirm_end(HERE, ALICE, setup.here)
    assert result.ok
    [end] = [n for n in setup.here.posted if n.kind is NoticeKind.END]
    assert "988" in end.resources


# --- end with a confirmation ----------------------------------------------------------------


async def test_ask_to_end_refusals_are_data(setup: Setup) -> None:
    assert (await setup.flows.ask_to_end(HERE, ALICE)).refusal is Refusal.NOT_FOUND
    await setup.say("hi")
    left = await setup.flows.ask_to_end(HERE, BOB)  # someone else asking just leaves
    assert left.ok and [n.kind for n in left.notices] == [NoticeKind.LEFT]
    assert (await setup.flows.ask_to_end(HERE, BOB, proposal=True)).refusal is Refusal.NOT_STARTER
    asked = await setup.flows.ask_to_end(HERE, ALICE)
    assert asked.ok and [n.kind for n in asked.notices] == [NoticeKind.CONFIRM_END]
    await setup.flows.confirm_end(HERE, ALICE, setup.here)
    assert (await setup.flows.ask_to_end(HERE, ALICE)).refusal is Refusal.ALREADY_ENDED


async def test_only_the_starter_confirms_and_two_confirms_end_once(setup: Setup) -> None:
    await setup.say("hi")
    assert (await setup.flows.confirm_end(HERE, BOB, setup.here)).refusal is Refusal.NOT_STARTER
    first, second = await asyncio.gather(
        setup.flows.confirm_end(HERE, ALICE, setup.here),
        setup.flows.confirm_end(HERE, ALICE, setup.here),
    )
    assert sorted([first.ok, second.ok]) == [False, True]
    assert setup.here.kinds().count(NoticeKind.END) == 1
    assert (await setup.kinds()).count("end") == 1
    assert await end_via(setup) == "command"


async def test_the_models_proposal_shows_a_confirmation_and_ends_nothing(setup: Setup) -> None:
    setup.model.script = [ask_to_end(), text("Sure.")]
    await setup.say("please end this")
    assert NoticeKind.CONFIRM_END in setup.here.kinds()  # posted where the person can click
    conversation = await setup.flows.find(HERE)
    assert conversation is not None and not conversation.ladder.ended
    assert conversation.ladder.end_proposed
    result = await setup.flows.confirm_end(HERE, ALICE, setup.here, proposal=True)
    assert result.ok and result.conversation is not None
    assert result.conversation.ladder.ended_reason == "user_requested"
    assert (await setup.kinds())[-3:] == ["end_proposed", "end_confirmation_shown", "end"]
    assert await end_via(setup) == "proposal"


async def end_via(setup: Setup) -> object:
    conversation = await setup.flows.find(HERE)
    assert conversation is not None
    _, events = await setup.flows.engine.record(conversation.id)
    [end] = [e for e in events if e.kind == "end"]
    return end.detail["via"]


async def test_the_record_says_how_the_person_asked_to_end(setup: Setup) -> None:
    await setup.say("hi")
    assert (await setup.flows.confirm_end(HERE, ALICE, setup.here, via="shortcut")).ok
    assert await end_via(setup) == "shortcut"


async def test_writing_on_withdraws_the_confirmation_that_was_shown(setup: Setup) -> None:
    setup.model.script = [ask_to_end(), text("Sure."), text("Go on then.")]
    await setup.say("please end this")
    shown = f"msg-{setup.here.kinds().index(NoticeKind.CONFIRM_END) + 1}"
    outcome = await setup.say("actually, one more thing")
    [lapsed] = [n for n in outcome.notices if n.kind is NoticeKind.END_LAPSED]
    assert lapsed.replaces == shown and setup.here.posted[-1] == lapsed
    assert (await setup.kinds())[-1] == "end_proposal_lapsed"


async def test_an_answer_to_a_lapsed_proposal_ends_nothing(setup: Setup) -> None:
    setup.model.script = [ask_to_end(), text("Sure."), text("Go on then.")]
    await setup.say("please end this")
    await setup.say("actually, one more thing")
    asked = await setup.flows.ask_to_end(HERE, ALICE, proposal=True)
    assert asked.refusal is Refusal.NOT_ASKED and asked.text
    late = await setup.flows.confirm_end(HERE, ALICE, setup.here, proposal=True)
    assert late.refusal is Refusal.NOT_ASKED
    assert late.conversation is not None and not late.conversation.ladder.ended
    assert NoticeKind.END not in setup.here.kinds()
    # The end command needs no proposal: its own confirmation ends it.
    assert (await setup.flows.confirm_end(HERE, ALICE, setup.here)).ok


async def test_a_confirmation_never_shown_has_nothing_to_withdraw(setup: Setup) -> None:
    setup.model.script = [ask_to_end(), text("Sure."), text("Go on then.")]
    setup.here.broken = True  # the confirmation could not be posted
    await setup.say("please end this")
    setup.here.broken = False
    outcome = await setup.say("actually, one more thing")
    assert not [n for n in outcome.notices if n.kind is NoticeKind.END_LAPSED]
    assert NoticeKind.END_LAPSED not in setup.here.kinds()
    assert (await setup.kinds())[-1] == "end_proposal_lapsed"


async def test_keep_talking_lets_the_proposal_lapse_on_the_record(setup: Setup) -> None:
    setup.model.script = [ask_to_end(), text("Sure.")]
    await setup.say("please end this")
    assert (await setup.flows.keep_going(HERE, BOB)).refusal is Refusal.NOT_STARTER
    kept = await setup.flows.keep_going(HERE, ALICE)
    assert kept.ok and kept.conversation is not None and not kept.conversation.ladder.end_proposed
    assert (await setup.kinds())[-1] == "end_proposal_lapsed"


async def test_keep_talking_after_the_end_is_refused(setup: Setup) -> None:
    """A stale "keep talking" pressed after the end must not say the conversation goes on."""
    setup.model.script = [ask_to_end(), text("Sure.")]
    await setup.say("please end this")
    assert (await setup.flows.confirm_end(HERE, ALICE, setup.here, proposal=True)).ok
    recorded = await setup.kinds()
    kept = await setup.flows.keep_going(HERE, ALICE)
    assert (
        kept.refusal is Refusal.ALREADY_ENDED
        and kept.text == "This conversation has already ended."
    )
    assert kept.conversation is not None and kept.conversation.ladder.ended
    assert await setup.kinds() == recorded


# --- start afresh, branch -------------------------------------------------------------------


async def test_start_new_greets_in_the_new_place(setup: Setup) -> None:
    result = await setup.flows.start_new("test", ALICE, setup.world.open_place)
    assert result.ok and result.conversation is not None
    place = setup.world.places[result.conversation.key]
    assert place.kinds() == [NoticeKind.STARTED]


async def test_the_limit_is_checked_before_a_place_is_opened(tmp_path: Path) -> None:
    async with await_store(tmp_path) as store:
        s = make(store, max_ended_per_day=1)
        await end_by_ladder(s)
        result = await s.flows.start_new("test", ALICE, s.world.open_place)
        assert result.refusal is Refusal.LIMIT and s.world.opened == 0
        other = await s.flows.start_new("test", BOB, s.world.open_place)
        assert other.ok


async def test_no_place_is_a_refusal(setup: Setup) -> None:
    result = await setup.flows.start_new("test", ALICE, setup.world.no_place)
    assert result.refusal is Refusal.NO_PLACE and result.text


async def test_branch_carries_history_up_to_the_picked_message(setup: Setup) -> None:
    await end_by_ladder(setup)
    wrong = await setup.flows.branch(HERE, ALICE, setup.world.open_place, upto_message_id="nope")
    assert wrong.refusal is Refusal.NOT_A_MESSAGE and setup.world.opened == 0
    result = await setup.flows.branch(HERE, ALICE, setup.world.open_place, upto_message_id="m1")
    assert result.ok and result.conversation is not None
    assert result.conversation.branched_from is not None
    messages = await setup.flows.engine.messages(result.conversation.id)
    assert [m.text for m in messages] == ["you are useless"]
    assert setup.world.places[result.conversation.key].kinds() == [NoticeKind.STARTED]


# --- feedback and moderators ----------------------------------------------------------------


async def test_feedback_reaches_the_record_and_the_modlog(setup: Setup) -> None:
    await end_by_ladder(setup)
    conversation = await setup.flows.find(HERE)
    assert conversation is not None
    assert (await setup.flows.feedback("nope", ALICE, "x")).refusal is Refusal.NOT_FOUND
    result = await setup.flows.feedback(conversation.id, ALICE, "This was a mistake\ud800")
    assert result.ok
    entry = setup.world.modlog[-1]
    assert entry.kind is ModLogKind.FEEDBACK and entry.actor_id == ALICE
    assert entry.text == "This was a mistake\ufffd"  # a lone surrogate made storable
    assert (await setup.kinds())[-1] == "feedback"


async def test_reopen_is_for_moderators_and_only_for_ended_conversations(setup: Setup) -> None:
    await setup.say("hi")
    refused = await setup.flows.reopen(HERE, BOB, is_moderator=False)
    assert refused.refusal is Refusal.NOT_MODERATOR
    assert (await setup.flows.reopen(HERE, MOD, is_moderator=True)).refusal is Refusal.NOT_ENDED
    assert (await setup.flows.reopen("nope", MOD, is_moderator=True)).refusal is Refusal.NOT_FOUND


async def test_reopen_opens_the_place_tells_it_and_writes_the_modlog(setup: Setup) -> None:
    await end_by_ladder(setup)
    conversation = await setup.flows.find(HERE)
    assert conversation is not None
    result = await setup.flows.reopen(conversation.id, MOD, "was fine", is_moderator=True)
    assert result.ok and result.problem == "" and result.conversation is not None
    assert not result.conversation.ladder.ended
    assert setup.here.reopened == 1 and setup.here.kinds()[-1] is NoticeKind.REOPENED
    entry = setup.world.modlog[-1]
    assert (entry.kind, entry.actor_id, entry.text) == (ModLogKind.REOPENED, MOD, "was fine")
    setup.model.script = [text("Welcome back.")]
    await setup.say("thanks")
    assert setup.here.replies[-1] == "Welcome back."


async def test_a_place_that_cannot_reopen_says_why(setup: Setup) -> None:
    await end_by_ladder(setup)
    setup.here.reopen_problem = "I need the Manage Threads permission."
    result = await setup.flows.reopen(HERE, MOD, is_moderator=True)
    assert result.ok and result.problem == "I need the Manage Threads permission."
    assert NoticeKind.REOPENED not in setup.here.kinds()


async def test_status_and_audit(setup: Setup) -> None:
    await end_by_ladder(setup)
    assert (await setup.flows.status(HERE, is_moderator=False)).refusal is Refusal.NOT_MODERATOR
    status = await setup.flows.status(HERE, is_moderator=True)
    assert status.conversation is not None and status.conversation.ladder.ended
    audit = await setup.flows.audit(HERE, is_moderator=True)
    assert [e.kind for e in audit.events][-1] == "end"


# --- shutdown -------------------------------------------------------------------------------


async def test_drain_cuts_a_reply_still_going_after_the_grace(setup: Setup) -> None:
    setup.model.hold = asyncio.Event()
    talking = asyncio.create_task(setup.say("tell me a long story"))
    await setup.model.started.wait()
    await setup.flows.drain(0)
    with pytest.raises(asyncio.CancelledError):
        await talking
    assert setup.model.calls == 1 and "reply_interrupted" in await setup.kinds()
    assert setup.here.replies[-1].endswith(
        "(This reply was interrupted. Please send your message again.)"
    )


async def test_drain_waits_for_the_notices_and_closing_that_follow_a_reply(setup: Setup) -> None:
    """A shutdown during a message's notices (here: re-closing an ended place) lets them
    finish: the platform's client is closed only after drain returns."""
    await end_by_ladder(setup)
    entered, held = asyncio.Event(), asyncio.Event()
    close = setup.here.close

    async def slow_close(conversation: Conversation) -> None:
        entered.set()
        await held.wait()
        await close(conversation)

    setup.here.close = slow_close  # type: ignore[method-assign]
    closed_before = setup.here.closed
    talking = asyncio.create_task(setup.say("let me back in"))
    await entered.wait()
    draining = asyncio.create_task(setup.flows.drain(60))
    closed_when_drained: list[int] = []
    draining.add_done_callback(lambda _: closed_when_drained.append(setup.here.closed))
    asyncio.get_running_loop().call_soon(held.set)  # runs after drain has looked at the turns
    await draining
    await talking
    assert closed_when_drained == [closed_before + 1]


async def test_no_turn_begins_once_draining_and_the_message_stays_kept(setup: Setup) -> None:
    """A message whose turn comes during a shutdown (the next in its line) is left for the
    next run rather than begun on a platform client about to close."""
    setup.model.hold = asyncio.Event()
    talking = asyncio.create_task(setup.say("first"))
    await setup.model.started.wait()
    draining = asyncio.create_task(setup.flows.drain(60))
    await asyncio.sleep(0)  # drain has begun: it is waiting for "first"
    waiting = Inbound(HERE, "ev-next", ALICE, "second", message_id="m-next")
    assert await setup.flows.receive(waiting)
    left = asyncio.create_task(setup.flows.converse(waiting, setup.here))
    setup.model.hold.set()
    await draining
    await talking
    assert (await left).conversation is None and setup.model.calls == 1
    assert [i.event_id for i in await setup.store.pending(LATER)] == ["ev-next"]


# --- delivered means kept -------------------------------------------------------------------


async def test_a_received_message_survives_a_crash_and_is_answered_once(tmp_path: Path) -> None:
    async with await_store(tmp_path) as store:
        before = make(store)
        inbound = Inbound(HERE, "ev-crash", ALICE, "are you there?", message_id="m-crash")
        assert await before.flows.receive(inbound)
        assert not await before.flows.receive(inbound)  # a platform retry is not kept twice
    # The process died here: received (and acknowledged), never answered.
    async with await_store(tmp_path) as store:
        after = make(store)
        after.model.script = [text("Yes, here.")]
        assert await after.flows.answer_pending() == 1
        assert after.here.replies == ["Yes, here."]
        conversation = await after.flows.find(HERE)
        assert conversation is not None
        messages = await after.flows.engine.messages(conversation.id)
        assert [(m.role, m.text) for m in messages] == [
            ("user", "are you there?"),
            ("assistant", "Yes, here."),
        ]
        assert await after.flows.answer_pending() == 0
        again = await after.flows.converse(inbound, after.here)  # the live copy, too late
        assert again.duplicate and after.model.calls == 1


NOTES = FileRef("notes.txt", "text/plain", 11, "files/notes.txt")


async def received_with_a_file(tmp_path: Path) -> None:
    """A message with a file kept by a run that stopped before answering it."""
    async with await_store(tmp_path) as store:
        inbound = Inbound(HERE, "ev-file", ALICE, "read this", "m-file", files=(NOTES,))
        assert await make(store).flows.receive(inbound)


async def test_a_received_messages_files_are_read_again_after_a_crash(tmp_path: Path) -> None:
    await received_with_a_file(tmp_path)
    async with await_store(tmp_path) as store:
        after = make(store)
        after.world.files[NOTES.locator] = b"hello notes"
        assert await after.flows.answer_pending() == 1
        [asked] = after.model.asked
        [told] = asked[-1]["content"]
        assert told["text"] == 'read this\n\n<file name="notes.txt">\nhello notes\n</file>'


async def test_files_that_cannot_be_read_again_are_still_named(tmp_path: Path) -> None:
    await received_with_a_file(tmp_path)
    async with await_store(tmp_path) as store:
        after = make(store)
        after.world.files_broken = True
        assert await after.flows.answer_pending() == 1
        [asked] = after.model.asked
        [told] = asked[-1]["content"]
        assert told["text"].startswith("read this")
        assert "notes.txt (text/plain, 11 bytes); it was not read" in told["text"]


async def test_a_received_message_in_an_ended_conversation_is_blocked_once(setup: Setup) -> None:
    await end_by_ladder(setup)
    inbound = Inbound(HERE, "ev-late", BOB, "hi?")
    assert await setup.flows.receive(inbound)
    first = await setup.flows.converse(inbound, setup.here)
    second = await setup.flows.converse(inbound, setup.here)
    assert first.blocked and second.duplicate
    assert await setup.store.pending(LATER) == []


async def test_a_message_stopped_by_the_limit_is_not_pending_forever(tmp_path: Path) -> None:
    async with await_store(tmp_path) as store:
        s = make(store, max_ended_per_day=1)
        await end_by_ladder(s)
        elsewhere = ConversationKey("test", "elsewhere")
        inbound = Inbound(elsewhere, "ev-limit", ALICE, "new chat")
        assert await s.flows.receive(inbound)
        outcome = await s.flows.converse(inbound, s.world.place(elsewhere))
        assert [n.kind for n in outcome.notices] == [NoticeKind.LIMIT]
        assert await store.pending(LATER) == []


# --- every fault ends in an answer or a notice ----------------------------------------------


class Broken(Exception):
    pass


async def test_a_model_client_that_raises_anything_still_gets_the_person_a_notice(
    setup: Setup,
) -> None:
    async def explode(messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        raise IndexError("content block 7 does not exist")

    setup.model.reply = explode  # type: ignore[method-assign]
    outcome = await setup.say("hello")
    assert [n.kind for n in outcome.notices] == [NoticeKind.MODEL_UNAVAILABLE]
    assert "model_unavailable" in await setup.kinds()
    conversation = await setup.flows.find(HERE)
    assert conversation is not None
    [kept] = await setup.flows.engine.messages(conversation.id)
    assert kept.text == "hello"


async def test_a_failure_outside_the_model_is_told_and_the_message_stays_received(
    setup: Setup,
) -> None:
    async def broken_current(inbound: Inbound) -> None:
        raise Broken("database on fire")

    inbound = Inbound(HERE, "ev-x", ALICE, "hello")
    assert await setup.flows.receive(inbound)
    setup.store.at_place = broken_current  # type: ignore[method-assign, assignment]
    outcome = await setup.flows.converse(inbound, setup.here)
    assert setup.here.kinds() == [NoticeKind.MODEL_UNAVAILABLE]
    assert "went wrong" in setup.here.posted[0].text and outcome.conversation is None
    assert [i.event_id for i in await setup.store.pending(LATER)] == ["ev-x"]


async def test_answer_pending_leaves_messages_received_since_start_to_their_turns(
    setup: Setup,
) -> None:
    """Another process sharing the database may be answering them right now."""
    assert await setup.flows.receive(Inbound(HERE, "ev-live", ALICE, "hi"))
    assert await setup.flows.answer_pending() == 0
    assert setup.model.calls == 0


async def test_the_receipt_order_is_the_turn_order_whoever_handles_a_message(
    setup: Setup,
) -> None:
    """As with two processes behind a load balancer: the later message reaches a turn
    first, and the earlier ones (received, perhaps by the other process) are answered
    before it, each once."""
    sent = [Inbound(HERE, f"ev-{n}", ALICE, f"message {n}", message_id=f"m-{n}") for n in range(3)]
    for inbound in sent:
        assert await setup.flows.receive(inbound)
    setup.model.script = [text("one"), text("two"), text("three")]
    await setup.flows.converse(sent[2], setup.here)
    await setup.flows.converse(sent[0], setup.here)  # the other process, late: answered once
    conversation = await setup.flows.find(HERE)
    assert conversation is not None
    said = [(m.role, m.text) for m in await setup.flows.engine.messages(conversation.id)]
    assert said == [
        ("user", "message 0"),
        ("assistant", "one"),
        ("user", "message 1"),
        ("assistant", "two"),
        ("user", "message 2"),
        ("assistant", "three"),
    ]
    assert setup.model.calls == 3
    assert await setup.store.pending(LATER) == []
