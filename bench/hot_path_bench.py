"""CPU of quitbot's own pieces of a message's hot path, without the network (issue 22).

Prints figures; not a pass/fail test. Run from a tree, and from another with PYTHONPATH
to compare (interleave the two, the machine is shared):

    .venv/bin/python bench/hot_path_bench.py
    PYTHONPATH=/tmp/base-hot .venv/bin/python bench/hot_path_bench.py

- `build_context`: a turn's context from 60 stored plain messages (what the store reads).
- a Discord reply: `ChannelReply` streaming an 8-word reply into a channel that answers at
  once, thinking to close (discord.py's HTTP request is not in it; its message parameters are).
Each figure is the best of 7 rounds, in µs.
"""

from __future__ import annotations

import asyncio
import time
import timeit
from typing import Any

from bot.context import build_context
from bot.conversation import ContextEntry
from bot.store.rows import encode_json
from platforms.discord.reply import ChannelReply

REPLY = ["Sure, ", "here ", "is ", "a ", "short ", "answer ", "to ", "that."]
ROUNDS = 7


def history(count: int = 60) -> list[ContextEntry]:
    entries = []
    for seq in range(1, count + 1):
        role = "user" if seq % 2 else "assistant"
        said = f"Tell me more about message {seq} please." if role == "user" else "".join(REPLY)
        api = [{"role": role, "content": [{"type": "text", "text": said}]}]
        entries.append(ContextEntry(seq, role, encode_json(api)))
    return entries


class _Channel:
    """A channel whose HTTP client answers every post and edit at once (after one turn of
    the loop, as a request would)."""

    id = 1

    def __init__(self) -> None:
        self.sent = 0

    async def send_message(self, channel_id: int, **_: Any) -> dict[str, str]:
        await asyncio.sleep(0)
        self.sent += 1
        return {"id": str(self.sent)}

    async def edit_message(self, channel_id: int, message_id: int, **_: Any) -> None:
        await asyncio.sleep(0)

    async def typing(self) -> None:
        return None


async def _one_reply(channel: _Channel) -> None:
    reply = ChannelReply(channel, channel)  # type: ignore[arg-type]

    async def shown(reply_id: str, complete: bool) -> None:
        return None

    reply.track("1", shown)
    await reply.thinking()
    await asyncio.sleep(0)  # the model's request goes out
    for word in REPLY:
        await reply.text(word)
    await reply.done()
    await reply.close()


async def _replies(per_round: int = 2000) -> float:
    channel = _Channel()
    await asyncio.gather(*(_one_reply(channel) for _ in range(200)))
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.process_time()
        await asyncio.gather(*(_one_reply(channel) for _ in range(per_round)))
        best = min(best, (time.process_time() - began) / per_round)
    return best * 1e6


def main() -> None:
    entries = history()
    runs = 2000
    context = min(timeit.repeat(lambda: build_context(entries, 30_000), number=runs, repeat=ROUNDS))
    print(f"build_context, 60 stored messages: {context / runs * 1e6:7.1f} µs")
    print(f"a Discord reply's own work:        {asyncio.run(_replies()):7.1f} µs")


if __name__ == "__main__":
    main()
