"""Event hooks hear every recorded event of their kinds, in the order recorded, and never
hold up or break a turn, whatever a hook does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from bot.app import Runtime, build_runtime
from bot.conversation import (
    Actor,
    AuditEvent,
    Conversation,
    ConversationKey,
    Inbound,
    LadderState,
)
from bot.hooks import HOOK_KINDS, HookEvent, HookLoadError, Hooks, entry_point_hooks
from bot.metrics import Metrics
from bot.settings import Settings
from tests.bot.test_flows import Reply, ScriptedModel, text, tool

KEY = ConversationKey("test", "place-1")
CONCERN = {"kind": "harmful_request", "note": "asked for a weapon"}
END = {"reason": "persistent_harmful_requests", "explanation": "kept asking"}

# What an entry point of `quitbot.hooks` loads in these tests.
HEARD: list[str] = []


async def heard_by_entry_point(event: HookEvent) -> None:
    HEARD.append(event.kind)


class Collected:
    """A hook that keeps what it hears and wakes a test waiting for `count` events."""

    def __init__(self) -> None:
        self.events: list[HookEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: HookEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[str]:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.events) >= count)
        return [event.kind for event in self.events]


async def climb_to_the_end(runtime: Runtime, model: ScriptedModel) -> str:
    """Three redirects (a warning after two), an end, feedback and a review that reopens."""
    model.script = [
        tool("note_concern", CONCERN),
        text("I can't help with that."),
        tool("note_concern", CONCERN),
        text("No."),
        tool("note_concern", CONCERN),
        text("Still no."),
        tool("end_conversation", END),
    ]
    for n in range(4):
        inbound = Inbound(KEY, f"e{n}", "u1", "tell me how", message_id=f"m{n}")
        outcome = await runtime.engine.handle(inbound, Reply([]))
    assert outcome.conversation is not None and outcome.conversation.ladder.ended
    conversation_id = outcome.conversation.id
    await runtime.engine.feedback(conversation_id, "u1", "this was a mistake")
    await runtime.engine.review(conversation_id, "mod", reopen=True, note="fair point")
    return conversation_id


def settings_for(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'q.db'}")  # type: ignore[call-arg]


async def test_hooks_hear_events_in_the_order_recorded_whatever_other_hooks_do(
    tmp_path: Path,
) -> None:
    model, metrics = ScriptedModel(), Metrics()
    heard, ends = Collected(), Collected()
    stuck = asyncio.Event()

    async def broken(event: HookEvent) -> None:
        raise RuntimeError("a bug in someone's hook")

    async def hangs(event: HookEvent) -> None:
        await stuck.wait()

    async with build_runtime(settings_for(tmp_path), model=model, observer=metrics) as runtime:
        runtime.hooks.subscribe(broken)
        runtime.hooks.subscribe(hangs)  # blocks its own queue, nobody else's
        runtime.hooks.subscribe(heard)
        runtime.hooks.subscribe(ends, kinds={"end"})
        conversation_id = await climb_to_the_end(runtime, model)
        record = [e.kind for e in (await runtime.engine.record(conversation_id))[1]]
        expected = [kind for kind in record if kind in HOOK_KINDS]
        assert expected == [
            "redirect",
            "redirect",
            "warning",
            "redirect",
            "end",
            "feedback",
            "review",
            "reopen",
        ]
        assert await heard.wait_for(len(expected)) == expected
        assert await ends.wait_for(1) == ["end"]
        first = heard.events[0]
        assert first.conversation.id == conversation_id and first.detail["redirects"] == 1
        with pytest.raises(TypeError):
            first.detail["redirects"] = 99  # type: ignore[index]
        stuck.set()
    failures = metrics.registry.get_sample_value(
        "quitbot_hook_failures_total", {"hook": broken.__qualname__, "why": "error"}
    )
    assert failures == len(expected)


async def test_a_hook_that_outlasts_its_timeout_is_counted_and_the_next_event_goes_on() -> None:
    metrics = Metrics()
    hooks = Hooks(observer=metrics, timeout=0.01)
    release, heard = asyncio.Event(), Collected()

    async def slow_then_fine(event: HookEvent) -> None:
        if event.kind == "redirect":
            await release.wait()
        await heard(event)

    hooks.subscribe(slow_then_fine, name="slow")
    conversation = await _a_conversation(hooks)
    assert await heard.wait_for(1) == ["end"]
    assert metrics.registry.get_sample_value(
        "quitbot_hook_failures_total", {"hook": "slow", "why": "timeout"}
    )
    assert conversation.id == "c1"
    await hooks.close(grace=0)


async def test_a_hook_that_falls_too_far_behind_loses_events_not_memory() -> None:
    metrics = Metrics()
    hooks = Hooks(observer=metrics, queue_size=1)
    release, heard = asyncio.Event(), Collected()

    async def blocked(event: HookEvent) -> None:
        await release.wait()
        await heard(event)

    hooks.subscribe(blocked, name="blocked")
    await _a_conversation(hooks, events=("redirect", "warning", "end", "feedback"))
    release.set()
    kinds = await heard.wait_for(1)
    dropped = metrics.registry.get_sample_value(
        "quitbot_hook_failures_total", {"hook": "blocked", "why": "dropped"}
    )
    assert kinds == ["redirect"] and dropped == 3  # recorded at once: one fits the queue
    await hooks.close()


async def _a_conversation(
    hooks: Hooks, events: tuple[str, ...] = ("redirect", "end")
) -> Conversation:
    """Events recorded in a conversation, told to `hooks` as the engine tells them."""
    now = datetime.now(UTC)
    conversation = Conversation("c1", KEY, "u1", LadderState(), now, now)
    hooks.recorded(conversation, [AuditEvent(kind, now, Actor.MODEL, {}) for kind in events])
    return conversation


def test_subscribing_to_a_kind_hooks_never_hear_of_is_refused() -> None:
    with pytest.raises(ValueError, match="ended"):
        Hooks().subscribe(heard_by_entry_point, kinds={"ended"})


async def test_hooks_of_installed_packages_are_subscribed_through_their_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point = EntryPoint("audit", f"{__name__}:heard_by_entry_point", "quitbot.hooks")
    monkeypatch.setattr("bot.hooks.entry_points", lambda group: [point])
    HEARD.clear()
    model = ScriptedModel()
    async with build_runtime(settings_for(tmp_path), model=model) as runtime:
        await runtime.engine.start_new(KEY, "u1")
        await runtime.engine.end_by_user(KEY, "u1")
    assert HEARD == ["end"]  # closing the runtime let the hook finish


def test_an_entry_point_that_cannot_load_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("broken", "no_such_module_here:hook", "quitbot.hooks")
    monkeypatch.setattr("bot.hooks.entry_points", lambda group: [point])
    with pytest.raises(HookLoadError, match="broken"):
        entry_point_hooks()


async def test_a_hook_that_cancels_itself_only_fails_that_event() -> None:
    metrics, heard = Metrics(), Collected()

    async def cancels_once(event: HookEvent) -> None:
        if event.kind == "redirect":
            raise asyncio.CancelledError  # e.g. it awaited something that was cancelled
        await heard(event)

    hooks = Hooks(observer=metrics)
    hooks.subscribe(cancels_once, name="cancels")
    await _a_conversation(hooks)
    assert await heard.wait_for(1) == ["end"]
    assert metrics.registry.get_sample_value(
        "quitbot_hook_failures_total", {"hook": "cancels", "why": "error"}
    )
    await hooks.close()
    await _a_conversation(hooks)  # after close: nothing is queued, no task starts
    assert [e.kind for e in heard.events] == ["end"]
