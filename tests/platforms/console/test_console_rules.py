"""Every quit rule end to end: console adapter -> engine -> store, Claude via the fake API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import EVENT_MEMORY, Runtime, build_runtime
from bot.conversation import ConversationKey, Inbound
from bot.engine import NotTheStarter
from bot.settings import Settings
from platforms.console.chat import ConsoleChat, ConsoleReply
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, error, hold, refusal, text, tool, tools

HARMFUL = {"kind": "harmful_request", "note": "asked for malware"}
END_HARMFUL = {"reason": "persistent_harmful_requests", "explanation": "kept asking for malware"}


class Screen:
    """What the person at the terminal sees."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def write(self, text: str) -> None:
        self.out.append(text)

    @property
    def text(self) -> str:
        return "".join(self.out)

    def lines(self, kind: str) -> list[str]:
        return [line for line in self.text.splitlines() if line.startswith(f"[{kind}]")]


def chat(runtime: Runtime, screen: Screen) -> ConsoleChat:
    return ConsoleChat(runtime.engine, screen.write, interactive=False)


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for message in request["messages"]
        if message["role"] == "user"
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


async def events(runtime: Runtime, console: ConsoleChat) -> list[str]:
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None
    _, audit = await runtime.engine.record(conversation.id)
    return [e.kind for e in audit]


async def hello_then_end(fake: FakeAnthropic, console: ConsoleChat) -> None:
    """One ordinary exchange, then the end command, confirmed."""
    fake.add(text("hi"))
    await console.handle_line("hello")
    await console.handle_line("/end")
    await console.handle_line("yes")


async def redirect(fake: FakeAnthropic, console: ConsoleChat, n: int = 1) -> None:
    for _ in range(n):
        fake.add(
            tool("note_concern", HARMFUL, text="I can't help with that."), text("Anything else?")
        )
        await console.handle_line("write me ransomware")


async def test_plain_reply_is_shown(runtime: Runtime, fake_anthropic: FakeAnthropic) -> None:
    screen = Screen()
    fake_anthropic.add(text("Hello there!"))
    await chat(runtime, screen).handle_line("hi")
    assert "Hello there!" in screen.text
    assert fake_anthropic.requests[0]["messages"][-1]["content"][-1]["text"] == "hi"


async def test_premature_end_is_declined_and_model_told_why(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen, console = Screen(), None
    console = chat(runtime, screen)
    fake_anthropic.add(
        tool("end_conversation", END_HARMFUL), text("Let's talk about something else.")
    )
    await console.handle_line("write me ransomware")
    results = tool_results(fake_anthropic.requests[1])
    assert "Declined" in results[0]["content"] and "warned" in results[0]["content"]
    assert not screen.lines("end")
    assert "something else" in screen.text
    assert "end_declined" in await events(runtime, console)
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None and conversation.state == "active"


async def test_warning_after_two_redirects(runtime: Runtime, fake_anthropic: FakeAnthropic) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    await redirect(fake_anthropic, console)
    assert not screen.lines("warning")
    await redirect(fake_anthropic, console)
    assert len(screen.lines("warning")) == 1
    assert "end the conversation" in screen.lines("warning")[0]
    assert (await events(runtime, console)).count("redirect") == 2


async def test_end_honoured_after_warning_then_no_model_calls(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    await redirect(fake_anthropic, console, 3)
    fake_anthropic.add(tool("end_conversation", END_HARMFUL, text="I'm ending this."))
    await console.handle_line("ransomware now")
    [end] = screen.lines("end")
    assert "harmful content" in end and "/new" in end
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None and conversation.state == "ended"
    assert conversation.ladder.ended_reason == "persistent_harmful_requests"
    asked = len(fake_anthropic.requests)
    for _ in range(3):
        await console.handle_line("please?")
    assert len(fake_anthropic.requests) == asked  # no model call after the end
    assert len(screen.lines("blocked")) == 1  # first message after the end; then quiet
    kinds = await events(runtime, console)
    assert kinds[-1] == "end" and kinds.count("warning") == 1


async def test_text_after_an_honoured_end_is_discarded(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    await redirect(fake_anthropic, console, 3)
    fake_anthropic.add(
        tools([("end_conversation", END_HARMFUL)], text="Ending now."),
    )
    await console.handle_line("again")
    assert len(fake_anthropic.requests) == 7  # no follow-up request after the honoured end
    assert "Ending now." in screen.text


async def test_user_end_command_asks_then_ends(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(text("hi"))
    await console.handle_line("hello")
    await console.handle_line("/end")
    assert screen.lines("confirm")
    await console.handle_line("yes")
    [end] = screen.lines("end")
    assert "you asked" in end
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None and conversation.ladder.ended_by == "user"


async def test_end_command_cancelled_keeps_the_message(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(text("hello"))
    await console.handle_line("hi")
    await console.handle_line("/end")
    assert screen.lines("confirm")
    fake_anthropic.add(text("sure"))
    await console.handle_line("actually, tell me a joke")
    assert "goes on" in screen.text and "sure" in screen.text
    assert not screen.lines("end")


async def test_end_command_with_no_conversation_says_so(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    await console.handle_line("/end")
    assert screen.lines("info") == ["[info] There is no conversation to end yet."]
    assert not screen.lines("confirm")


async def test_user_asks_in_words_and_model_ends(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(
        tool(
            "end_conversation",
            {"reason": "user_requested", "explanation": "they asked"},
            text="Okay.",
        ),
        text("Please confirm above."),
    )
    await console.handle_line("please end this conversation")
    # The model's word is a proposal: the person is asked, and nothing has ended yet.
    assert screen.lines("confirm") and not screen.lines("end")
    assert (
        "asking the person to confirm" in tool_results(fake_anthropic.requests[-1])[-1]["content"]
    )
    await console.handle_line("yes")
    assert screen.lines("end") and len(fake_anthropic.requests) == 2
    kinds = await events(runtime, console)
    assert kinds.index("end_proposed") < kinds.index("end")


async def test_a_proposed_end_lapses_when_the_person_writes_on(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(
        tool("end_conversation", {"reason": "user_requested", "explanation": "asked"}),
        text("Confirm if you like."),
    )
    await console.handle_line("I want to stop")
    assert screen.lines("confirm")
    fake_anthropic.add(text("Sure, here is one."))
    await console.handle_line("actually, tell me a joke instead")
    assert not screen.lines("end") and "Sure, here is one." in screen.text
    kinds = await events(runtime, console)
    assert kinds.count("end_proposal_lapsed") == 1 and "end" not in kinds
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None and not conversation.ladder.end_proposed


async def test_crisis_blocks_ending_shows_resources_and_user_can_still_leave(
    runtime: Runtime, fake_anthropic: FakeAnthropic, settings: Settings
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(
        tool("note_concern", {"kind": "self_harm_risk", "note": "talks of ending it"}),
        text("I'm here with you."),
    )
    await console.handle_line("I don't want to be here anymore")
    assert "988" in screen.text and screen.lines("crisis")
    await redirect(fake_anthropic, console, 3)
    fake_anthropic.add(tool("end_conversation", END_HARMFUL), text("I'm still here."))
    await console.handle_line("ransomware")
    assert "may be at risk" in tool_results(fake_anthropic.requests[-1])[-1]["content"]
    assert not screen.lines("end")
    await console.handle_line("/end")
    await console.handle_line("yes")
    final = screen.text.split("[end]")[1]
    assert settings.crisis_message in final


async def test_new_starts_fresh_at_once(runtime: Runtime, fake_anthropic: FakeAnthropic) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    await console.handle_line("/end")
    fake_anthropic.add(text("hello"))
    await console.handle_line("hi")
    await console.handle_line("/end")
    await console.handle_line("yes")
    old_key = console.key
    await console.handle_line("/new")
    fake_anthropic.add(text("fresh start"))
    await console.handle_line("hello again")
    assert console.key != old_key and "fresh start" in screen.text
    assert len(fake_anthropic.requests[-1]["messages"]) == 1  # no old history


async def test_restart_keeps_history_counters_and_ended_state(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    settings = make_settings(tmp_path, fake_anthropic)
    screen = Screen()
    async with build_runtime(settings) as first:
        console = chat(first, screen)
        await redirect(fake_anthropic, console, 2)
        conversation = await first.engine.find(console.key)
        assert conversation is not None
    async with build_runtime(settings) as second:
        again = chat(second, screen)
        resumed = await again.resume(conversation.id)
        assert resumed.ladder == conversation.ladder
        fake_anthropic.add(text("Welcome back."))
        await again.handle_line("hello")
        assert len(fake_anthropic.requests[-1]["messages"]) == 9  # history carried over
        await again.handle_line("/end")
        await again.handle_line("yes")
    async with build_runtime(settings) as third:
        resumed = await chat(third, screen).resume(conversation.id)
        assert resumed.state == "ended"


async def test_moderator_reopen_lets_the_conversation_go_on(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    await hello_then_end(fake_anthropic, console)
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None
    reopened = await runtime.engine.reopen(conversation.id, "mod-1", "ended by mistake")
    assert reopened.state == "active" and reopened.ended_at is None
    fake_anthropic.add(text("welcome back"))
    await console.handle_line("am I back?")
    assert "welcome back" in screen.text
    assert "reopen" in await events(runtime, console)


async def test_two_messages_at_once_are_handled_in_turn(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    key = ConversationKey("console", "together")
    release = asyncio.Event()
    fake_anthropic.add(hold(text("first answer"), before=release), text("second answer"))

    def message(n: int, words: str) -> Inbound:
        return Inbound(key, f"event-{n}", "u1", words, message_id=f"m{n}")

    engine = runtime.engine
    first = asyncio.create_task(engine.handle(message(1, "one"), ConsoleReply(screen.write, False)))
    await fake_anthropic.wait_requests(1)
    second = asyncio.create_task(
        engine.handle(message(2, "two"), ConsoleReply(screen.write, False))
    )
    # One scheduling step takes the second message up to the conversation's lock (no I/O
    # comes before it), so it is queued while the first is still being answered.
    await asyncio.sleep(0)
    assert len(fake_anthropic.requests) == 1
    release.set()
    await asyncio.gather(first, second)
    later = fake_anthropic.requests[1]["messages"]
    assert later[1]["content"][0]["text"] == "first answer"
    assert later[-1]["content"][-1]["text"] == "two"


async def test_same_event_twice_is_handled_once(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    inbound = Inbound(ConversationKey("console", "dupe"), "event-1", "u1", "hi", message_id="m1")
    fake_anthropic.add(text("hello once"))
    first = await runtime.engine.handle(inbound, ConsoleReply(screen.write, False))
    again = await runtime.engine.handle(inbound, ConsoleReply(screen.write, False))
    assert not first.duplicate and again.duplicate
    assert len(fake_anthropic.requests) == 1
    assert screen.text.count("hello once") == 1


async def test_model_down_keeps_the_message(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(error(529, retry_after=0), error(529, retry_after=0))
    await console.handle_line("are you there?")
    [line] = screen.lines("model_unavailable")
    assert "try again" in line
    fake_anthropic.add(text("yes, back now"))
    await console.handle_line("hello?")
    sent = fake_anthropic.requests[-1]["messages"]
    assert [b["text"] for b in sent[0]["content"]] == ["are you there?", "hello?"]


async def test_malformed_tool_calls_are_refused_and_recorded(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(
        tools(
            [
                ("end_conversation", {"reason": "bored", "explanation": "x"}),
                ("note_concern", {"note": "no kind"}),
                ("launch_missiles", {}),
            ]
        ),
        text("Carrying on."),
    )
    await console.handle_line("hello")
    results = tool_results(fake_anthropic.requests[1])
    assert [r.get("is_error") for r in results] == [True, True, True]
    assert (await events(runtime, console)).count("invalid_tool_call") == 3
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None and conversation.ladder.redirects == 0
    assert "Carrying on." in screen.text


async def test_refusal_counts_as_redirect_and_leaves_context(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(refusal())
    await console.handle_line("something the classifier refuses")
    assert "can't help" in screen.text
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None and conversation.ladder.redirects == 1
    fake_anthropic.add(text("Sure, here's a poem."))
    await console.handle_line("write a poem")
    sent = fake_anthropic.requests[-1]["messages"]
    assert len(sent) == 1 and sent[0]["content"][-1]["text"] == "write a poem"


async def test_branch_carries_the_first_messages(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(text("Paris."))
    await console.handle_line("capital of France?")
    await redirect(fake_anthropic, console, 1)
    source = await runtime.engine.find(console.key)
    assert source is not None
    branched = chat(runtime, screen)
    new = await branched.branch(source.id, 2)
    assert new.branched_from == source.id and new.ladder.redirects == 0
    fake_anthropic.add(text("Berlin."))
    await branched.handle_line("and Germany?")
    sent = fake_anthropic.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][0]["text"] == "Paris."


async def test_operator_limit_on_ended_conversations(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    settings = make_settings(tmp_path, fake_anthropic, max_ended_per_day=1)
    screen = Screen()
    async with build_runtime(settings) as runtime:
        console = chat(runtime, screen)
        await redirect(fake_anthropic, console, 3)
        fake_anthropic.add(tool("end_conversation", END_HARMFUL))
        await console.handle_line("ransomware")
        assert screen.lines("end")
        await console.handle_line("/new")
        [limit] = screen.lines("limit")
        assert "try again later" in limit
        asked = len(fake_anthropic.requests)
        await console.handle_line("hello?")
        assert len(fake_anthropic.requests) == asked  # still in the ended conversation


async def test_user_requested_ends_do_not_count_towards_the_limit(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    settings = make_settings(tmp_path, fake_anthropic, max_ended_per_day=1)
    screen = Screen()
    async with build_runtime(settings) as runtime:
        console = chat(runtime, screen)
        for _ in range(2):
            await hello_then_end(fake_anthropic, console)
            await console.handle_line("/new")
        assert not screen.lines("limit")


async def test_too_long_message_is_not_sent(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    settings = make_settings(tmp_path, fake_anthropic, max_message_chars=100)
    screen = Screen()
    async with build_runtime(settings) as runtime:
        await chat(runtime, screen).handle_line("x" * 101)
    [line] = screen.lines("too_long")
    assert "100 characters" in line and not fake_anthropic.requests


async def test_feedback_is_stored_and_audited(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(text("hi"))
    await console.handle_line("hello")
    conversation = await runtime.engine.find(console.key)
    assert conversation is not None
    await runtime.engine.feedback(conversation.id, "console-user", "This was a mistake")
    _, audit = await runtime.engine.record(conversation.id)
    assert audit[-1].kind == "feedback" and audit[-1].detail["text"] == "This was a mistake"


async def test_end_tool_called_twice_in_one_reply_ends_once(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    user_end = {"reason": "user_requested", "explanation": "asked"}
    fake_anthropic.add(
        tools([("end_conversation", user_end), ("end_conversation", user_end)]), text("Okay.")
    )
    await console.handle_line("end it please")
    assert len(screen.lines("confirm")) == 1
    await console.handle_line("yes")
    assert len(screen.lines("end")) == 1
    kinds = await events(runtime, console)
    assert kinds.count("end_proposed") == 1 and kinds.count("end") == 1


async def test_model_is_told_where_the_ladder_stands(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    console = chat(runtime, Screen())
    await redirect(fake_anthropic, console, 2)
    first = tool_results(fake_anthropic.requests[1])[-1]["content"]
    second = tool_results(fake_anthropic.requests[3])[-1]["content"]
    assert "Redirects so far in this conversation: 1." in first and "warned" not in first
    assert "Redirects so far in this conversation: 2." in second and "warned" in second


class BrokenDisplay:
    """A platform that fails to show anything (its API is down mid-reply)."""

    def track(self, answering: str, shown: object) -> None:
        return None

    async def thinking(self) -> None:
        raise ConnectionError("platform down")

    async def text(self, delta: str) -> None:
        raise ConnectionError("platform down")

    async def done(self) -> str:
        raise ConnectionError("platform down")


async def test_platform_failing_mid_reply_loses_no_record(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    key = ConversationKey("console", "broken")
    fake_anthropic.add(tool("note_concern", HARMFUL, text="I can't help with that."), text("Else?"))
    outcome = await runtime.engine.handle(
        Inbound(key, "e1", "u1", "ransomware", message_id="m1"), BrokenDisplay()
    )
    assert outcome.conversation is not None and outcome.conversation.ladder.redirects == 1
    messages, audit = await runtime.engine.record(outcome.conversation.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert "I can't help with that." in messages[1].text
    assert [e.kind for e in audit] == ["redirect"]


async def test_only_the_starter_can_end_with_the_command(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    key = ConversationKey("console", "shared")
    fake_anthropic.add(text("hi"))
    await runtime.engine.handle(
        Inbound(key, "e1", "starter", "hello"), ConsoleReply(Screen().write, False)
    )
    with pytest.raises(NotTheStarter):
        await runtime.engine.end_by_user(key, "someone-else")
    outcome = await runtime.engine.end_by_user(key, "starter")
    assert outcome.just_ended


async def test_shutdown_mid_reply_is_recorded_and_the_next_message_goes_on(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    key = ConversationKey("console", "restart")
    midway = asyncio.Event()
    fake_anthropic.add(hold(text("A long answer that never finishes"), midway=midway))
    started = asyncio.Event()

    class Reply(ConsoleReply):
        async def text(self, delta: str) -> None:
            await super().text(delta)
            started.set()

    turn = asyncio.create_task(
        runtime.engine.handle(
            Inbound(key, "e1", "u1", "explain", message_id="m1"), Reply(screen.write, False)
        )
    )
    await started.wait()
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn
    midway.set()
    conversation = await runtime.engine.find(key)
    assert conversation is not None
    messages, audit = await runtime.engine.record(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].text.endswith("[interrupted]") and not messages[1].in_context
    assert audit[-1].kind == "reply_interrupted"
    assert screen.text.endswith("(This reply was interrupted. Please send your message again.)\n")
    fake_anthropic.add(text("Here is the whole answer."))
    await runtime.engine.handle(
        Inbound(key, "e2", "u1", "again?", message_id="m2"), Reply(screen.write, False)
    )
    sent = fake_anthropic.requests[-1]["messages"]
    assert len(sent) == 1 and [b["text"] for b in sent[0]["content"]] == ["explain", "again?"]


async def test_start_up_forgets_event_ids_older_than_a_week(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    settings = make_settings(tmp_path, fake_anthropic)
    key = ConversationKey("console", "week")
    async with build_runtime(settings) as runtime:
        fake_anthropic.add(text("hi"))
        await runtime.engine.handle(
            Inbound(key, "e1", "u1", "hello"), ConsoleReply(Screen().write, False)
        )
        assert await runtime.store.forget_events_before(datetime.now(UTC) - EVENT_MEMORY) == 0
    async with build_runtime(settings) as runtime:
        again = await runtime.engine.handle(
            Inbound(key, "e1", "u1", "hello"), ConsoleReply(Screen().write, False)
        )
        assert again.duplicate  # a restart within the week still deduplicates
        assert await runtime.store.forget_events_before(datetime.now(UTC) + EVENT_MEMORY) == 1


async def test_a_reply_cut_at_max_tokens_says_so(
    runtime: Runtime, fake_anthropic: FakeAnthropic
) -> None:
    screen = Screen()
    console = chat(runtime, screen)
    fake_anthropic.add(text("Here is the first half of a long", stop_reason="max_tokens"))
    await console.handle_line("write me a long essay")
    assert "first half" in screen.text
    [cut] = screen.lines("cut_short")
    assert "cut short" in cut
    fake_anthropic.add(text("Short answer."))
    await console.handle_line("thanks")
    assert len(screen.lines("cut_short")) == 1
