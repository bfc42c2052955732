"""What every response carries (strict headers), what every POST must carry (the CSRF
token), and how often one address may try to sign in."""

from __future__ import annotations

import hmac
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web

from bot.dashboard.sessions import Clock, utc_now

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# No script at all, styles and images from the dashboard only, forms only to itself, never
# in a frame: text people wrote is shown on these pages, and none of it may ever run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    # The sign-in callback's address carries a one-time code; no page's address leaves.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# Sign-in attempts (starts and callbacks) one address may make per window.
SIGN_IN_ATTEMPTS = 10
SIGN_IN_WINDOW = timedelta(minutes=5)


@web.middleware
async def strict_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    response.headers.update(HEADERS)
    return response


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(expected, given)


@dataclass
class RateLimit:
    """At most `attempts` per `window` for each key (a client's address)."""

    attempts: int = SIGN_IN_ATTEMPTS
    window: timedelta = SIGN_IN_WINDOW
    clock: Clock = utc_now
    _seen: dict[str, deque[datetime]] = field(default_factory=dict)

    def allow(self, key: str) -> bool:
        now = self.clock()
        # Addresses whose attempts have all aged out are forgotten, so many of them
        # (a scan, a botnet) cost no memory for longer than the window.
        for stale in [k for k, times in self._seen.items() if times[-1] <= now - self.window]:
            del self._seen[stale]
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if len(seen) >= self.attempts:
            return False
        seen.append(now)
        return True
