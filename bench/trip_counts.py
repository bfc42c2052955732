"""`quitbot run` with counts of what its PostgreSQL store does, for the benches only.

    python bench/trip_counts.py DIRECTORY run      # instead of `python -m bot run`

Wraps asyncpg's connection and the store's batching (nothing of the product changes) and
counts: round trips by statement, batches and their sizes by kind, the conversation locks'
trips (and those that only gave locks back), turns that waited for a lock another process
held, messages handed back as received earlier (`earlier`), duplicates and recoveries, pool
acquisitions; the event loop's wake-ups, sockets ready and callbacks run; and each
thread's user and system CPU and context switches from /proc. On
SIGUSR2 the counts so far are appended to DIRECTORY/counts-PID.jsonl as one line, so a bench
signals before and after its burst and subtracts (`difference`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

COUNTS: Counter[str] = Counter()
# Shown even when none happened: that none did is the news.
ALWAYS = (
    "turns that waited for another process",
    "messages handed back as received earlier",
    "duplicates",
)


def _counting(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def counted(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        COUNTS["trips"] += 1
        COUNTS[f"trips: {query.split('(')[0].strip()[:48]}"] += 1
        return original(self, query, *args, **kwargs)

    return counted


def _install() -> None:
    import asyncpg
    import asyncpg.pool

    from bot import engine, flows
    from bot.store import postgres_connections as postgres

    for method in ("fetch", "fetchval", "fetchrow", "execute", "fetchmany", "executemany"):
        setattr(asyncpg.Connection, method, _counting(method, getattr(asyncpg.Connection, method)))
    acquire = asyncpg.pool.Pool.acquire

    def pooled(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["pool acquisitions"] += 1
        return acquire(self, *args, **kwargs)

    asyncpg.pool.Pool.acquire = pooled  # type: ignore[method-assign]
    batched_init = postgres.Batched.__init__

    def named(self: Any, run: Any) -> None:
        batched_init(self, run)
        kind = run.args[0].split("(")[0][:32] if hasattr(run, "args") else run.__name__
        inner = self._run

        async def counted(items: list[Any]) -> Any:
            COUNTS[f"batches: {kind}"] += 1
            COUNTS[f"batched items: {kind}"] += len(items)
            return await inner(items)

        self._run = counted

    postgres.Batched.__init__ = named  # type: ignore[method-assign]
    fetch_locks = postgres.AdvisoryLocks._fetch

    async def lock_trip(self: Any, batch: list[Any]) -> Any:
        COUNTS["lock trips"] += 1
        COUNTS["lock trips: items"] += len(batch)
        if not any(take for _, take, _, _ in batch):
            COUNTS["lock trips: only given back"] += 1
        return await fetch_locks(self, batch)

    postgres.AdvisoryLocks._fetch = lock_trip  # type: ignore[method-assign]
    acquire_lock = postgres.AdvisoryLocks._acquire

    async def waited(self: Any, number: int, inbound: Any) -> Any:
        read = await acquire_lock(self, number, inbound)
        if number in self._own:
            COUNTS["turns that waited for another process"] += 1
        return read

    postgres.AdvisoryLocks._acquire = waited  # type: ignore[method-assign]
    COUNTS.update(dict.fromkeys(ALWAYS, 0))
    _count_the_loop()
    after = flows.Flows._after

    async def earlier(self: Any, before: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["messages handed back as received earlier"] += len(before)
        return await after(self, before, *args, **kwargs)

    flows.Flows._after = earlier  # type: ignore[method-assign]
    handle = engine.Engine.handle

    async def handled(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["messages handled"] += 1
        outcome = await handle(self, *args, **kwargs)
        COUNTS["duplicates"] += bool(outcome.duplicate)
        return outcome

    engine.Engine.handle = handled  # type: ignore[method-assign]


def _count_the_loop() -> None:
    """The event loop's wake-ups (a selector call each: one turn of the loop), the sockets
    ready at them, and the callbacks run: a loop's fixed cost is paid per wake-up, so fewer
    events a wake-up means more of it a message."""
    import asyncio.events
    import selectors

    select = selectors.EpollSelector.select

    def woken(self: Any, timeout: float | None = None) -> Any:
        ready = select(self, timeout)
        COUNTS["loop: wake-ups"] += 1
        COUNTS["loop: sockets ready"] += len(ready)
        return ready

    selectors.EpollSelector.select = woken  # type: ignore[method-assign]
    run = asyncio.events.Handle._run

    def ran(self: Any) -> None:
        COUNTS["loop: callbacks run"] += 1
        run(self)

    asyncio.events.Handle._run = ran  # type: ignore[method-assign]


def _threads() -> dict[str, float]:
    """Each thread's user and system CPU seconds and context switches so far."""
    seen: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = (task / "status").read_text().splitlines()
        except OSError:
            continue
        name = "main" if task.name == str(os.getpid()) else "others"
        seen[f"{name} user s"] = seen.get(f"{name} user s", 0) + int(fields[11]) / tick
        seen[f"{name} system s"] = seen.get(f"{name} system s", 0) + int(fields[12]) / tick
        for line in status:
            if "ctxt_switches" in line:
                key = f"{name} {line.split(':')[0]}"
                seen[key] = seen.get(key, 0) + int(line.split()[1])
    return seen


def _dump(directory: Path) -> None:
    line = {"at": time.time(), "counts": dict(COUNTS), "threads": _threads()}
    with (directory / f"counts-{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def difference(path: Path) -> dict[str, float]:
    """What the process did between its first two dumps."""
    first, second = (json.loads(line) for line in path.read_text().splitlines()[:2])
    before = {**first["counts"], **first["threads"]}
    after = {**second["counts"], **second["threads"]}
    return {key: after[key] - before.get(key, 0) for key in after}


def main() -> int:
    directory = Path(sys.argv[1])
    _install()
    signal.signal(signal.SIGUSR2, lambda *_: _dump(directory))
    from bot.cli import main as quitbot

    return quitbot(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
