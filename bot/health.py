"""`/healthz`, `/readyz` and `/metrics` over HTTP, served by `quitbot run` when
QUITBOT_HEALTH_PORT is set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics
from bot.ports import DatabaseUnavailable, PlatformUnavailable, Store
from bot.readiness import Readiness

log = logging.getLogger(__name__)

# A database that takes longer than this to answer one indexed read is not ready.
DATABASE_TIMEOUT = 2.0


def health_app(
    readiness: Readiness,
    store: Store,
    metrics: Metrics,
    *,
    database_timeout: float = DATABASE_TIMEOUT,
) -> web.Application:
    """The three endpoints as an aiohttp application (tests serve it on an ephemeral port)."""

    async def healthz(request: web.Request) -> web.Response:
        # Alive means the event loop answers: that is what a restart would fix.
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        database = await _database_answers(store, database_timeout)
        platforms = readiness.platforms()
        ready = database and readiness.ready
        body = {
            "status": "ready" if ready else "not ready",
            "database": database,
            "platforms": platforms,
        }
        return web.json_response(body, status=200 if ready else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


async def _database_answers(store: Store, within: float) -> bool:
    try:
        # One read by primary key through the store's own path (its worker thread or pool).
        await asyncio.wait_for(store.get("readyz"), within)
    except DatabaseUnavailable:
        return False  # the store said once that it went away, and will say when it is back
    except Exception:
        log.warning("readiness: the database did not answer", exc_info=True)
        return False
    return True


@asynccontextmanager
async def serving(
    app: web.Application,
    host: str,
    port: int,
    *,
    what: str = "health and metrics",
    setting: str = "QUITBOT_HEALTH_PORT",
    paths: str = "healthz, readyz, metrics",
) -> AsyncIterator[int]:
    """Serve `app` on host:port until the block ends; yields the port bound (port 0 picks
    a free one). A port in use is a PlatformUnavailable in plain words."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise PlatformUnavailable(
                f"cannot serve {what} on {host}:{port} ({exc.strerror}); "
                f"choose another {setting} or stop what uses it"
            ) from None
        bound = int(runner.addresses[0][1])
        log.info("%s on http://%s:%d/ (%s)", what, host, bound, paths)
        yield bound
    finally:
        await runner.cleanup()
