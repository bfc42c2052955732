"""Burst throughput and CPU per message for several quitbot processes on one database.

    .venv/bin/python bench/processes_bench.py URL [PROCESSES] [CONVERSATIONS] [EACH]

Starts PROCESSES worker processes (default 1), each an Engine with an instant in-process
model on the database URL names (which must be empty), each with its own CONVERSATIONS
conversations (default 100, as Discord shards split them) of EACH messages (default 20),
all released at once. Prints messages/s over the whole burst, CPU per message summed over
the workers, and the cost of taking and giving back one conversation's lock.
Figures, not pass/fail.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bot.app import build_runtime
from bot.conversation import ConversationKey, Inbound
from bot.settings import Settings

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from core_bench import InstantModel, NullReply


def settings(url: str) -> Settings:
    return Settings(_env_file=None, anthropic_api_key="unused", database_url=url)  # type: ignore[call-arg]


async def worker(url: str, index: int, conversations: int, each: int) -> None:
    async with build_runtime(settings(url), model=InstantModel()) as runtime:
        engine = runtime.engine
        keys = [ConversationKey("bench", f"w{index}-c{n}") for n in range(conversations)]
        await engine.handle(Inbound(keys[0], f"w{index}-warm", "u1", "hi"), NullReply())
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def talk(key: ConversationKey) -> None:
            for n in range(each):
                inbound = Inbound(key, f"{key.place}-{n}", "u1", "hello, how are you?")
                await engine.handle(inbound, NullReply())

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(talk(key) for key in keys))
        print(
            json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}),
            flush=True,
        )


async def lock_cost(url: str, rounds: int = 2000) -> float:
    """p50 µs to take and give back one conversation's lock, uncontended."""
    async with build_runtime(settings(url), model=InstantModel()) as runtime:
        key = ConversationKey("bench", "lock")
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            async with runtime.store.serialised(key):
                pass
            samples.append(time.perf_counter() - start)
        samples.sort()
        return samples[len(samples) // 2] * 1e6


async def main(url: str, processes: int, conversations: int, each: int) -> None:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            url,
            str(index),
            str(conversations),
            str(each),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for index in range(processes)
    ]
    for process in workers:
        assert process.stdout is not None
        assert (await process.stdout.readline()).strip() == b"ready"
    start = time.perf_counter()
    for process in workers:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    results = []
    for process in workers:
        assert process.stdout is not None
        results.append(json.loads(await process.stdout.readline()))
        await process.wait()
    wall = time.perf_counter() - start
    total = processes * conversations * each
    cpu = sum(r["cpu"] for r in results)
    print(
        f"{processes} process(es), {processes * conversations} conversations at once: "
        f"{total / wall:,.0f} messages/s, {cpu / total * 1000:.2f} ms CPU per message "
        f"(bot processes only; database server not counted)"
    )
    print(f"conversation lock, taken and given back: p50 {await lock_cost(url):.0f} µs")


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        arguments = sys.argv[1:] + ["1", "100", "20"][len(sys.argv) - 2 :]
        asyncio.run(main(arguments[0], *(int(a) for a in arguments[1:4])))
