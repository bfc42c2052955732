"""A receiver for quitbot's webhooks that checks every request's signature.

quitbot signs each webhook as Slack signs its requests, under its own header names:

    X-Quitbot-Request-Timestamp: 1764871200
    X-Quitbot-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}" with the secret>

To verify one: refuse a timestamp more than five minutes from your clock (a replayed
request), compute the HMAC over the raw body exactly as received (never re-encoded JSON),
and compare in constant time. Only then parse the body. Delivery is at least once, so the
same event can come twice: dedupe on its `id`.

Run it (needs aiohttp) with the secret quitbot has as QUITBOT_WEBHOOK_SECRET:

    QUITBOT_WEBHOOK_SECRET=... python examples/webhook_receiver.py 8080

and set QUITBOT_WEBHOOK_URL=http://127.0.0.1:8080/quitbot for quitbot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

SIGNATURE_HEADER = "X-Quitbot-Signature"
TIMESTAMP_HEADER = "X-Quitbot-Request-Timestamp"
TOLERANCE_SECONDS = 5 * 60
MAX_BODY = 256 * 1024  # an event is a few hundred bytes; refuse anything far larger
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def verify(
    secret: bytes, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> bool:
    """Whether `body` was signed with `secret` at `timestamp`, within the tolerance of `now`."""
    if not timestamp or not signature or not _TIMESTAMP.fullmatch(timestamp):
        return False
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def build_app(
    secret: bytes, handle: Handler, *, clock: Callable[[], float] = time.time
) -> web.Application:
    """An aiohttp app that takes quitbot's webhooks on POST /quitbot and hands each event,
    once, to `handle`."""
    seen: OrderedDict[int, None] = OrderedDict()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        stamp, signature = (
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
        )
        if not verify(secret, stamp, signature, body, clock()):
            return web.Response(status=401, text="bad or stale signature")
        try:
            event = json.loads(body)
            event_id = int(event["id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not a quitbot event")
        if event_id not in seen:  # a retry of one already handled is acknowledged again
            await handle(event)
            seen[event_id] = None
            if len(seen) > 10_000:
                seen.popitem(last=False)
        return web.Response(status=204)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/quitbot", receive)
    return app


async def _print(event: dict[str, Any]) -> None:
    conversation = event["conversation"]
    print(f"{event['at']} {event['kind']} in {conversation['platform']}:{conversation['id']}")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    web.run_app(
        build_app(os.environ["QUITBOT_WEBHOOK_SECRET"].encode(), _print),
        host="127.0.0.1",
        port=port,
    )
