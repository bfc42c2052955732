"""discord.py's rate-limit buckets, forgotten once they hold nothing back.

discord.py (2.7) keeps a bucket, about 1 KB, per route and channel it has called (posting a
message in a thread, typing in it) and forgets one only once it keeps 256 or more and that
one went unused for five minutes (`HTTPClient._try_clear_expired_ratelimits`). A bot
answering in thousands of threads so keeps a bucket or two for every thread it answered
in the last five minutes: up to ~40 MB for 20,000 conversations. A bucket that holds
nothing back (no request under way or waiting for it, and its window not used up) is
forgotten here once idle for IDLE_SECONDS: the next call makes a new one, as for a channel
never called, which sends one request and learns the limits from Discord's answer before it
sends more. So a short idle time costs little (a reply streamed with an edit a second may
make its thread's bucket anew between edits), and a long one keeps a burst's buckets alive
longer: at 5 s a second pass over 20,000 conversations, faster than the first (no thread to
open), held ~3,800 of them at once against the first's ~1,300, a higher peak the allocators
kept after the buckets went (bench/README.md, "Issue 22, fourth round").
"""

from __future__ import annotations

from typing import Any

IDLE_SECONDS = 1.0  # and swept as often


def forget_idle_buckets(http: Any, now: float, idle: float = IDLE_SECONDS) -> int:
    """Drop the idle buckets of a discord.py `HTTPClient` (`now` on its loop's clock); how
    many went."""
    buckets: dict[str, Any] = http._buckets
    stale = [key for key, bucket in buckets.items() if _holds_nothing_back(bucket, now, idle)]
    for key in stale:
        del buckets[key]
    return len(stale)


def _holds_nothing_back(bucket: Any, now: float, idle: float) -> bool:
    if bucket.outgoing or bucket._pending_requests or now - bucket._last_request < idle:
        return False
    return bucket.remaining > 0 or bucket.expires is None or bucket.expires <= now
