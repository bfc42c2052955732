"""What a user pays: the real `quitbot run` beside a minimal Claude bot, end to end.

    .venv/bin/python bench/e2e_bench.py [--platform discord|slack|both] [--bots ...]
        [--threads 100] [--burst 2000] [--rate 100] [--paced-seconds 10] [--long-turns 200]
        [--quitbot-src DIR] [--runs N] [--profile DIR] [--pin]

Every bot is a child process; Discord (REST + gateway), Slack (Web API) and the Messages
API (HTTP + SSE, a zero-latency model) are the loopback fakes of tests/fakes/, run by this
process, so each bot talks to them through its real SDKs: discord.py or slack-bolt, and the
anthropic SDK. Bots:

  quitbot          `python -m bot run`: SQLite file, the ladder, streaming replies, all on
  minimal-httpx    bench/minimal_{discord,slack}.py on the SDK's default transport
  minimal-aiohttp  the same on the SDK's aiohttp transport

Phases, per bot and platform: warm-up (a mention starts each thread), a paced phase
(`--rate` messages/s round-robin over the threads for `--paced-seconds`), a burst
(`--burst` messages as fast as the fake can send them; Slack: 16 requests in flight), then
one long thread of `--long-turns` turns, one at a time. Figures: burst replies/s, the bot
process's CPU ms per burst message (/proc, every thread of it), the first reply's p50/p99
in the paced phase (from sending the message to the bot's first reply call), Slack's ack
p50/p99 in both phases, RSS after the warm-up and after the burst, and for the long thread
the input tokens sent at turns 1, 50 and 200 with the share a prefix cache would serve
(the leading part identical to the thread's previous request). Prints figures; it is a
benchmark, not a test (pytest does not collect bench/).

`--quitbot-src DIR` runs quitbot from another source tree (e.g. `git archive` of an older
commit); or name variants in `--bots`, e.g. `quitbot-before=/tmp/base quitbot`, for
before/after figures in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.anthropic import FakeAnthropic, text  # noqa: E402
from tests.fakes.discord import Call, FakeDiscord  # noqa: E402
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack  # noqa: E402
from tests.fakes.slack import Call as SlackCall  # noqa: E402
from tests.fakes.slack_requests import SlackSender, event_callback, mention, message  # noqa: E402

SHORT_REPLY = "Sure, here is a short answer to that."
LONG_REPLY = " ".join(["This is a longer answer that goes on for a while."] * 24)  # ~1,200 ch
LONG_QUESTION = "Tell me more about it, in detail please. " * 8  # ~330 characters
CLK_TCK = os.sysconf("SC_CLK_TCK")
WAIT = 120.0


# --- the bot process -----------------------------------------------------------------------


class Bot:
    """A bot child process with its CPU time and RSS read from /proc."""

    def __init__(
        self, process: asyncio.subprocess.Process, log: Path, database: str | None = None
    ) -> None:
        self.process = process
        self.log = log
        self.database = database  # a PostgreSQL database of its own, if any

    async def server_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend serving the bot's database."""
        if self.database is None:
            return {}
        import asyncpg

        connection = await asyncpg.connect(f"{POSTGRES}/postgres")
        try:
            pids = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database
            )
        finally:
            await connection.close()
        return {row[0]: _cpu(row[0]) for row in pids}

    def cpu(self) -> float:
        """User + system seconds of every thread of the process so far."""
        return _cpu(self.process.pid)

    def cpu_ms(self) -> float:
        """The same in milliseconds to the microsecond (the scheduler's run time of every
        thread), for a single turn, which /proc's 10 ms ticks cannot resolve."""
        total = 0.0
        for sched in Path(f"/proc/{self.process.pid}/task").glob("*/sched"):
            with contextlib.suppress(OSError):  # a thread that just ended
                for line in sched.read_text().splitlines():
                    if line.startswith("se.sum_exec_runtime"):
                        total += float(line.rsplit(":", 1)[1])
                        break
        return total

    def threads_cpu(self) -> dict[str, float]:
        """User + system seconds so far of the main thread (the event loop) and of all the
        others (Python does not name its threads for the OS, so they are told apart by id)."""
        spent: dict[str, float] = defaultdict(float)
        for stat in Path(f"/proc/{self.process.pid}/task").glob("*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                name = "main" if stat.parent.name == str(self.process.pid) else "others"
                spent[name] += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return spent

    def threads_switches(self) -> dict[str, int]:
        """Context switches so far (voluntary + not) of each thread, named by start order
        ("main", then "2", "3", ...: the OS does not know Python's thread names)."""
        counts: dict[str, int] = {}
        tasks = sorted(Path(f"/proc/{self.process.pid}/task").iterdir(), key=lambda t: int(t.name))
        for rank, task in enumerate(tasks, 1):
            with contextlib.suppress(OSError):
                status = (task / "status").read_text().splitlines()
                switched = sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
                counts["main" if rank == 1 else str(rank)] = switched
                sched = (task / "sched").read_text().splitlines()
                ran = next(line for line in sched if line.startswith("se.sum_exec_runtime"))
                counts[f"{'main' if rank == 1 else rank} us"] = int(float(ran.split(":")[1]) * 1000)
        return counts

    def census(self) -> None:
        """With BENCH_CENSUS_DIR set, a heap census of a bot that runs
        bench/heap_census (`--bots quitbot-census=bench/heap_census`), waited for."""
        where = os.environ.get("BENCH_CENSUS_DIR")
        if not where or not self._catches(signal.SIGUSR1):  # the signal would end it
            return
        before = set(Path(where).glob(f"census-{self.process.pid}-*.txt"))
        self.process.send_signal(signal.SIGUSR1)
        for _ in range(600):  # the bot writes it within a second or so
            if set(Path(where).glob(f"census-{self.process.pid}-*.txt")) - before:
                return
            time.sleep(0.1)

    def _catches(self, signum: int) -> bool:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
        return False

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _cpu(pid: int) -> float:
    """User + system seconds of every thread of process `pid` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def server_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """Seconds the backends spent in between; one that started meanwhile counts from 0, one
    that ended meanwhile (a lock waited for on a connection of its own) is not seen."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUITBOT_", "ANTHROPIC_", "DISCORD_", "SLACK_", "MINIMAL_"))
    }
    env.update(extra)
    return env


# `--pin`: each bot's every thread on CPU 1; this process (the fakes, and the Slack sender it
# starts) goes on CPU 0.
PINNED = ("taskset", "-c", "1")


@contextlib.asynccontextmanager
async def start_bot(
    kind: str,
    platform: str,
    tmp: Path,
    env: dict[str, str],
    source: str | None,
    profile: str,
    pin: bool = False,
) -> AsyncIterator[Bot]:
    env = dict(env)
    database: str | None = None
    if kind.startswith("quitbot"):
        kind, _, tree = kind.partition("=")
        source = tree or source
        env["QUITBOT_DATABASE_URL"] = f"sqlite:///{tmp / 'quitbot.db'}"
        if "-pg" in kind:  # e.g. quitbot-pg: the same bot on a throw-away PostgreSQL database
            database = await _create_database()
            env["QUITBOT_DATABASE_URL"] = f"{POSTGRES}/{database}"
        env["QUITBOT_LOG_LEVEL"] = "WARNING"
        if source:
            env["PYTHONPATH"] = source
        args = ["-m", "bot", "run"]
    else:
        env["MINIMAL_TRANSPORT"] = kind.removeprefix("minimal-")
        args = [str(ROOT / "bench" / f"minimal_{platform}.py")]
    if profile:
        args = ["-m", "cProfile", "-o", profile, *args]
    log = tmp / f"{kind}-{platform}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *PINNED if pin else (), sys.executable, *args, stdout=out, stderr=out, cwd=tmp, env=env
        )
    bot = Bot(process, log, database)
    try:
        yield bot
    finally:
        await bot.stop()
        if database is not None:
            await _drop_database(database)


# The machine's PostgreSQL (trust auth), as the tests use it.
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


async def _create_database() -> str:
    import asyncpg

    name = f"quitbot_bench_{os.getpid()}_{int(time.monotonic() * 1000)}"
    connection = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def _drop_database(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


# --- the model -----------------------------------------------------------------------------


@dataclass
class Model:
    """The zero-latency Messages API: a short reply, or a long one in the long phase."""

    fake: FakeAnthropic
    long: bool = False

    def __post_init__(self) -> None:
        short, long = text(SHORT_REPLY), text(LONG_REPLY)
        self.fake.responder = lambda body: long if self.long else short

    def mark(self) -> int:
        return len(self.fake.requests)


def _units(body: dict[str, Any]) -> list[str]:
    """A request as cacheable units in prefix order: system, tools, each message block."""

    def plain(block: Any) -> str:
        if isinstance(block, dict):
            block = {k: v for k, v in block.items() if k != "cache_control"}
        return json.dumps(block, sort_keys=True)

    system = body.get("system") or []
    units = [plain(b) for b in (system if isinstance(system, list) else [system])]
    units += [plain(t) for t in body.get("tools") or []]
    for m in body["messages"]:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        units += [m["role"] + plain(b) for b in blocks]
    return units


def token_report(
    requests: list[dict[str, Any]], turns: list[int]
) -> dict[int, tuple[int, float, int]]:
    """For each turn: (estimated input tokens, share a prefix cache would serve, the
    request body's size in bytes as compact JSON)."""
    out: dict[int, tuple[int, float, int]] = {}
    previous: list[str] = []
    for n, body in enumerate(requests, start=1):
        units = _units(body)
        shared = 0
        for a, b in zip(previous, units, strict=False):
            if a != b:
                break
            shared += len(a)
        total = sum(len(u) for u in units)
        if n in turns:
            size = len(json.dumps(body, separators=(",", ":")).encode())
            out[n] = (total // 4, shared / total if total else 0.0, size)
        previous = units
    return out


# --- figures -------------------------------------------------------------------------------


@dataclass
class Figures:
    bot: str
    platform: str
    burst_rate: float = 0.0
    cpu_ms: float = 0.0
    paced_cpu_ms: float = 0.0
    first: list[float] = field(default_factory=list)
    paced_acks: list[float] = field(default_factory=list)
    burst_acks: list[float] = field(default_factory=list)
    driver_lags: list[float] = field(default_factory=list)  # the bench's loop, in the burst
    rss_warm: float = 0.0
    rss_after: float = 0.0
    tokens: dict[int, tuple[int, float, int]] = field(default_factory=dict)
    long_cpu: list[float] = field(default_factory=list)  # the bot's CPU ms for each turn
    long_requests: int = 0
    driver_cpu: float = 0.0
    threads_ms: dict[str, float] = field(default_factory=dict)  # burst CPU ms/msg per thread
    switches: dict[str, float] = field(default_factory=dict)  # burst context switches/msg
    load: float = 0.0  # the machine's 1-minute load average as the burst began
    server_cpu_ms: float = 0.0  # PostgreSQL's backends for the bot's database, per message
    rss_distinct: list[float] = field(default_factory=list)  # after each --distinct pass
    notes: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- replies as the fakes see them ---------------------------------------------------------


class Replies:
    """Counts reply starts and completions per thread and matches them to sent messages."""

    def __init__(self) -> None:
        self.done = 0
        self.pending: dict[str, deque[float]] = defaultdict(deque)
        self.first: list[float] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def sent(self, thread: str) -> None:
        self.pending[thread].append(time.perf_counter())

    def started(self, thread: str, at: float) -> None:
        queue = self.pending.get(thread)
        if queue:
            sent = queue.popleft()
            if self.first is not None:
                self.first.append((at - sent) * 1000)

    def completed(self) -> None:
        self.done += 1
        still = []
        for count, future in self._waiters:
            if self.done >= count and not future.done():
                future.set_result(None)
            elif not future.done():
                still.append((count, future))
        self._waiters = still

    async def wait(self, count: int, within: float = WAIT) -> None:
        if self.done >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        async with asyncio.timeout(within):
            await future


_MESSAGES = re.compile(r"/channels/(\d+)/messages")


class DiscordReplies(Replies):
    """Plugged into FakeDiscord's call observers: a reply is a POST of a message."""

    future: asyncio.Future[Call]  # FakeDiscord's observers carry one; never completed here

    def __init__(self) -> None:
        super().__init__()
        self.future = asyncio.get_running_loop().create_future()

    def see(self, call: Call) -> None:
        if call.method != "POST" or call.status >= 300:
            return
        match = _MESSAGES.fullmatch(call.path)
        if match:
            self.started(match.group(1), call.at)
            self.completed()


class ObservedSlack(FakeSlack):
    replies: Replies | None = None

    async def _record(self, call: SlackCall) -> None:
        await super()._record(call)
        replies = self.replies
        if replies is None:
            return
        thread = call.args.get("thread_ts")
        if call.method in {"chat.postMessage", "chat.startStream"} and thread:
            replies.started(str(thread), time.perf_counter())
        if (call.method == "chat.postMessage" and thread) or call.method == "chat.stopStream":
            replies.completed()


# --- Discord -------------------------------------------------------------------------------


async def run_discord(kind: str, args: argparse.Namespace, tmp: Path, profile: str) -> Figures:
    figures = Figures(kind.partition("=")[0], "discord")
    async with FakeAnthropic() as anthropic_fake, FakeDiscord() as fake:
        model = Model(anthropic_fake)
        threads = [fake.add_thread(f"bench {n}") for n in range(args.threads)]
        long_thread = fake.add_thread("long thread")
        replies = DiscordReplies()
        fake._waiters.append(replies)  # type: ignore[arg-type]  # sees every REST call
        env = _child_env(
            ANTHROPIC_API_KEY="test-key",
            ANTHROPIC_BASE_URL=anthropic_fake.base_url,
            DISCORD_TOKEN=fake.token,
            QUITBOT_DISCORD_API_BASE=fake.api_base,
            QUITBOT_DISCORD_GATEWAY_URL=fake.gateway_url,
            BENCH_DISCORD_API_BASE=fake.api_base,
            BENCH_DISCORD_GATEWAY=fake.gateway_url,
        )
        async with start_bot(kind, "discord", tmp, env, args.quitbot_src, profile, args.pin) as bot:
            async with asyncio.timeout(60):
                await fake.guild_ready.wait()
            ids = [str(t["id"]) for t in threads]

            async def say(thread: str, words: str, *, mention_bot: bool = False) -> None:
                replies.sent(thread)
                content = f"<@{fake.bot_id}> {words}" if mention_bot else words
                await fake.post(int(thread), fake.alice, content, mention_bot=mention_bot)

            await _until_answered(replies, lambda: say(ids[0], "hello", mention_bot=True))
            for thread in ids[1:]:
                await say(thread, "hello", mention_bot=True)
            await replies.wait(len(ids))
            for n, thread in enumerate(ids):  # one ordinary message each, still warming up
                await say(thread, f"warm {n}")
            await replies.wait(2 * len(ids))
            figures.rss_warm = bot.rss_mb()
            if args.distinct:
                bot.census()
                await _distinct_discord(figures, bot, fake, replies, args.distinct)
                return figures
            await _phases(figures, bot, replies, ids, args, say, None)
            figures.rss_after = bot.rss_mb()
            mark = model.mark()
            model.long = True
            if args.long_turns:
                figures.long_cpu = await _long_thread(
                    replies, str(long_thread["id"]), args.long_turns, say, bot
                )
            figures.tokens = token_report(anthropic_fake.requests[mark:], [1, 50, args.long_turns])
            figures.long_requests = len(anthropic_fake.requests) - mark
        _gc_note(figures, tmp)
    return figures


def _gc_note(figures: Figures, tmp: Path) -> None:
    """What bench/gc_stats recorded in the bot, when it ran with it."""
    stats = tmp / "gc-stats.txt"
    if stats.exists():
        figures.notes.append(stats.read_text())


async def _until_answered(replies: Replies, send: Callable[[], Any]) -> None:
    """The first message, repeated until the bot is up and answers it."""
    want = replies.done + 1
    for _ in range(60):
        await send()
        with contextlib.suppress(TimeoutError):
            await replies.wait(want, within=1.0)
            return
        for queue in replies.pending.values():
            queue.clear()
    raise TimeoutError("the bot never answered")


async def _phases(
    figures: Figures,
    bot: Bot,
    replies: Replies,
    ids: list[str],
    args: argparse.Namespace,
    say: Callable[..., Any],
    slack: SlackDriver | None,
) -> None:
    loop = asyncio.get_running_loop()
    # Paced: `rate` messages a second, round robin, on a fixed schedule (not waiting).
    count = int(args.rate * args.paced_seconds)
    base = replies.done
    replies.first = figures.first
    cpu = bot.cpu()
    started = loop.time()
    tasks = []
    for n in range(count):
        delay = started + n / args.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        thread = ids[n % len(ids)]
        if slack is not None:
            tasks.append(asyncio.create_task(slack.send(thread, f"paced {n}", figures.paced_acks)))
        else:
            await say(thread, f"paced {n}")
    await asyncio.gather(*tasks)
    await replies.wait(base + count)
    figures.paced_cpu_ms = (bot.cpu() - cpu) * 1000 / count
    replies.first = None
    # Burst: everything at once (Slack: 16 requests in flight, as Slack itself would).
    total = args.burst
    base = replies.done
    spy = await _py_spy(bot, figures, args.py_spy)
    server = await bot.server_cpu()
    cpu, driver, start = bot.cpu(), time.process_time(), time.perf_counter()
    threads, switched = bot.threads_cpu(), bot.threads_switches()
    figures.load = os.getloadavg()[0]
    lags: list[float] = []
    watching = asyncio.create_task(_watch_lag(lags))
    if slack is not None:
        bodies = [json.dumps(slack.payload(ids[n % len(ids)], f"burst {n}")) for n in range(total)]
        async with _slack_senders(slack.sender.url, bodies) as go:
            cpu, driver, start = bot.cpu(), time.process_time(), time.perf_counter()
            figures.burst_acks = await go()
    else:
        for n in range(total):
            await say(ids[n % len(ids)], f"burst {n}")
    await replies.wait(base + total)
    elapsed = time.perf_counter() - start
    watching.cancel()
    figures.driver_lags = lags
    figures.burst_rate = total / elapsed
    figures.cpu_ms = (bot.cpu() - cpu) * 1000 / total
    figures.threads_ms = {
        name: round((spent - threads.get(name, 0.0)) * 1000 / total, 3)
        for name, spent in bot.threads_cpu().items()
        if spent - threads.get(name, 0.0) > 0
    }
    figures.switches = {
        name: round((count - switched.get(name, 0)) / total, 2)
        for name, count in bot.threads_switches().items()
        if count - switched.get(name, 0) > 0
    }
    figures.server_cpu_ms = server_cpu_between(server, await bot.server_cpu()) * 1000 / total
    figures.driver_cpu = (time.process_time() - driver) / elapsed
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await spy.wait()


@contextlib.asynccontextmanager
async def _slack_senders(url: str, bodies: list[str]) -> AsyncIterator[Callable[[], Any]]:
    """bench/slack_events_sender.py started and connected; `await go()` sends `bodies`, 16
    in flight as Slack's, and gives each ack's milliseconds."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "slack_events_sender.py"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**24,  # the acks come back as one line: ~19 bytes each
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout
    stdin.write(json.dumps({"url": url, "in_flight": 16, "bodies": bodies}).encode() + b"\n")
    await stdin.drain()
    if (await stdout.readline()).strip() != b"ready":
        raise RuntimeError("the Slack sender did not start")

    async def go() -> list[float]:
        stdin.write(b"go\n")
        await stdin.drain()
        line = await stdout.readline()
        if not line:
            raise RuntimeError("the Slack sender stopped before sending everything")
        acks: list[float] = json.loads(line)
        return acks

    try:
        yield go
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        await child.wait()


async def _watch_lag(lags: list[float], every: float = 0.002) -> None:
    """How late this process's own loop wakes (ms), for as long as it runs: a reply or an
    ack this loop times is late by as much when the loop is busy."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(every)
        lags.append((time.perf_counter() - start - every) * 1000)


async def _py_spy(bot: Bot, figures: Figures, directory: str) -> asyncio.subprocess.Process | None:
    """A sampling profile of the bot (every thread) for the burst, as collapsed stacks."""
    if not directory:
        return None
    out = Path(directory) / f"{figures.bot}-{figures.platform}.txt"
    spy = await asyncio.create_subprocess_exec(
        "py-spy",
        "record",
        "--pid",
        str(bot.process.pid),
        "--format",
        "raw",
        "--threads",
        "--nonblocking",
        "--rate",
        "250",
        "-o",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # py-spy attaches before the burst starts
    return spy


async def _long_thread(
    replies: Replies, thread: str, turns: int, say: Callable[..., Any], bot: Bot
) -> list[float]:
    """The turns one at a time; the bot's CPU ms for each (until its reply is complete;
    work after the reply, such as the turn's commit, lands on the next turn)."""
    spent = []
    for turn in range(1, turns + 1):
        want, before = replies.done + 1, bot.cpu_ms()
        await say(thread, f"{turn}: {LONG_QUESTION}", mention_bot=turn == 1)
        await replies.wait(want)
        spent.append(bot.cpu_ms() - before)
    return spent


def long_cpu_at(spent: list[float], turn: int) -> float:
    """CPU ms per message at `turn`: turn 1 itself, later turns as the median of the ten
    ending there (a history trimmed in steps costs a little more or less turn to turn)."""
    window = spent[max(0, turn - 10) : turn] if turn > 1 else spent[:1]
    return statistics.median(window) if window else float("nan")


# --- many conversations, once each, twice (--distinct) -------------------------------------

IN_FLIGHT = 200  # messages sent but not yet answered, at most, in a --distinct pass


async def _distinct(
    figures: Figures, bot: Bot, replies: Replies, count: int, send: Callable[[int], Any]
) -> None:
    """Two passes over `count` conversations (`send(n)` touches the n-th); RSS after each."""
    for _ in range(2):
        base = replies.done
        for n in range(count):
            if n >= IN_FLIGHT:
                await replies.wait(base + n - IN_FLIGHT + 1, within=WAIT * 5)
            await send(n)
        await replies.wait(base + count, within=WAIT * 5)
        await asyncio.sleep(2)  # the last turns commit after their reply
        figures.rss_distinct.append(bot.rss_mb())
        bot.census()


async def _distinct_discord(
    figures: Figures, bot: Bot, fake: FakeDiscord, replies: DiscordReplies, count: int
) -> None:
    """Pass one mentions the bot in the channel `count` times: a thread (and conversation)
    each, as people start them. Pass two writes once more in each of those threads."""
    threads: list[int] = []

    async def send(n: int) -> None:
        if len(threads) < count:  # the thread the bot opens has the mention's id
            mention = await fake.post(
                fake.channel_id, fake.alice, f"<@{fake.bot_id}> topic {n}", mention_bot=True
            )
            threads.append(int(mention["id"]))
        else:
            await fake.post(threads[n], fake.alice, f"again {n}")

    await _distinct(figures, bot, replies, count, send)


async def _distinct_slack(
    figures: Figures, bot: Bot, driver: SlackDriver, replies: Replies, count: int
) -> None:
    """Pass one mentions the bot in `count` new threads, pass two follows each up (16 requests
    in flight, as Slack itself would)."""
    gate = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        async with gate:
            await driver.send(f"1700300000.{n:06d}", f"topic {n}")

    running: set[asyncio.Task[None]] = set()

    async def send(n: int) -> None:
        task = asyncio.create_task(one(n))
        running.add(task)
        task.add_done_callback(running.discard)

    await _distinct(figures, bot, replies, count, send)


# --- Slack ---------------------------------------------------------------------------------


class SlackDriver:
    """Signed Events API requests to the bot's HTTP endpoint; acks timed."""

    def __init__(self, url: str, session: aiohttp.ClientSession, replies: Replies) -> None:
        self.sender = SlackSender(url, session)
        self.replies = replies
        self.roots: set[str] = set()
        self._ts = 0

    def _next_ts(self) -> str:
        self._ts += 1
        return f"1700100000.{self._ts:06d}"

    def payload(self, thread: str, words: str) -> dict[str, Any]:
        """The event of `words` said in `thread`, counted as sent."""
        if thread not in self.roots:
            self.roots.add(thread)
            payload = event_callback(mention(f"<@U0QUITBOT> {words}", ts=thread))
        else:
            payload = event_callback(message(words, ts=self._next_ts(), thread_ts=thread))
        self.replies.sent(thread)
        return payload

    async def send(self, thread: str, words: str, acks: list[float] | None = None) -> None:
        payload = self.payload(thread, words)
        start = time.perf_counter()
        sent = await self.sender.event(payload)
        if acks is not None:
            acks.append((time.perf_counter() - start) * 1000)
        if sent.status != 200:
            raise RuntimeError(f"the bot answered {sent.status}: {sent.body[:200]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _listening(port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            writer.close()
            await writer.wait_closed()
            return


async def run_slack(kind: str, args: argparse.Namespace, tmp: Path, profile: str) -> Figures:
    figures = Figures(kind.partition("=")[0], "slack")
    async with FakeAnthropic() as anthropic_fake, ObservedSlack() as fake:
        model = Model(anthropic_fake)
        replies = Replies()
        fake.replies = replies
        port = _free_port()
        env = _child_env(
            ANTHROPIC_API_KEY="test-key",
            ANTHROPIC_BASE_URL=anthropic_fake.base_url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            QUITBOT_SLACK_MODE="http",
            QUITBOT_SLACK_HTTP_PORT=str(port),
            QUITBOT_SLACK_API_URL=fake.base_url,
            BENCH_SLACK_API=fake.base_url,
            BENCH_SLACK_PORT=str(port),
        )
        async with (
            start_bot(kind, "slack", tmp, env, args.quitbot_src, profile, args.pin) as bot,
            aiohttp.ClientSession() as session,
        ):
            await _listening(port)
            driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", session, replies)
            ids = [f"1700000000.{n:06d}" for n in range(args.threads)]

            async def say(thread: str, words: str, *, mention_bot: bool = False) -> None:
                await driver.send(thread, words)

            for thread in ids:
                await say(thread, "hello")
            await replies.wait(len(ids))
            for n, thread in enumerate(ids):
                await say(thread, f"warm {n}")
            await replies.wait(2 * len(ids))
            figures.rss_warm = bot.rss_mb()
            if args.distinct:
                bot.census()
                await _distinct_slack(figures, bot, driver, replies, args.distinct)
                return figures
            await _phases(figures, bot, replies, ids, args, say, driver)
            figures.rss_after = bot.rss_mb()
            mark = model.mark()
            model.long = True
            if args.long_turns:
                figures.long_cpu = await _long_thread(
                    replies, "1700200000.000001", args.long_turns, say, bot
                )
            figures.tokens = token_report(anthropic_fake.requests[mark:], [1, 50, args.long_turns])
            figures.long_requests = len(anthropic_fake.requests) - mark
            if fake.unexpected:
                figures.notes.append(f"fake Slack saw unexpected calls: {fake.unexpected[:3]}")
            figures.notes.append(_calls_per_reply(fake.methods(), replies.done))
        _gc_note(figures, tmp)
    return figures


def _calls_per_reply(methods: list[str], replies: int) -> str:
    """Slack Web API calls by method, per reply completed (every phase of the run)."""
    counts = Counter(methods).most_common()
    return "Web API calls per reply: " + ", ".join(
        f"{m} {n / max(replies, 1):.2f}" for m, n in counts
    )


# --- the report ----------------------------------------------------------------------------


def show(all_figures: list[Figures]) -> None:
    print()
    print(
        f"{'bot':<26}{'burst/s':>9}{'CPU ms/msg':>11}{'paced CPU':>10}{'1st p50':>9}"
        f"{'1st p99':>9}{'ack p50':>9}{'ack p99':>9}{'burst ack p99':>14}"
        f"{'RSS warm':>10}{'after':>8}{'driver':>8}{'server CPU':>11}"
    )
    for f in all_figures:
        acks = f.paced_acks
        print(
            f"{f.bot + ', ' + f.platform:<26}{f.burst_rate:>9.0f}{f.cpu_ms:>11.2f}"
            f"{f.paced_cpu_ms:>10.2f}{statistics.median(f.first) if f.first else 0:>9.1f}"
            f"{pct(f.first, 0.99):>9.1f}"
            f"{(statistics.median(acks) if acks else float('nan')):>9.1f}{pct(acks, 0.99):>9.1f}"
            f"{pct(f.burst_acks, 0.99):>14.1f}{f.rss_warm:>10.1f}{f.rss_after:>8.1f}"
            f"{f.driver_cpu:>7.0%}{f.server_cpu_ms:>11.2f}"
        )
    print(
        "\nlong thread: estimated input tokens sent / share a prefix cache would serve / "
        "request bytes / bot CPU ms per message"
    )
    for f in all_figures:
        cells = "   ".join(
            f"turn {turn}: {tokens:>6} tok {share:>4.0%} {size / 1000:>5.1f} kB"
            f" {long_cpu_at(f.long_cpu, int(turn)):>5.2f} ms"
            for turn, (tokens, share, size, *_) in sorted(f.tokens.items(), key=lambda t: int(t[0]))
        )
        print(f"{f.bot + ', ' + f.platform:<26}{cells}   ({f.long_requests} requests)")
    for f in all_figures:
        if f.threads_ms:
            shares = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(f.threads_ms.items()))
            print(f"burst CPU ms/msg by thread ({f.bot}, {f.platform}): {shares}; load {f.load}")
        if f.burst_acks:
            acks = " / ".join(f"{pct(f.burst_acks, q):.1f}" for q in (0.5, 0.9, 0.99))
            print(f"burst ack p50 / p90 / p99 ms ({f.bot}, {f.platform}): {acks}")
        if f.driver_lags:
            lags = " / ".join(f"{pct(f.driver_lags, q):.1f}" for q in (0.5, 0.9, 0.99))
            print(
                f"the bench's own loop late, p50 / p90 / p99 / most ms ({f.bot}, {f.platform}): "
                f"{lags} / {max(f.driver_lags):.1f}"
            )
        if f.switches:
            counts = ", ".join(f"{name} {n:.2f}" for name, n in f.switches.items())
            print(f"burst context switches/msg by thread ({f.bot}, {f.platform}): {counts}")
    for f in all_figures:
        if f.rss_distinct:
            passes = " -> ".join(f"{rss:.1f}" for rss in f.rss_distinct)
            grew = [rss - f.rss_warm for rss in f.rss_distinct]
            print(
                f"{f.bot + ', ' + f.platform:<26}RSS MB warm {f.rss_warm:.1f} -> {passes} "
                f"(+{grew[0]:.1f} after the first pass, +{grew[-1] - grew[0]:.1f} more after "
                "the second)"
            )
    for f in all_figures:
        for note in f.notes:
            print(f"note ({f.bot}, {f.platform}): {note}")


async def main() -> None:
    # This process runs the fakes and keeps every request; a full collection of that heap
    # stalls them for a while and shows up as the bots' latency. Not the bots' cost.
    gc.disable()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", choices=["discord", "slack", "both"], default="both")
    parser.add_argument(
        "--bots", nargs="+", default=["minimal-httpx", "minimal-aiohttp", "quitbot"]
    )
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--long-turns", type=int, default=200)
    parser.add_argument(
        "--distinct",
        type=int,
        default=0,
        help="instead of the phases: this many new conversations once each, then once more "
        "each; RSS after each pass",
    )
    parser.add_argument("--quitbot-src", default=None, help="run quitbot from this tree")
    parser.add_argument("--quitbot-label", default="")
    parser.add_argument("--runs", type=int, default=1, help="interleaved repetitions")
    parser.add_argument("--profile", default="", help="directory for cProfile output of bots")
    parser.add_argument(
        "--py-spy", default="", help="directory for py-spy profiles of the bots' bursts"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="each bot on CPU 1 (taskset), this bench and its fakes on CPU 0",
    )
    parser.add_argument("--save", default="", help="append each run's figures to this file")
    parser.add_argument("--report", nargs="+", default=[], help="medians of saved figures")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {0})
    if args.report:
        saved = _load(args.report)
        show(saved)
        medians(saved)
        return
    platforms = ["discord", "slack"] if args.platform == "both" else [args.platform]
    runners = {"discord": run_discord, "slack": run_slack}
    results: list[Figures] = []
    for run in range(args.runs):
        for platform in platforms:
            for kind in args.bots:
                with tempfile.TemporaryDirectory() as tmp:
                    profile = (
                        str(Path(args.profile) / f"{kind}-{platform}-{run}.prof")
                        if args.profile
                        else ""
                    )
                    try:
                        figures = await runners[platform](kind, args, Path(tmp), profile)
                    except Exception as exc:
                        log = Path(tmp) / f"{kind}-{platform}.log"
                        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                        print(f"{kind} on {platform} failed: {exc!r}\n{tail}", file=sys.stderr)
                        continue
                if kind == "quitbot" and args.quitbot_label:
                    figures.bot = args.quitbot_label
                results.append(figures)
                if args.save:
                    _save(args.save, figures)
                show([figures])
    print("\n=== all runs ===")
    show(results)
    if args.runs > 1:
        medians(results)


def _save(path: str, figures: Figures) -> None:
    with open(path, "a") as saved:
        saved.write(json.dumps(dataclasses.asdict(figures)) + "\n")


def _load(paths: list[str]) -> list[Figures]:
    return [
        Figures(**json.loads(line))
        for path in paths
        for line in Path(path).read_text().splitlines()
        if line.strip()
    ]


def medians(results: list[Figures]) -> None:
    """Per bot and platform, the median of each figure over the runs, and the burst rate
    against the minimal bot on the SDK's aiohttp transport (its fastest) in the same runs."""
    groups: dict[tuple[str, str], list[Figures]] = defaultdict(list)
    for f in results:
        groups[(f.bot, f.platform)].append(f)

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    print(f"\n=== medians of {max(len(g) for g in groups.values())} interleaved runs ===")
    print(
        f"{'bot':<26}{'burst/s':>9}{'x minimal':>10}{'CPU ms/msg':>11}{'1st p50':>9}"
        f"{'1st p99':>9}{'ack p50':>9}{'ack p99':>9}{'burst ack p99':>14}{'RSS warm':>10}"
        f"{'after':>8}{'server CPU':>11}"
    )
    for (bot, platform), runs in groups.items():
        base = groups.get(("minimal-aiohttp", platform), [])
        rate = med([f.burst_rate for f in runs])
        ratio = rate / med([f.burst_rate for f in base]) if base else float("nan")
        print(
            f"{bot + ', ' + platform:<26}{rate:>9.0f}{ratio:>10.2f}"
            f"{med([f.cpu_ms for f in runs]):>11.2f}"
            f"{med([statistics.median(f.first) for f in runs if f.first]):>9.1f}"
            f"{med([pct(f.first, 0.99) for f in runs]):>9.1f}"
            f"{med([statistics.median(f.paced_acks) for f in runs if f.paced_acks]):>9.1f}"
            f"{med([pct(f.paced_acks, 0.99) for f in runs]):>9.1f}"
            f"{med([pct(f.burst_acks, 0.99) for f in runs]):>14.1f}"
            f"{med([f.rss_warm for f in runs]):>10.1f}{med([f.rss_after for f in runs]):>8.1f}"
            f"{med([f.server_cpu_ms for f in runs]):>11.2f}"
        )
    print("\nlong thread, bot CPU ms per message (median over the runs)")
    for (bot, platform), runs in groups.items():
        spent = [f.long_cpu for f in runs if f.long_cpu]
        turns = [1, 50, len(spent[0])] if spent else []
        cells = "   ".join(
            f"turn {t}: {med([long_cpu_at(s, t) for s in spent]):>5.2f}" for t in turns
        )
        print(f"{bot + ', ' + platform:<26}{cells}")


if __name__ == "__main__":
    asyncio.run(main())
