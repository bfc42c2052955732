"""Metrics: each one moves when its event happens; /healthz, /readyz and /metrics over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.app import build_runtime
from bot.conversation import ConversationKey, Inbound
from bot.engine import Engine, EngineConfig
from bot.flows import Flows
from bot.health import health_app, serving
from bot.metrics import MeteredModel, Metrics, error_kind
from bot.policy import Rules
from bot.ports import ModelReply, ModelUnavailable, TextSink
from bot.readiness import Readiness
from bot.store.sqlite import SqliteStore
from tests.bot.test_flows import HERE, Reply, ScriptedModel, World, text, tool
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, Response, _message

ABUSE = {"kind": "abuse", "note": "insults"}
END = {"reason": "persistent_abuse", "explanation": "kept insulting"}


class Ticks:
    """A monotonic clock that moves only when the model says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TimedModel(ScriptedModel):
    """Takes 0.5 s to its first text and 2 s in all, on the `Ticks` clock."""

    def __init__(self, clock: Ticks) -> None:
        super().__init__()
        self.clock = clock
        self.fail: Exception | None = None

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure

        async def later(delta: str) -> None:
            self.clock.now += 0.5
            await on_text(delta)

        answer = await super().reply(messages, later)
        self.clock.now += 2.0 if not any(b["type"] == "text" for b in answer.content) else 1.5
        return answer


class Rig:
    def __init__(self, store: SqliteStore) -> None:
        self.metrics = Metrics()
        self.clock = Ticks()
        self.model = TimedModel(self.clock)
        self.world = World()
        model = MeteredModel(self.model, self.metrics, clock=self.clock)
        config = EngineConfig(rules=Rules(2, 3), crisis_message="call 988")
        self.engine = Engine(store, model, config, observer=self.metrics)
        self.flows = Flows(self.engine, "test", self.world, self.world)
        self.n = 0

    async def say(self, words: str, key: ConversationKey = HERE) -> Any:
        self.n += 1
        inbound = Inbound(key, f"ev{self.n}", "alice", words, message_id=f"m{self.n}")
        return await self.flows.converse(inbound, self.world.place(key))

    def value(self, name: str, **labels: str) -> float:
        found = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = await SqliteStore.open(str(tmp_path / "metrics.db"))
    try:
        yield Rig(store)
    finally:
        await store.close()


async def test_every_metric_moves_when_its_event_happens(rig: Rig) -> None:
    await rig.say("hello")
    assert rig.value("quitbot_messages_received_total", platform="test") == 1
    assert rig.value("quitbot_replies_total", platform="test") == 1
    assert rig.value("quitbot_model_first_token_seconds_count") == 1
    assert rig.value("quitbot_model_first_token_seconds_sum") == 0.5
    assert rig.value("quitbot_model_response_seconds_sum") == 2.0

    for _ in range(2):
        rig.model.script = [tool("note_concern", ABUSE), text("Let's keep it civil.")]
        await rig.say("you are useless")
    assert rig.value("quitbot_redirects_total", platform="test") == 2
    assert rig.value("quitbot_warnings_total", platform="test") == 1

    rig.model.script = [tool("end_conversation", END), text("Let's go on.")]
    await rig.say("end it then")
    declined = {"platform": "test", "why": "too_few_redirects"}
    assert rig.value("quitbot_declined_ends_total", **declined) == 1
    assert rig.value("quitbot_ends_total", platform="test", reason="persistent_abuse") == 0

    rig.model.script = [tool("note_concern", ABUSE), tool("end_conversation", END, n=2)]
    await rig.say("still useless")
    ended = {"platform": "test", "reason": "persistent_abuse", "actor": "model"}
    assert rig.value("quitbot_ends_total", **ended) == 1
    assert rig.value("quitbot_redirects_total", platform="test") == 3

    calls = rig.model.calls
    await rig.say("hello?")
    assert rig.model.calls == calls
    assert rig.value("quitbot_blocked_messages_total", platform="test") == 1
    assert rig.value("quitbot_messages_received_total", platform="test") == 6

    conversation = await rig.flows.find(HERE)
    assert conversation is not None
    await rig.flows.feedback(conversation.id, "alice", "this was a mistake")
    assert rig.value("quitbot_feedback_total", platform="test") == 1
    await rig.flows.reopen(conversation.id, "mod", "fair", is_moderator=True)
    assert rig.value("quitbot_reopens_total", platform="test") == 1

    elsewhere = ConversationKey("test", "elsewhere")
    rig.model.script = [tool("note_concern", {"kind": "self_harm_risk", "note": "?"})]
    await rig.say("I want to disappear", elsewhere)
    assert rig.value("quitbot_crisis_flags_total", platform="test") == 1

    try:
        raise ConnectionError("reset")
    except ConnectionError as cause:
        failure = ModelUnavailable("the connection dropped")
        failure.__cause__ = cause
    rig.model.fail = failure
    rig.world.place(elsewhere).broken = True  # and the "try again" notice cannot be posted
    await rig.say("are you there?", elsewhere)
    assert rig.value("quitbot_model_errors_total", kind="connection_error") == 1
    failed = {"platform": "test", "operation": "post a notice"}
    assert rig.value("quitbot_platform_errors_total", **failed) == 1


async def test_a_user_ending_it_counts_as_an_end_by_the_user(rig: Rig) -> None:
    await rig.say("hello")
    await rig.flows.confirm_end(HERE, "alice", rig.world.place(HERE))
    ended = {"platform": "test", "reason": "user_requested", "actor": "user"}
    assert rig.value("quitbot_ends_total", **ended) == 1


def test_error_kinds_are_the_sdk_class_in_snake_case() -> None:
    import anthropic

    failure = ModelUnavailable("limited")
    failure.__cause__ = anthropic.RateLimitError.__new__(anthropic.RateLimitError)
    assert error_kind(failure) == "rate_limit_error"
    assert error_kind(ModelUnavailable("no key")) == "unavailable"
    assert error_kind(ValueError("bad")) == "value_error"


async def test_tokens_come_from_the_api_usage(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    usage = {
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 40,
    }
    content = [{"type": "text", "text": "Hi there."}]
    fake_anthropic.add(Response(message=_message(content, "end_turn", usage=usage)))
    metrics = Metrics()
    settings = make_settings(tmp_path, fake_anthropic)
    async with build_runtime(settings, observer=metrics) as runtime:
        inbound = Inbound(ConversationKey("test", "t"), "e1", "alice", "hello")
        await runtime.engine.handle(inbound, Reply([]))
    sample = metrics.registry.get_sample_value
    assert sample("quitbot_model_tokens_total", {"type": "input"}) == 12
    assert sample("quitbot_model_tokens_total", {"type": "output"}) == 7
    assert sample("quitbot_model_tokens_total", {"type": "cache_read"}) == 900
    assert sample("quitbot_model_tokens_total", {"type": "cache_write"}) == 40
    assert sample("quitbot_model_response_seconds_count", {}) == 1


async def test_health_ready_and_metrics_over_http(tmp_path: Path) -> None:
    metrics = Metrics()
    readiness = Readiness(["discord", "slack"])
    store = await SqliteStore.open(str(tmp_path / "health.db"))
    try:
        app = health_app(readiness, store, metrics)
        async with serving(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
                assert (await response.json()) == {"status": "ok"}

            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
                body = await response.json()
                assert body["database"] is True
                assert body["platforms"] == {"discord": False, "slack": False}
            readiness.set("discord", True)
            readiness.set("slack", True)
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ready"
            readiness.set("slack", False)  # a dropped connection
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503

            metrics.received("discord")
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                page = await response.text()
            assert 'quitbot_messages_received_total{platform="discord"} 1.0' in page
            assert 'quitbot_model_tokens_total{type="cache_read"} 0.0' in page
            assert "process_resident_memory_bytes" in page and "python_info" in page

            readiness.set("slack", True)
            await store.close()
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
                assert (await response.json())["database"] is False
    finally:
        await store.close()


async def test_a_busy_health_port_is_a_plain_error(tmp_path: Path) -> None:
    from bot.ports import PlatformUnavailable

    app = health_app(Readiness(), None, Metrics())  # type: ignore[arg-type]
    async with serving(app, "127.0.0.1", 0) as port:
        with pytest.raises(PlatformUnavailable, match=f"127.0.0.1:{port}.*QUITBOT_HEALTH_PORT"):
            async with serving(app, "127.0.0.1", port):
                pass


def test_two_metrics_objects_never_share_counters() -> None:
    first, second = Metrics(), Metrics()
    first.received("discord")
    assert (
        second.registry.get_sample_value("quitbot_messages_received_total", {"platform": "discord"})
        is None
    )


class FailingReply(Reply):
    async def text(self, delta: str) -> None:
        raise ConnectionError("the platform dropped the edit")


async def test_a_reply_the_platform_could_not_show_counts_as_a_platform_error(rig: Rig) -> None:
    inbound = Inbound(HERE, "e-fail", "alice", "hello", "m-fail")
    outcome = await rig.engine.handle(inbound, FailingReply([]))
    assert outcome.reply == "ok"  # recorded all the same
    failed = {"platform": "test", "operation": "show a reply"}
    assert rig.value("quitbot_platform_errors_total", **failed) == 1
