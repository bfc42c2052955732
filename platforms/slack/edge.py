"""Slack's requests before Bolt sees them: a body of the wrong shape is dropped at the edge.

Bolt builds its request context from the body before any listener or middleware runs
(slack_bolt/request/internals.py), and that code assumes Slack's shapes: an `event` that is
a string, or a file entry that is a number, raised there or in our translator, a traceback
and a 5xx (issue #9: 127 tracebacks and 95 5xx answers from 2,000 mutated payloads). Here the
body is checked against `shape.problem` first; a mismatch is logged once at WARNING with the
request's id and answered without Bolt: 200 for an Events API envelope (Slack would only
retry the same bytes) and 400 for the rest. Signatures are checked before anything is parsed.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from platforms.slack.shape import problem, request_id

log = logging.getLogger(__name__)


def _dropped(body: Any, found: str) -> None:
    log.warning("dropped a malformed Slack request %s: %s", request_id(body), found)


def _is_event(body: Any) -> bool:
    return isinstance(body, dict) and body.get("type") == "event_callback"


class HttpEdge:
    """The aiohttp handler for `/slack/events` in HTTP mode."""

    def __init__(self, app: AsyncApp, signing_secret: str) -> None:
        self._app = app
        self._verifier = SignatureVerifier(signing_secret)

    def web_app(self, path: str) -> web.Application:
        server = web.Application()
        server.router.add_post(path, self.handle)
        return server

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not self._verifier.is_valid(
            raw,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
        ):
            return web.Response(status=401)
        try:
            text = raw.decode("utf-8")
            body = parse_body(text, request.content_type)
        except (UnicodeDecodeError, ValueError) as exc:
            # A signed body that is not UTF-8 JSON or a form: nothing to log it by.
            log.warning("dropped a Slack request that could not be parsed: %s", type(exc).__name__)
            return web.Response(status=400)
        found = problem(body)
        if found is not None:
            _dropped(body, found)
            return web.Response(status=200 if _is_event(body) else 400)
        bolt_request = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]  # as Bolt's own adapter does
        )
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))


class SocketEdge(AsyncSocketModeHandler):
    """Socket Mode with the same check: a malformed envelope is acknowledged and dropped
    (an unacknowledged one would only be delivered again)."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        found = problem(req.payload)
        if found is not None:
            _dropped(req.payload, found)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        await super().handle(client, req)
