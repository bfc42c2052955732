"""Webhooks end to end: events recorded by a runtime reach the example receiver, signed,
through a receiver that is down for a while and across a restart, on both backends.
The clock is the test's own: a retry comes due when the test moves it on, never by sleeping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from bot.app import Runtime, UnconfiguredModel, build_runtime
from bot.conversation import Actor, AuditEvent, ConversationKey
from bot.metrics import Metrics
from bot.ports import OutboxItem
from bot.settings import Settings
from bot.webhooks import Delivery, WebhookTarget, payload
from tests.bot.storekit import T0
from tests.examples.receiver import Receiver

SECRET = "a webhook secret for the tests"
KEY = ConversationKey("test", "place-1")
PAUSE = timedelta(seconds=30)
# Only what the test does wakes the sender: no timer of its own fires during a test.
PATIENT = Delivery(backoff=lambda attempts: PAUSE, poll=3600)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Watched(Metrics):
    """Metrics that also wake a test waiting for a failed request."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = asyncio.Event()
        self.given_up = asyncio.Event()

    def webhook(self, target: str, outcome: str) -> None:
        super().webhook(target, outcome)
        if outcome == "failed":
            self.failed.set()
        if outcome == "given_up":
            self.given_up.set()

    def count(self, outcome: str) -> float:
        found = [
            sample.value
            for metric in self.registry.collect()
            if metric.name == "quitbot_webhook_requests"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["outcome"] == outcome
        ]
        return sum(found)


def settings_for(database_url: str, *urls: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        webhook_url=list(urls),
        webhook_secret=SecretStr(SECRET),
    )


def delivering(
    database_url: str,
    url: str,
    metrics: Watched,
    delivery: Delivery = PATIENT,
    clock: Clock | None = None,
) -> AbstractAsyncContextManager[Runtime]:
    """A runtime that delivers its webhooks to `url`."""
    return build_runtime(
        settings_for(database_url, url),
        model=UnconfiguredModel(),
        observer=metrics,
        deliver_webhooks=True,
        delivery=delivery,
        clock=clock,
    )


@dataclass
class Down:
    """A runtime delivering to a receiver that is down, after an end it failed to send."""

    runtime: Runtime
    receiver: Receiver
    clock: Clock
    metrics: Watched
    conversation_id: str


@asynccontextmanager
async def ended_while_down(database_url: str, delivery: Delivery) -> AsyncIterator[Down]:
    receiver, clock, metrics = Receiver(SECRET.encode()), Clock(), Watched()
    await receiver.start()
    await receiver.stop()  # its port is closed: every connection is refused
    async with delivering(database_url, receiver.url, metrics, delivery, clock) as runtime:
        started = await runtime.engine.start_new(KEY, "u1")
        assert started.conversation is not None
        await runtime.engine.end_by_user(KEY, "u1")
        await metrics.failed.wait()
        yield Down(runtime, receiver, clock, metrics, started.conversation.id)
    await receiver.stop()


async def test_a_receiver_that_is_down_gets_every_event_in_order_once_it_is_back(
    database_url: str,
) -> None:
    async with ended_while_down(database_url, PATIENT) as down:
        await down.receiver.start()
        down.clock.now += PAUSE
        # Recording the next event wakes the sender; the first is due again by then.
        await down.runtime.engine.feedback(down.conversation_id, "u1", "a mistake")
        events = await down.receiver.wait_for(2)
    assert [e["kind"] for e in events] == ["end", "feedback"]
    end = events[0]
    assert end["conversation"] == {
        "id": down.conversation_id,
        "platform": "test",
        "place": "place-1",
        "community": "",
    }
    assert end["actor"] == "user" and end["detail"]["reason"] == "user_requested"
    assert end["at"] == "2026-12-04T12:00:00+00:00"
    assert down.metrics.count("failed") >= 1 and down.metrics.count("delivered") == 2


async def test_an_event_that_could_not_be_delivered_for_too_long_is_given_up(
    database_url: str,
) -> None:
    briefly = Delivery(backoff=PATIENT.backoff, poll=3600, give_up=timedelta(hours=1))
    async with ended_while_down(database_url, briefly) as down:
        down.clock.now += timedelta(hours=2)
        await down.runtime.engine.feedback(down.conversation_id, "u1", "a mistake")
        await down.metrics.given_up.wait()
        target = WebhookTarget(down.receiver.url).id
        left = await down.runtime.store.claim_outbox(
            [target], down.clock.now + PAUSE, timedelta(seconds=1), 10
        )
    assert [item.event.kind for item in left] == ["feedback"]  # still within its time
    assert down.metrics.count("given_up") == 1


async def test_requests_signed_with_another_secret_are_refused_and_counted(
    database_url: str,
) -> None:
    receiver, metrics = Receiver(b"the receiver's own secret, not ours"), Watched()
    await receiver.start()
    async with delivering(database_url, receiver.url, metrics) as runtime:
        await runtime.engine.start_new(KEY, "u1")
        await runtime.engine.end_by_user(KEY, "u1")
        await metrics.failed.wait()  # the receiver answered 401
    assert receiver.events == [] and metrics.count("delivered") == 0
    await receiver.stop()


async def test_what_a_stopped_run_queued_is_delivered_by_the_next(database_url: str) -> None:
    one, other = Receiver(SECRET.encode()), Receiver(SECRET.encode())
    await one.start()
    await other.start()
    settings = settings_for(database_url, one.url, other.url)
    # A run that only queues (an operator command), or that stopped before delivering.
    async with build_runtime(settings, model=UnconfiguredModel()) as first:
        await first.engine.start_new(KEY, "u1")
        await first.engine.end_by_user(KEY, "u1")
    assert one.events == other.events == []
    async with build_runtime(
        settings, model=UnconfiguredModel(), deliver_webhooks=True, delivery=PATIENT
    ):
        [to_one] = await one.wait_for(1)
        [to_other] = await other.wait_for(1)
    assert to_one == to_other and to_one["kind"] == "end"
    await one.stop()
    await other.stop()


async def test_two_processes_on_one_database_deliver_each_event_once(database_url: str) -> None:
    receiver, clock = Receiver(SECRET.encode()), Clock()
    await receiver.start()
    settings = settings_for(database_url, receiver.url)
    async with build_runtime(settings, model=UnconfiguredModel(), clock=clock) as queuing:
        for n in range(12):
            key = ConversationKey("test", f"place-{n}")
            await queuing.engine.start_new(key, "u1")
            await queuing.engine.end_by_user(key, "u1")
    small = Delivery(backoff=PATIENT.backoff, poll=3600, batch=3)
    async with (
        build_runtime(settings, model=UnconfiguredModel(), deliver_webhooks=True, delivery=small),
        build_runtime(settings, model=UnconfiguredModel(), deliver_webhooks=True, delivery=small),
    ):
        events = await receiver.wait_for(12)
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == 12
    await receiver.stop()


def test_the_body_names_the_event_and_the_database_never_holds_the_url() -> None:
    target = WebhookTarget("https://hooks.example.com/services/T0/B0/s3cret")
    assert "s3cret" not in target.id and "s3cret" not in target.label
    assert target.label.startswith("hooks.example.com#")
    item = OutboxItem(
        41, target.id, 1, "c1", KEY, "T1", AuditEvent("end", T0, Actor.MODEL, {"reason": "x"})
    )
    body: dict[str, Any] = json.loads(payload(item))
    assert body == {
        "id": 41,
        "kind": "end",
        "at": T0.isoformat(),
        "actor": "model",
        "detail": {"reason": "x"},
        "conversation": {"id": "c1", "platform": "test", "place": "place-1", "community": "T1"},
    }


async def test_a_receiver_that_never_answers_holds_up_no_turn(database_url: str) -> None:
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def hangs(request: web.Request) -> web.Response:
        arrived.set()
        await answer.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/quitbot", hangs)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/quitbot"
    try:
        async with delivering(database_url, url, Watched()) as runtime:
            await runtime.engine.start_new(KEY, "u1")
            ended = await runtime.engine.end_by_user(KEY, "u1")
            await arrived.wait()  # the end's request is in flight, unanswered
            assert ended.conversation is not None
            await runtime.engine.feedback(ended.conversation.id, "u1", "a mistake")
            assert await runtime.engine.start_new(ConversationKey("test", "place-2"), "u1")
            answer.set()
    finally:
        await runner.cleanup()
