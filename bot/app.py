"""The composition root: settings in, a running core (store, model, engine) out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.engine import Engine, EngineConfig, ModelFor
from bot.hooks import HookEvent, Hooks, entry_point_hooks
from bot.ports import Model, ModelReply, ModelUnavailable, Observer, Store, TextSink
from bot.readiness import Readiness
from bot.settings import Settings
from bot.store import open_store
from bot.tools import TOOLS
from bot.usertools import ToolBox, ToolRegistry
from bot.webhooks import Delivery, WebhookSender, WebhookTarget, outbox_for

log = logging.getLogger(__name__)

# How long a handled platform event id is remembered, to answer retries and replays once.
EVENT_MEMORY = timedelta(days=7)

NO_KEY = (
    "ANTHROPIC_API_KEY is not set: get a key at https://console.anthropic.com/ and "
    "export ANTHROPIC_API_KEY=... (or put it in .env)"
)

NO_PLATFORM = (
    "no platform is configured. Set DISCORD_TOKEN for Discord, or SLACK_BOT_TOKEN with "
    "SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (QUITBOT_SLACK_MODE=http) for "
    "Slack. For a terminal chat run: quitbot chat"
)


class UnconfiguredModel:
    """Stands in when no API key is set, so operator commands still work without one."""

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        raise ModelUnavailable(NO_KEY)

    async def check(self) -> str:
        raise ModelUnavailable(NO_KEY)


@dataclass(frozen=True, slots=True)
class Runtime:
    """What `main` hands to the adapters."""

    settings: Settings
    engine: Engine
    store: Store
    model: Model
    hooks: Hooks  # subscribe your own: `runtime.hooks.subscribe(on_end, kinds={"end"})`


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        rules=settings.rules(),
        crisis_message=settings.crisis_message,
        max_ended_per_day=settings.max_ended_per_day,
        blocked_notice_seconds=settings.blocked_notice_seconds,
        context_tokens=settings.context_tokens,
        max_message_chars=settings.max_message_chars,
        texts=settings.words,
    )


@asynccontextmanager
async def build_runtime(
    settings: Settings,
    *,
    model: Model | None = None,
    observer: Observer | None = None,
    readiness: Readiness | None = None,
    tools: ToolRegistry | None = None,
    deliver_webhooks: bool = False,
    delivery: Delivery | None = None,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[Runtime]:
    """Open the store, build the one Claude client, wire the engine; close all on exit.

    Pass `model` to use another Model (benchmarks use an in-process one); `observer` to be
    told of what happens (metrics: each model call is then timed too); `readiness` for the
    adapters to report their connection on; `tools` for the user tools registered in code
    (without it, those installed packages declare under `quitbot.tools`). `QUITBOT_TOOLS`
    picks which of them the model gets; an unknown name raises ToolError before anything
    is opened. The hooks of installed packages (entry points `quitbot.hooks`) are
    subscribed. With QUITBOT_WEBHOOK_URL set, events are queued in the outbox;
    `deliver_webhooks` also runs the sender (as `quitbot run` and `chat` do; an operator
    command only queues, and the running bot delivers), with `delivery`'s timing. `clock`
    is the engine's and the sender's (tests move it on by hand).
    """
    enabled = tool_registry(tools).enabled(settings.tools, settings.tool_timeouts)
    toolbox = ToolBox(enabled, settings)
    now = clock or _utcnow
    hooks = Hooks(observer=observer)
    for name, hook in entry_point_hooks():
        hooks.subscribe(hook, name=name)
    targets = [WebhookTarget(url) for url in settings.webhook_url]
    store = await open_store(settings.database, outbox=outbox_for(targets))

    def metered(chosen: Model) -> Model:
        if observer is None:
            return chosen
        # Imported here: prometheus_client is only needed when metrics are wanted.
        from bot.metrics import MeteredModel

        return MeteredModel(chosen, observer)

    def engine(chosen: Model, model_for: ModelFor | None = None) -> Engine:
        return Engine(
            store,
            metered(chosen),
            engine_config(settings),
            observer=observer,
            readiness=readiness,
            model_for=model_for,
            toolbox=toolbox,
            hooks=hooks,
            clock=now,
        )

    sender = None
    if deliver_webhooks:
        sender = _start_sender(settings, store, targets, hooks, delivery, observer, now)
    try:
        forgotten = await store.forget_events_before(datetime.now(UTC) - EVENT_MEMORY)
        if forgotten:
            log.info("forgot %d platform event ids older than %s", forgotten, EVENT_MEMORY)
        if model is not None:
            yield Runtime(settings, engine(model), store, model, hooks)
            return
        if settings.anthropic_api_key is None:
            fallback = UnconfiguredModel()
            yield Runtime(settings, engine(fallback), store, fallback, hooks)
            return
        # Imported here: the SDK takes a second or two to import, and operator commands
        # that never call the model should not pay for it.
        from bot.model import ClaudeModel, build_client
        from bot.prompt import system_prompt

        client = build_client(settings)
        # One model per distinct community instructions and tools, all on the one client (a
        # model is only its request settings); bounded by the number of communities.
        models: dict[tuple[str | None, tuple[str, ...]], Model] = {}

        def model_for(extra: str | None, names: tuple[str, ...]) -> Model:
            if (extra, names) not in models:
                own = ClaudeModel(
                    client,
                    settings.model,
                    max_tokens=settings.max_tokens,
                    system=system_prompt(settings.system_prompt_extra if extra is None else extra),
                    tools=[*TOOLS, *toolbox.definitions(names)],
                )
                models[(extra, names)] = metered(own)
            return models[(extra, names)]

        try:
            claude = ClaudeModel.from_settings(
                client, settings, tools=[*TOOLS, *toolbox.definitions(tuple(toolbox.tools))]
            )
            yield Runtime(settings, engine(claude, model_for), store, claude, hooks)
        finally:
            await client.close()
    finally:
        await hooks.close()
        if sender is not None:
            await sender.close()
        await store.close()


def tool_registry(given: ToolRegistry | None) -> ToolRegistry:
    """The tools `build_runtime(tools=given)` knows: `given`, else the installed packages'."""
    if given is not None:
        return given
    found = ToolRegistry()
    found.load_entry_points()
    return found


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _start_sender(
    settings: Settings,
    store: Store,
    targets: Sequence[WebhookTarget],
    hooks: Hooks,
    delivery: Delivery | None,
    observer: Observer | None,
    clock: Callable[[], datetime],
) -> WebhookSender | None:
    """The webhook sender, delivering; woken by every event this process records."""
    if not targets or settings.webhook_secret is None:
        return None
    secret = settings.webhook_secret.get_secret_value().encode()
    sender = WebhookSender(
        store, targets, secret, delivery=delivery, observer=observer, clock=clock
    )
    sender.start()

    async def wake(event: HookEvent) -> None:
        sender.wake()

    hooks.subscribe(wake, name="webhooks")
    return sender
