"""Signed webhooks, delivered from the outbox in the database.

The store queues each event of `HOOK_KINDS` for every configured URL in the transaction
that records it (`bot.ports.Outbox`), so a crash or restart never loses one. The
`WebhookSender` runs beside the platforms: woken when this process records an event, and
every `poll` seconds for events other processes (or a stopped run) left, it claims due rows
(no two processes deliver one row at once: a claim is a lease), POSTs each as JSON and
forgets it on a 2xx answer; any other answer, a timeout or a refused connection is
retried with growing pauses, for up to `give_up` after the event was recorded.

Delivery is at least once: a receiver dedupes on the body's `id`. Each request is signed
as Slack signs its own (`v0:{timestamp}:{body}`, HMAC-SHA256, hex), see `sign` and
examples/webhook_receiver.py for the receiving side.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from urllib.parse import urlsplit

import aiohttp

from bot.hooks import HOOK_KINDS
from bot.ports import NoObserver, Observer, Outbox, OutboxItem, Store
from bot.store.rows import encode_json

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Delivery",
    "WebhookSender",
    "WebhookTarget",
    "backoff",
    "outbox_for",
    "payload",
    "sign",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Quitbot-Signature"
TIMESTAMP_HEADER = "X-Quitbot-Request-Timestamp"
SIGNATURE_VERSION = "v0"

Clock = Callable[[], datetime]
Backoff = Callable[[int], timedelta]


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (Unix seconds)."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """The pause after the `attempts`th failed delivery: 5 s, doubling, at most an hour."""
    return timedelta(seconds=min(5 * 2 ** min(attempts - 1, 20), 3600))


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One configured URL. The outbox names it by a digest, so the database (and its
    backups) never holds a URL, which may carry a token."""

    url: str
    id: str = field(init=False)
    label: str = field(init=False)  # for logs and metrics: the host, never the path

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:32]
        object.__setattr__(self, "id", digest)
        object.__setattr__(self, "label", f"{urlsplit(self.url).hostname}#{digest[:6]}")


def outbox_for(targets: Sequence[WebhookTarget]) -> Outbox:
    """What the store queues for these targets (nothing when there are none)."""
    return Outbox(tuple(t.id for t in targets), HOOK_KINDS if targets else frozenset())


def payload(item: OutboxItem) -> bytes:
    """The JSON body for one event: the audit event as `show --json` has it, with its
    conversation and an `id` that stays the same at every retry."""
    event = item.event
    return encode_json(
        {
            "id": item.event_id,
            "kind": event.kind,
            "at": event.at.isoformat(),
            "actor": event.actor.value,
            "detail": event.detail,
            "conversation": {
                "id": item.conversation_id,
                "platform": item.key.platform,
                "place": item.key.place,
                "community": item.community,
            },
        }
    ).encode()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How the sender paces itself; tests pass a backoff of their own."""

    backoff: Backoff = backoff
    poll: float = 30.0  # seconds between looks for rows nobody woke us for
    # A claim's lease outlasts a round: at most `batch` requests of `timeout` each, one
    # target's in a row; otherwise another process could claim rows still being sent.
    lease: timedelta = timedelta(minutes=5)
    timeout: float = 10.0  # seconds for one request
    batch: int = 20
    give_up: timedelta = timedelta(days=3)


class WebhookSender:
    """Delivers the outbox to `targets` until closed. Build it, `start()`, `close()`."""

    def __init__(
        self,
        store: Store,
        targets: Sequence[WebhookTarget],
        secret: bytes,
        *,
        delivery: Delivery | None = None,
        observer: Observer | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self._store = store
        self._clock = clock
        self._targets = {t.id: t for t in targets}
        self._secret = secret
        self._delivery = delivery or Delivery()
        self._observer: Observer = observer or NoObserver()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._delivery.timeout)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._run(), name="quitbot-webhooks")

    def wake(self) -> None:
        """Something was queued (or came due): look at the outbox now."""
        self._wake.set()

    async def close(self) -> None:
        """Stop at once; rows claimed and not yet answered are let go for the next run."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                full = await self._round()
            except Exception:
                log.exception("webhook delivery failed; trying again in %s s", self._delivery.poll)
                full = False
            if not full:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._delivery.poll)

    async def _round(self) -> bool:
        """Claim and deliver one batch; whether to go on at once (it was full and every
        request succeeded: more may be waiting, and no receiver is down)."""
        d = self._delivery
        items = await self._store.claim_outbox(list(self._targets), self._clock(), d.lease, d.batch)
        unsettled = {(i.event_id, i.target) for i in items}
        try:
            by_target = groupby(sorted(items, key=lambda i: i.target), key=lambda i: i.target)
            done = await asyncio.gather(
                *(self._deliver(list(group), unsettled) for _, group in by_target)
            )
        except asyncio.CancelledError:
            await self._store.outbox_retry(sorted(unsettled), self._clock())
            raise
        return len(items) == d.batch and all(done)

    async def _deliver(self, items: list[OutboxItem], unsettled: set[tuple[int, str]]) -> bool:
        """One target's items in the order recorded; after a failure the rest wait with it
        (the receiver is likely down) rather than each costing a request. Whether all went."""
        for n, item in enumerate(items):
            if await self._post(item):
                await self._settled(item, unsettled)
                continue
            due = self._clock() + self._delivery.backoff(item.attempts)
            expired = [i for i in items[n:] if self._expired(i)]
            waiting = [(i.event_id, i.target) for i in items[n:] if i not in expired]
            await self._store.outbox_retry(waiting, due)
            unsettled.difference_update(waiting)
            for old in expired:
                await self._settled(old, unsettled, given_up=True)
            return False
        return True

    async def _settled(
        self, item: OutboxItem, unsettled: set[tuple[int, str]], *, given_up: bool = False
    ) -> None:
        key = (item.event_id, item.target)
        await self._store.outbox_done([key])
        unsettled.discard(key)
        if given_up:
            label = self._label(item)
            self._observer.webhook(label, "given_up")
            log.error("webhook %s: gave up on event %s (%s)", label, item.event_id, item.event.kind)

    def _expired(self, item: OutboxItem) -> bool:
        return self._clock() - item.event.at > self._delivery.give_up

    def _label(self, item: OutboxItem) -> str:
        target = self._targets.get(item.target)
        return target.label if target else item.target

    async def _post(self, item: OutboxItem) -> bool:
        target = self._targets[item.target]
        body = payload(item)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "quitbot-webhooks",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        assert self._session is not None
        try:
            async with self._session.post(
                target.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                ok = 200 <= answer.status < 300
                why = f"HTTP {answer.status}"
        except Exception as exc:  # whatever a receiver (or its address) does, only it fails
            ok, why = False, type(exc).__name__
        self._observer.webhook(target.label, "delivered" if ok else "failed")
        if not ok:
            log.warning(
                "webhook %s: event %s not delivered (%s, attempt %d)",
                target.label,
                item.event_id,
                why,
                item.attempts,
            )
        return ok
