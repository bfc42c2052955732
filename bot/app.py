"""The composition root: settings in, a running core (store, model, engine) out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.engine import Engine, EngineConfig, ModelFor
from bot.ports import Model, ModelReply, ModelUnavailable, Observer, Store, TextSink
from bot.readiness import Readiness
from bot.settings import Settings
from bot.store import open_store
from bot.tools import TOOLS
from bot.usertools import ToolBox, ToolRegistry

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


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        rules=settings.rules(),
        crisis_message=settings.crisis_message,
        max_ended_per_day=settings.max_ended_per_day,
        blocked_notice_seconds=settings.blocked_notice_seconds,
        context_tokens=settings.context_tokens,
        max_message_chars=settings.max_message_chars,
    )


@asynccontextmanager
async def build_runtime(
    settings: Settings,
    *,
    model: Model | None = None,
    observer: Observer | None = None,
    readiness: Readiness | None = None,
    tools: ToolRegistry | None = None,
) -> AsyncIterator[Runtime]:
    """Open the store, build the one Claude client, wire the engine; close all on exit.

    Pass `model` to use another Model (benchmarks use an in-process one); `observer` to be
    told of what happens (metrics: each model call is then timed too); `readiness` for the
    adapters to report their connection on; `tools` for the user tools registered in code
    (without it, those installed packages declare under `quitbot.tools`). `QUITBOT_TOOLS`
    picks which of them the model gets; an unknown name raises ToolError before anything
    is opened.
    """
    toolbox = ToolBox(_registry(tools).enabled(settings.tools, settings.tool_timeouts), settings)
    store = await open_store(settings.database)

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
        )

    try:
        forgotten = await store.forget_events_before(datetime.now(UTC) - EVENT_MEMORY)
        if forgotten:
            log.info("forgot %d platform event ids older than %s", forgotten, EVENT_MEMORY)
        if model is not None:
            yield Runtime(settings, engine(model), store, model)
            return
        if settings.anthropic_api_key is None:
            fallback = UnconfiguredModel()
            yield Runtime(settings, engine(fallback), store, fallback)
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
            yield Runtime(settings, engine(claude, model_for), store, claude)
        finally:
            await client.close()
    finally:
        await store.close()


def _registry(given: ToolRegistry | None) -> ToolRegistry:
    if given is not None:
        return given
    found = ToolRegistry()
    found.load_entry_points()
    return found
