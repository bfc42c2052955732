"""The store's work for each Slack message of a burst, without the network (issue 22).

    .venv/bin/python bench/slack_store_bench.py [messages]
    PYTHONPATH=/tmp/base-main .venv/bin/python bench/slack_store_bench.py   # another tree

What one message costs the SQLite store as the Slack HTTP listener and a turn ask for it: a
receipt from another thread's loop (`anywhere()`), then under the conversation's lock
`at_place`, `begin_turn_with_context` (60 messages at most), `reply_shown` and
`commit_turn`; 100 threads, 16 messages in flight, after 400 to warm up. Prints the CPU
of the store's thread and of the loop's per message (from /proc, µs) and the rate. Figures,
not pass/fail; interleave trees, the machine is shared.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.conversation import Conversation, ConversationKey, Inbound
from bot.ports import NewMessage
from bot.store import SqliteStore

THREADS, IN_FLIGHT, WARM = 100, 16, 400
REPLY = "Sure, here is an answer " * 4


def threads_cpu_ms() -> dict[str, float]:
    spent = {}
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for line in (task / "sched").read_text().splitlines():
            if line.startswith("se.sum_exec_runtime"):
                spent[task.name] = float(line.split(":")[1])
                break
    return spent


async def one_message(
    store: SqliteStore, conversation: Conversation, lock: asyncio.Lock, n: int
) -> None:
    words = f"burst {n} hello there"
    inbound = Inbound(conversation.key, f"Ev{n}", "U1", words, message_id=f"{n}.1", community="T1")
    at = datetime.now(UTC)
    await store.anywhere().receive(inbound, at)
    async with lock:
        place = await store.at_place(inbound)
        assert place.conversation is not None
        api = [{"role": "user", "content": [{"type": "text", "text": words}]}]
        asked = NewMessage("user", words, api, at, user_id="U1", platform_message_id=f"{n}.1")
        await store.begin_turn_with_context(conversation.id, inbound, asked, 60)
        await store.reply_shown(inbound, f"{n}.2", True)
        api = [{"role": "assistant", "content": [{"type": "text", "text": REPLY}]}]
        reply = NewMessage("assistant", REPLY, api, at, platform_message_id=f"{n}.2")
        ladder = place.conversation.ladder
        await store.commit_turn(conversation.id, ladder, at, [reply], (), answered=inbound)


async def main(messages: int) -> None:
    store = await SqliteStore.open(str(Path(tempfile.mkdtemp()) / "bench.db"))
    now = datetime.now(UTC)
    conversations = [
        await store.create(ConversationKey("slack", f"C1:{n}.0"), "U1", now, community="T1")
        for n in range(THREADS)
    ]
    locks = [asyncio.Lock() for _ in range(THREADS)]
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def gated(n: int) -> None:
        async with gate:
            await one_message(store, conversations[n % THREADS], locks[n % THREADS], n)

    await asyncio.gather(*(gated(n) for n in range(WARM)))
    before, start = threads_cpu_ms(), time.perf_counter()
    await asyncio.gather(*(gated(n) for n in range(WARM, WARM + messages)))
    elapsed, after = time.perf_counter() - start, threads_cpu_ms()
    loop = str(threading.get_native_id())
    for tid, spent in sorted(after.items(), key=lambda item: item[0] != loop):
        name = "loop " if tid == loop else "store"
        print(f"{name} {(spent - before.get(tid, 0.0)) / messages * 1000:6.1f} µs a message")
    print(f"rate  {messages / elapsed:6.0f} messages/s")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000))
