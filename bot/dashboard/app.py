"""What the dashboard's pages share (`Dashboard`) and how a failure shows (`plain_errors`);
`serve.build_app` puts them together with the routes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.dashboard.charts import Chart
from bot.dashboard.security import Handler, RateLimit
from bot.dashboard.sessions import Clock, Sessions, utc_now
from bot.dashboard.signin import SignIn
from bot.engine import Engine
from bot.flows import Flows

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "quitbot_session"
SIGN_IN_COOKIE = "quitbot_sign_in"


@dataclass
class Dashboard:
    """Everything the pages need, built once by `serve.dashboard_for`."""

    base_url: str
    engine: Engine
    flows: dict[str, Flows]  # by platform
    sign_ins: dict[str, SignIn]  # by platform
    sessions: Sessions
    sign_in_limit: RateLimit = field(default_factory=RateLimit)
    clock: Clock = utc_now
    # (platform, community) -> when counted, the overview's charts; see pages.OVERVIEW_FRESH.
    overviews: dict[tuple[str, str], tuple[datetime, list[Chart]]] = field(default_factory=dict)
    templates: jinja2.Environment = field(
        default_factory=lambda: jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
    )

    @property
    def secure(self) -> bool:
        """Cookies only over HTTPS where the dashboard is reached over HTTPS."""
        return self.base_url.startswith("https://")

    def page(self, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
        html = self.templates.get_template(name).render(**context)
        return web.Response(text=html, status=status, content_type="text/html")


DASHBOARD = web.AppKey("dashboard", Dashboard)


def dashboard_of(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


@web.middleware
async def plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refusal or a failure is a plain page: never a traceback, never what went wrong
    inside."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(request, exc.status, exc.reason)
    except Exception:
        log.exception("a dashboard page failed: %s %s", request.method, request.path)
        return _error(request, 500, "Something went wrong on our side.")


def _error(request: web.Request, status: int, reason: str) -> web.Response:
    context = {"status": status, "reason": reason}
    return dashboard_of(request).page("error.html", context, status)
