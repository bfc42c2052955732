"""Delivered once after a kill (issue #22): a run killed between showing a reply and
committing its turn leaves word of the reply in the store; the next run adopts a complete
one without asking the model again, and marks a half-shown one as cut short before it
answers anew. In memory: a SQLite store, a scripted model, a place that keeps messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.conversation import Attachment, Conversation, ConversationKey, FileRef, Inbound
from bot.engine import Engine, EngineConfig
from bot.flows import Flows
from bot.notices import Notice
from bot.ports import ModelReply, QuietPlace, ReplyShown, ShownReply, TextSink
from bot.store.sqlite import SqliteStore

HERE = ConversationKey("test", "here")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Killed(BaseException):
    """The process is gone: nothing it does from here on happens (no `except Exception`
    in the engine or the flows catches it, as nothing runs after a SIGKILL)."""


@dataclass
class Life:
    """Whether the first run still lives, and when it dies."""

    dead: bool = False
    die_when_shown: bool | None = None  # die right after the store kept this mark
    die_before_note: bool = False  # die as the first note goes to the store, unkept

    def check(self) -> None:
        if self.dead:
            raise Killed


class Model:
    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        self.calls += 1
        words = self.answers.pop(0)
        for word in words.split(" "):  # the reply arrives a word at a time
            await on_text(word + " ")
        return ModelReply([{"type": "text", "text": words + " "}], "end_turn")


@dataclass
class Channel:
    """What the platform shows: (id, author, text), oldest first."""

    messages: list[list[str]] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)  # reply id -> message it answers

    def post(self, author: str, text: str) -> str:
        message_id = f"m{len(self.messages) + 1}"
        self.messages.append([message_id, author, text])
        return message_id

    def edit(self, message_id: str, text: str) -> None:
        next(m for m in self.messages if m[0] == message_id)[2] = text

    def by_bot(self) -> list[str]:
        return [m[2] for m in self.messages if m[1] == "bot"]


class StreamedReply:
    """Posts at the first text, edits as more comes, tells the core as a platform does."""

    def __init__(self, channel: Channel, life: Life, whole: bool = False) -> None:
        self._channel, self._life, self._whole = channel, life, whole
        self._id = ""
        self._text = ""
        self._shown: ReplyShown | None = None
        self._answering = ""

    def track(self, answering: str, shown: ReplyShown) -> None:
        self._shown, self._answering = shown, answering

    async def thinking(self) -> None:
        return None

    async def text(self, delta: str) -> None:
        self._life.check()
        self._text += delta
        if self._whole:  # posted whole at the end, like Slack's short replies
            return
        if self._id:
            self._channel.edit(self._id, self._text)
            return
        self._id = self._channel.post("bot", self._text)
        assert self._shown is not None
        await self._shown(self._id, False)

    async def done(self) -> str:
        self._life.check()
        if self._whole:
            self._id = self._channel.post("bot", self._text)
        self._channel.edit(self._id, self._text)
        self._channel.marks[self._id] = self._answering  # the platform's own mark
        assert self._shown is not None
        await self._shown(self._id, True)
        return self._id

    async def close(self) -> None:
        return None


@dataclass
class Place(QuietPlace):
    channel: Channel
    life: Life
    cut: list[str] = field(default_factory=list)
    whole: bool = False

    def reply(self) -> StreamedReply:
        return StreamedReply(self.channel, self.life, self.whole)

    async def marked_reply(self, message_id: str) -> tuple[str, str] | None:
        marked = [i for i, answering in self.channel.marks.items() if answering == message_id]
        return next(((m[0], m[2]) for m in self.channel.messages if m[0] in marked), None)

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        return self.channel.post("bot", notice.text)

    async def reply_after(self, message_id: str, reply_id: str) -> str | None:
        ids = [m[0] for m in self.channel.messages]
        later = self.channel.messages[ids.index(message_id) + 1 :]
        return next((m[2] for m in later if m[0] == reply_id), None)

    async def cut_short(self, message_id: str, reply_id: str) -> None:
        self.cut.append(reply_id)
        text = next(m[2] for m in self.channel.messages if m[0] == reply_id)
        self.channel.edit(reply_id, text + "(cut short)")


@dataclass
class Places:
    home: Place

    def place(self, key: ConversationKey) -> Place:
        return self.home

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        return ()


class MortalStore(SqliteStore):
    """The first run's store: it dies with the run (every call after the kill fails)."""

    life: Life

    async def reply_shown(self, inbound: Inbound, reply_id: str, complete: bool) -> None:
        self.life.check()
        if self.life.die_before_note:
            self.life.dead = True
            raise Killed
        await super().reply_shown(inbound, reply_id, complete)
        if self.life.die_when_shown is complete:
            self.life.dead = True

    async def commit_turn(self, *args: Any, **kwargs: Any) -> Conversation:
        self.life.check()
        return await super().commit_turn(*args, **kwargs)


@dataclass
class Run:
    store: MortalStore
    channel: Channel
    life: Life
    place: Place
    model: Model
    message: Inbound

    def flows(self, model: Model, *, started: datetime) -> Flows:
        """A second run on the same database and platform (the first is dead)."""
        engine = Engine(self.store, model, EngineConfig(), clock=lambda: started)
        self.store.life = Life()  # the same database, opened by a process alive and well
        fresh = Place(self.channel, self.store.life)
        self.place = fresh
        return Flows(engine, "test", Places(fresh))


async def killed_run(
    tmp_path: Any, die_when_shown: bool | None, answer: str, *, whole: bool = False
) -> Run:
    """A first run that receives a message and dies after the store kept the given mark
    (with None: as it sends the first, which is not kept)."""
    store = await MortalStore.open(str(tmp_path / "quitbot.db"))
    life = Life(die_when_shown=die_when_shown, die_before_note=die_when_shown is None)
    store.life = life
    channel = Channel()
    model = Model(answer)
    engine = Engine(store, model, EngineConfig(), clock=lambda: T0)
    message = Inbound(HERE, "e1", "alice", "hello", message_id=channel.post("alice", "hello"))
    assert await engine.receive(message)
    place = Place(channel, life, whole=whole)
    with pytest.raises(Killed):
        await Flows(engine, "test", Places(place)).converse(message, place)
    return Run(store, channel, life, place, model, message)


async def stored(run: Run) -> list[tuple[str, str, str]]:
    conversation = await run.store.current(HERE)
    assert conversation is not None
    return [
        (m.role, m.text, m.platform_message_id) for m in await run.store.messages(conversation.id)
    ]


async def test_a_reply_shown_in_full_is_adopted_without_asking_the_model_again(
    tmp_path: Any,
) -> None:
    run = await killed_run(tmp_path, die_when_shown=True, answer="the whole answer")
    assert await run.store.shown(run.message) == ShownReply("m2", complete=True)

    again = Model()  # any call fails: there is nothing to answer
    assert await run.flows(again, started=T0 + timedelta(minutes=1)).answer_pending() == 1

    assert again.calls == 0
    assert run.channel.by_bot() == ["the whole answer "]  # once, as shown before
    assert await stored(run) == [
        ("user", "hello", "m1"),
        ("assistant", "the whole answer ", "m2"),
    ]
    conversation = await run.store.current(HERE)
    assert conversation is not None
    events = await run.store.events(conversation.id)
    assert [e.detail for e in events if e.kind == "reply_adopted"] == [
        {"message_id": "m1", "reply_id": "m2"}
    ]
    assert await run.store.pending(T0 + timedelta(days=1)) == []
    # The adopted reply is in the model's context, as if the model had written it.
    context = await run.store.recent_context(conversation.id, 10)
    assert context[-1].in_context
    assert json.loads(context[-1].api_json) == [
        {"role": "assistant", "content": [{"type": "text", "text": "the whole answer "}]}
    ]
    await run.store.close()


async def test_a_half_shown_reply_is_marked_cut_short_and_answered_anew(tmp_path: Any) -> None:
    run = await killed_run(tmp_path, die_when_shown=False, answer="a long answer cut")
    assert await run.store.shown(run.message) == ShownReply("m2", complete=False)
    assert run.channel.by_bot() == ["a "]

    again = Model("the answer")
    await run.flows(again, started=T0 + timedelta(minutes=1)).answer_pending()

    assert again.calls == 1
    assert run.place.cut == ["m2"]
    assert run.channel.by_bot() == ["a (cut short)", "the answer "]
    assert await stored(run) == [("user", "hello", "m1"), ("assistant", "the answer ", "m3")]
    assert await run.store.pending(T0 + timedelta(days=1)) == []
    await run.store.close()


async def test_a_complete_reply_no_longer_in_the_place_is_given_again(tmp_path: Any) -> None:
    run = await killed_run(tmp_path, die_when_shown=True, answer="deleted answer")
    run.channel.messages.pop()  # a moderator deleted it before the restart

    again = Model("given again")
    await run.flows(again, started=T0 + timedelta(minutes=1)).answer_pending()

    assert again.calls == 1
    assert run.channel.by_bot() == ["given again "]
    assert (await stored(run))[-1][:2] == ("assistant", "given again ")
    await run.store.close()


async def test_another_process_adopts_the_reply_before_answering_the_next_message(
    tmp_path: Any,
) -> None:
    run = await killed_run(tmp_path, die_when_shown=True, answer="first answer")
    flows = run.flows(Model("second answer"), started=T0)  # alive all along, not restarted
    later = Inbound(HERE, "e2", "alice", "next", message_id=run.channel.post("alice", "next"))
    assert await flows.receive(later)

    await flows.converse(later, run.place)

    assert run.channel.by_bot() == ["first answer ", "second answer "]
    assert [text for role, text, _ in await stored(run) if role == "assistant"] == [
        "first answer ",
        "second answer ",
    ]
    await run.store.close()


async def test_every_turn_leaves_word_of_its_reply_until_its_commit(tmp_path: Any) -> None:
    store = await SqliteStore.open(str(tmp_path / "quitbot.db"))
    channel = Channel()
    seen: list[ShownReply | None] = []
    message = Inbound(HERE, "e1", "alice", "hi", message_id=channel.post("alice", "hi"))

    class Watching(StreamedReply):
        async def done(self) -> str:
            reply_id = await super().done()
            seen.append(await store.shown(message))
            return reply_id

    class WatchedPlace(Place):
        def reply(self) -> StreamedReply:
            return Watching(self.channel, self.life)

    engine = Engine(store, Model("answered"), EngineConfig(), clock=lambda: T0)
    place = WatchedPlace(channel, Life())
    assert await engine.receive(message)
    await Flows(engine, "test", Places(place)).converse(message, place)

    assert seen == [ShownReply("m2", complete=True)]  # kept before the commit...
    assert await store.shown(message) is None  # ...and gone with it
    await store.close()


async def test_failing_to_keep_the_word_never_fails_the_reply(tmp_path: Any) -> None:
    class Broken(SqliteStore):
        async def reply_shown(self, inbound: Inbound, reply_id: str, complete: bool) -> None:
            raise OSError("disk full")

    store = await Broken.open(str(tmp_path / "quitbot.db"))
    channel = Channel()
    engine = Engine(store, Model("still answered"), EngineConfig(), clock=lambda: T0)
    message = Inbound(HERE, "e1", "alice", "hi", message_id=channel.post("alice", "hi"))
    place = Place(channel, Life())
    outcome = await Flows(engine, "test", Places(place)).converse(message, place)

    assert outcome.reply == "still answered "
    assert channel.by_bot() == ["still answered "]
    await store.close()


async def test_a_reply_the_store_never_heard_of_is_adopted_by_the_platforms_mark(
    tmp_path: Any,
) -> None:
    run = await killed_run(tmp_path, None, "posted whole", whole=True)
    assert await run.store.shown(run.message) is None  # the note never reached the store

    again = Model()
    await run.flows(again, started=T0 + timedelta(minutes=1)).answer_pending()

    assert again.calls == 0
    assert run.channel.by_bot() == ["posted whole "]
    assert await stored(run) == [("user", "hello", "m1"), ("assistant", "posted whole ", "m2")]
    await run.store.close()


async def test_without_word_or_mark_the_message_is_answered(tmp_path: Any) -> None:
    run = await killed_run(tmp_path, None, "never shown")  # died at the first post's note
    run.channel.marks.clear()  # a platform that keeps no mark (Discord)

    again = Model("answered")
    await run.flows(again, started=T0 + timedelta(minutes=1)).answer_pending()

    assert again.calls == 1
    assert run.place.cut == []  # nothing known to cut short
    assert (await stored(run))[-1][:2] == ("assistant", "answered ")
    await run.store.close()
