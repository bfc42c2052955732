"""Event hooks: your own Python code, told of each audit event once it is recorded.

Subscribe an async function in code (`hooks.subscribe(on_end, kinds={"end"})`) or from
another installed package through the `quitbot.hooks` entry-point group (an entry point
names an async function taking a `HookEvent`; it hears every kind in `HOOK_KINDS`).

A hook never slows a turn down or breaks it: the engine only puts the event on each
hook's own queue, and each hook runs in a task of its own, one event at a time, in the
order the events were recorded in this process. A hook that raises or outlasts its
timeout is logged and counted (`Observer.hook_failed`), and the next event goes on.
Events that arrive while a hook is `queue_size` events behind are not queued for it
(counted as dropped), so a stuck hook cannot hold memory without bound.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from bot.conversation import Actor, AuditEvent, Conversation
from bot.ports import NoObserver, Observer

__all__ = [
    "HOOKS_GROUP",
    "HOOK_KINDS",
    "Hook",
    "HookEvent",
    "HookLoadError",
    "Hooks",
    "entry_point_hooks",
]

log = logging.getLogger(__name__)

HOOKS_GROUP = "quitbot.hooks"

# The audit events hooks and webhooks hear of ("would_end" is recorded by alert-only mode).
HOOK_KINDS = frozenset(
    {
        "redirect",
        "warning",
        "end",
        "participant_shut_out",
        "participant_left",
        "reopen",
        "feedback",
        "review",
        "would_end",
    }
)


@dataclass(frozen=True, slots=True)
class HookEvent:
    """One recorded audit event, as a hook sees it: `detail` is a read-only copy."""

    kind: str
    at: datetime
    actor: Actor
    detail: Mapping[str, Any]
    conversation: Conversation


Hook = Callable[[HookEvent], Awaitable[None]]


class HookLoadError(RuntimeError):
    """An entry point of `quitbot.hooks` could not be loaded, or is not an async callable."""


class _Subscriber:
    """One hook, its filter, and the queue and task that run it."""

    def __init__(
        self,
        name: str,
        hook: Hook,
        kinds: frozenset[str],
        queue_size: int,
        timeout: float,
        failed: Callable[..., None],
    ) -> None:
        self.name = name
        self.kinds = kinds
        self._hook = hook
        self._timeout = timeout
        self._failed = failed
        self._queue: asyncio.Queue[HookEvent] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    def put(self, event: HookEvent) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"quitbot-hook-{self.name}")
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._failed(self.name, "dropped", event)

    async def _run(self) -> None:
        task = asyncio.current_task()
        while True:
            event = await self._queue.get()
            try:
                async with asyncio.timeout(self._timeout):
                    await self._hook(event)
            except TimeoutError:
                self._failed(self.name, "timeout", event)
            except asyncio.CancelledError:
                # Only our own stop ends the loop; a hook's stray cancellation is its bug.
                if task is not None and task.cancelling():
                    raise
                self._failed(self.name, "error", event, logged=True)
            except Exception:
                self._failed(self.name, "error", event, logged=True)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        await self._queue.join()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


class Hooks:
    """The hooks of one runtime, built in the composition root and closed on shutdown.

    `recorded` is the engine's call: cheap, never raising, never awaiting a hook.
    """

    def __init__(
        self,
        *,
        observer: Observer | None = None,
        timeout: float = 30.0,
        queue_size: int = 10_000,
    ) -> None:
        self.timeout = timeout
        self._observer: Observer = observer or NoObserver()
        self._queue_size = queue_size
        self._subscribers: list[_Subscriber] = []
        self._closed = False

    def subscribe(
        self, hook: Hook, *, kinds: Iterable[str] | None = None, name: str | None = None
    ) -> None:
        """Call `hook` with every recorded event of `kinds` (default: all of HOOK_KINDS).

        `name` labels its failures in logs and metrics (default: the function's name).
        Raises ValueError for a kind hooks are not told of (a typo would hear nothing).
        """
        wanted = HOOK_KINDS if kinds is None else frozenset(kinds)
        unknown = sorted(wanted - HOOK_KINDS)
        if unknown:
            raise ValueError(f"hooks are not told of {unknown}; choose from {sorted(HOOK_KINDS)}")
        label = name or getattr(hook, "__qualname__", None) or type(hook).__name__
        self._subscribers.append(
            _Subscriber(label, hook, wanted, self._queue_size, self.timeout, self._failed)
        )

    @property
    def names(self) -> list[str]:
        """The subscribed hooks' names, in the order subscribed."""
        return [subscriber.name for subscriber in self._subscribers]

    def recorded(self, conversation: Conversation, events: Sequence[AuditEvent]) -> None:
        """Events were committed for `conversation`: queue them for each hook that wants them."""
        if self._closed:
            return  # shutting down: no task may start that nobody will stop
        for event in events:
            if event.kind not in HOOK_KINDS:
                continue
            seen: HookEvent | None = None
            for subscriber in self._subscribers:
                if event.kind in subscriber.kinds:
                    seen = seen or _hook_event(conversation, event)
                    subscriber.put(seen)

    def _failed(self, hook: str, why: str, event: HookEvent, *, logged: bool = False) -> None:
        """Count and log a hook's failure with one event (`why`: error, timeout, dropped)."""
        self._observer.hook_failed(hook, why)
        what = f"hook {hook} failed ({why}) on {event.kind} in {event.conversation.id}"
        if logged:
            log.exception(what)
        else:
            log.error(what)

    async def close(self, grace: float = 5.0) -> None:
        """Let the hooks work through what is queued for up to `grace` seconds, then stop."""
        self._closed = True
        with suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.gather(*(s.drain() for s in self._subscribers))
        for subscriber in self._subscribers:
            await subscriber.stop()


def _hook_event(conversation: Conversation, event: AuditEvent) -> HookEvent:
    detail = MappingProxyType(copy.deepcopy(event.detail))
    return HookEvent(event.kind, event.at, event.actor, detail, conversation)


def entry_point_hooks() -> list[tuple[str, Hook]]:
    """The hooks installed packages declare under `quitbot.hooks`, by entry-point name.

    Raises HookLoadError, naming the entry point, when one cannot be loaded.
    """
    found: list[tuple[str, Hook]] = []
    for point in entry_points(group=HOOKS_GROUP):
        try:
            hook = point.load()
        except Exception as exc:
            raise HookLoadError(
                f"the hook {point.name} ({point.value}) cannot load: {exc}"
            ) from exc
        if not callable(hook):
            raise HookLoadError(f"the hook {point.name} ({point.value}) is not callable")
        found.append((point.name, hook))
    return found
