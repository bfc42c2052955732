"""What `quitbot run` runs beside the platforms: metrics, the health endpoints, retention."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from bot.app import Runtime, build_runtime
from bot.health import health_app, serving
from bot.metrics import Metrics
from bot.readiness import Readiness
from bot.retention import RETENTION_INTERVAL, keep_purging
from bot.retry import retrying
from bot.settings import Settings
from bot.store import StoreUnreachable
from bot.usertools import ToolRegistry

log = logging.getLogger(__name__)


@asynccontextmanager
async def serve(
    settings: Settings, platforms: Sequence[str], tools: ToolRegistry | None = None
) -> AsyncIterator[Runtime]:
    """The runtime for `quitbot run`: an engine that feeds one process-wide `Metrics` and
    a `Readiness` expecting `platforms`, the health endpoints when QUITBOT_HEALTH_PORT is
    set, the dashboard when QUITBOT_DASHBOARD_PORT is, the retention purge when
    QUITBOT_RETENTION_DAYS is, and webhook delivery when QUITBOT_WEBHOOK_URL is; all
    stopped on exit."""
    metrics = Metrics()
    readiness = Readiness(platforms)
    async with AsyncExitStack() as running:
        runtime = await retrying(
            f"database {settings.database.shown}",
            lambda: running.enter_async_context(
                build_runtime(
                    settings,
                    observer=metrics,
                    readiness=readiness,
                    tools=tools,
                    deliver_webhooks=True,
                )
            ),
            StoreUnreachable,
            settings.start_retries,
        )
        if settings.health_port:
            app = health_app(readiness, runtime.store, metrics)
            await running.enter_async_context(
                serving(app, settings.health_host, settings.health_port)
            )
        if settings.dashboard.port:
            # Imported here: Jinja2 is for the dashboard only.
            from bot.dashboard.serve import serve_dashboard

            await running.enter_async_context(serve_dashboard(settings, runtime.engine))
        if settings.retention_days:
            purging = asyncio.create_task(
                keep_purging(runtime.store, settings.retention_days, RETENTION_INTERVAL),
                name="quitbot-retention",
            )
            running.push_async_callback(_stop, purging)
        yield runtime


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
