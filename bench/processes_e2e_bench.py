"""Several `quitbot run` processes on one PostgreSQL database, end to end, under a burst.

    .venv/bin/python bench/processes_e2e_bench.py [--platform discord|slack|both]
        [--processes 2] [--threads 100] [--burst 2000] [--runs 1] [--rate 0]
        [--bot quitbot|minimal] [--store postgres|sqlite|apart] [--pin]
        [--setting QUITBOT_NAME=VALUE ...]

Per platform and run, on a fresh database each time: one process alone, then PROCESSES
processes sharing the database, through the real SDKs and the loopback fakes of
bench/e2e_bench.py. Discord: the fake gateway has 2 shards and a server on each; one process
runs both shards, or each process one. Slack (HTTP): the Events API requests go through a
round-robin forwarder on loopback (this process), alternating between the processes' ports
(with one process, all to it). Threads are opened by a mention each (half in each Discord
server), answered, written in once more (the warm-up), then get the burst round robin.

Figures: burst replies/s, CPU per message summed over the bot processes (/proc), the
PostgreSQL backends' CPU per message for that database, and from the fakes' records:
replies missing, duplicated, and conversations whose replies came out of order (the model
echoes each message's token, so a reply names the message it answers); this process's own
CPU per message, and the share of the machine's CPU time busy (and stolen) in the burst.
Figures, not pass/fail: a 2-core machine cannot show throughput scaling, only cost and
correctness.

`--bot minimal` runs bench/minimal_slack.py in place of quitbot (Slack only): a bot that
shares nothing, the control for what a second process costs on the machine itself. `--rate`
sends on a clock instead of as fast as the bots take the messages, so that one process and
several carry the same load. `--store sqlite` shares one SQLite file instead of PostgreSQL,
and `--store apart` gives each process a file of its own: processes that share nothing, so
what a second process costs whatever the store does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_bench import (
    POSTGRES,
    WAIT,
    Bot,
    DiscordReplies,
    ObservedSlack,
    Replies,
    SlackDriver,
    _child_env,
    _create_database,
    _drop_database,
    _free_port,
    _listening,
    server_cpu_between,
)
from trip_counts import ALWAYS, difference

from tests.fakes.anthropic import FakeAnthropic, Response, text
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET

HERE = Path(__file__).resolve().parent
TOKEN = re.compile(r"\bm-\d+-\d+\b")  # m-<thread>-<n>: which message a reply answers


def echo(body: dict[str, Any]) -> Response:
    """The model answers each message with its token, so each reply names its message."""
    said = TOKEN.findall(str(body["messages"][-1]["content"]))
    return text(f"re: {said[-1]}" if said else "Hello.")


@dataclass
class Figures:
    platform: str
    processes: int
    rate: float = 0.0
    cpu_ms: float = 0.0
    server_ms: float = 0.0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    per_process: list[float] = field(default_factory=list)  # CPU ms per burst message
    bench_ms: float = 0.0  # this process's CPU per message: the fakes and the forwarder
    busy: float = 0.0  # the machine's CPUs busy in the burst, as a share of all they had
    steal: float = 0.0  # ... and the share the hypervisor took
    examples: list[str] = field(default_factory=list)  # the first few faults found
    counts: list[dict[str, float]] = field(default_factory=list)  # per process (--counts)


@contextlib.asynccontextmanager
async def bots(
    envs: Sequence[dict[str, str]],
    tmp: Path,
    counts: str = "",
    minimal: bool = False,
    pin: bool = False,
) -> AsyncIterator[list[Bot]]:
    """`quitbot run` once per environment, stopped at the end; with `counts` (a directory),
    through bench/trip_counts.py, which counts what each store does there. With `minimal`,
    bench/minimal_slack.py instead: the control (`--bot minimal`). With `pin`, bot n and its
    every thread on CPU n + 1 (modulo the CPUs): one process, or each of two, a core its own."""
    started: list[Bot] = []
    command = [str(HERE / "trip_counts.py"), counts] if counts else ["-m", "bot"]
    command = [str(HERE / "minimal_slack.py")] if minimal else [*command, "run"]
    try:
        for n, env in enumerate(envs):
            log = tmp / f"quitbot-{n}.log"
            with log.open("wb") as out:
                cpu = ("taskset", "-c", str((n + 1) % (os.cpu_count() or 1))) if pin else ()
                process = await asyncio.create_subprocess_exec(
                    *cpu, sys.executable, *command, stdout=out, stderr=out, cwd=tmp, env=env
                )
            started.append(Bot(process, log))
        yield started
    finally:
        for bot in started:
            await bot.stop()


def check(sent: dict[str, list[str]], answered: dict[str, list[str]], figures: Figures) -> None:
    """Each message sent answered once, and in each conversation in the order sent."""
    for thread, tokens in sent.items():
        ours = set(tokens)
        replies = [t for t in answered.get(thread, []) if t in ours]
        counts = Counter(replies)
        missing = [t for t in tokens if counts[t] == 0]
        twice = [t for t, n in counts.items() if n > 1]
        firsts = list(dict.fromkeys(replies))
        disordered = firsts != [t for t in tokens if t in counts]
        figures.missing += len(missing)
        figures.duplicated += sum(counts[t] - 1 for t in twice)
        figures.out_of_order += disordered
        if (missing or twice or disordered) and len(figures.examples) < 3:
            figures.examples.append(
                f"{thread}: missing {missing[:3]}, twice {twice[:3]}, replies {replies[:12]}"
            )


async def burst(
    bots: list[Bot],
    database: str | None,
    replies: Replies,
    send: Any,
    ids: list[str],
    total: int,
    figures: Figures,
    look: argparse.Namespace,
) -> dict[str, list[str]]:
    """`total` messages round robin over `ids` (at `look.rate` a second, or as fast as the
    bots take them); CPU and rate measured until the last reply;
    a py-spy profile of each bot for the burst (`look.py_spy`, a directory), and the counts
    of bench/trip_counts.py (`look.counts`)."""
    meter = Bot(bots[0].process, bots[0].log, database)
    server = await meter.server_cpu()
    count(bots, look.counts)
    cpu = [bot.cpu() for bot in bots]
    name = f"{figures.platform}-{figures.processes}"
    spies = [await py_spy(bot, look.py_spy, f"{name}-{n}.txt") for n, bot in enumerate(bots)]
    machine, own = _machine(), time.process_time()
    base, start = replies.done, time.perf_counter()
    sent: dict[str, list[str]] = defaultdict(list)
    for n in range(total):
        thread = ids[n % len(ids)]
        token = f"m-{ids.index(thread)}-{n + 10}"  # 0 and 1: the warm-up's
        sent[thread].append(token)
        if look.rate:  # open loop: message n goes at n / rate, however fast the bots are
            await asyncio.sleep(start + n / look.rate - time.perf_counter())
        await send(thread, f"burst {token}")
    await replies.wait(base + total, within=WAIT * 3)
    figures.rate = total / (time.perf_counter() - start)
    figures.per_process = [(bot.cpu() - c) * 1000 / total for bot, c in zip(bots, cpu, strict=True)]
    figures.cpu_ms = sum(figures.per_process)
    figures.bench_ms = (time.process_time() - own) * 1000 / total
    figures.busy, figures.steal = _shares(machine, _machine())
    figures.server_ms = server_cpu_between(server, await meter.server_cpu()) * 1000 / total
    count(bots, look.counts)
    for spy in spies:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
    await asyncio.sleep(1)  # a duplicate would come after the count was reached
    for bot in bots if look.counts else ():
        done = difference(Path(look.counts) / f"counts-{bot.process.pid}.jsonl")
        figures.counts.append({key: per_message(key, n, total) for key, n in done.items()})
    return sent


def database_urls(store: str, database: str | None, tmp: Path, processes: int) -> list[str]:
    """Each process's database: the PostgreSQL one they share, one SQLite file they share
    (its locks are the file's), or a SQLite file each (`apart`: nothing shared at all)."""
    if store == "postgres":
        return [f"{POSTGRES}/{database}"] * processes
    if store == "sqlite":
        return [f"sqlite:///{tmp}/quitbot.db"] * processes
    return [f"sqlite:///{tmp}/quitbot-{n}.db" for n in range(processes)]


def _machine() -> list[int]:
    """The machine's CPU time so far by kind, in ticks (/proc/stat's first line)."""
    return [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def _shares(before: list[int], after: list[int]) -> tuple[float, float]:
    """The share of the CPUs' time that was busy in between, and the share stolen."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    idle = spent[3] + spent[4]  # idle, iowait
    total = sum(spent) or 1
    return (total - idle) / total, spent[7] / total


def per_message(key: str, n: float, total: int) -> float:
    """A count per message, CPU seconds as ms per message."""
    return n * 1000 / total if key.endswith(" s") else n / total


def count(bots: list[Bot], directory: str) -> None:
    """Each bot run by bench/trip_counts.py writes its counts so far."""
    for bot in bots if directory else ():
        bot.process.send_signal(signal.SIGUSR2)


async def py_spy(bot: Bot, directory: str, name: str) -> asyncio.subprocess.Process | None:
    """A sampling profile of `bot` (every thread) until SIGINT, as collapsed stacks, in
    `directory` (none without one)."""
    if not directory:
        return None
    out = Path(directory) / name
    spy = await asyncio.create_subprocess_exec(
        *("py-spy", "record", "--pid", str(bot.process.pid), "--format", "raw", "--threads"),
        *("--nonblocking", "--rate", "250", "-o", str(out)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # py-spy attaches before the burst starts
    return spy


# --- Discord -------------------------------------------------------------------------------


async def run_discord(processes: int, args: argparse.Namespace, tmp: Path) -> Figures:
    figures = Figures("discord", processes)
    database = await _create_database() if args.store == "postgres" else None
    try:
        async with FakeAnthropic() as model, FakeDiscord(shard_count=2) as fake:
            model.responder = echo
            servers = [(fake.guild_id, fake.channel_id), fake.add_guild("Shard One", shard=1)]
            replies = DiscordReplies()
            fake._waiters.append(replies)  # type: ignore[arg-type]  # sees every REST call
            env = _child_env(
                ANTHROPIC_API_KEY="test-key",
                ANTHROPIC_BASE_URL=model.base_url,
                DISCORD_TOKEN=fake.token,
                QUITBOT_DISCORD_API_BASE=fake.api_base,
                QUITBOT_DISCORD_GATEWAY_URL=fake.gateway_url,
                QUITBOT_LOG_LEVEL="WARNING",
                QUITBOT_DISCORD_SHARD_COUNT="2",
            )
            shards = ["0,1"] if processes == 1 else [str(n % 2) for n in range(processes)]
            urls = database_urls(args.store, database, tmp, processes)
            envs = [
                env | {"QUITBOT_DISCORD_SHARD_IDS": ids, "QUITBOT_DATABASE_URL": url}
                for ids, url in zip(shards, urls, strict=True)
            ]
            async with bots(envs, tmp, args.counts, pin=args.pin) as running:
                async with asyncio.timeout(90):
                    while sorted(set(fake.ready_shards)) != [0, 1]:  # noqa: ASYNC110 - the fake has no event for it
                        await asyncio.sleep(0.1)
                await asyncio.sleep(3)  # every server's GUILD_CREATE handled

                async def post(thread: str, words: str) -> None:
                    await fake.post(int(thread), fake.alice, words)

                ids: list[str] = []
                for n in range(args.threads):
                    _, channel = servers[n % 2]
                    words = f"<@{fake.bot_id}> hello m-{n}-0"
                    opened = await fake.post(channel, fake.alice, words, mention_bot=True)
                    ids.append(str(opened["id"]))  # the thread it opens has the mention's id
                await replies.wait(len(ids), within=WAIT * 3)
                for n, thread in enumerate(ids):
                    await post(thread, f"warm m-{n}-1")
                await replies.wait(2 * len(ids), within=WAIT * 3)
                sent = await burst(running, database, replies, post, ids, args.burst, figures, args)
                answered = {
                    thread: TOKEN.findall(
                        " ".join(
                            m["content"]
                            for m in fake.messages.values()
                            if m["channel_id"] == thread and m["author"]["id"] == fake.bot["id"]
                        )
                    )
                    for thread in ids
                }
                check(sent, answered, figures)
    finally:
        if database is not None:
            await _drop_database(database)
    return figures


# --- Slack ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def forwarder(ports: list[int]) -> AsyncIterator[int]:
    """An HTTP forwarder on loopback sending each request to the next port in turn, as a
    round-robin load balancer would; the bot's answer goes back as it came."""
    turn = itertools.cycle(ports)
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-slack")}
        headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
        url = f"http://127.0.0.1:{next(turn)}{request.path_qs}"
        async with session.post(url, data=body, headers=headers) as answer:
            return web.Response(status=answer.status, body=await answer.read())

    app = web.Application()
    app.router.add_post("/slack/events", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()
        await session.close()


def slack_answers(fake: ObservedSlack) -> dict[str, list[str]]:
    """The tokens each thread's replies name, in order: posts, and streams put together."""
    streams: dict[str, str] = {}  # stream ts -> its thread
    texts: dict[str, list[str]] = defaultdict(list)
    answered: dict[str, list[str]] = defaultdict(list)
    for call in fake.calls:
        args, result = call.args, call.result
        if call.method == "chat.postMessage" and args.get("thread_ts"):
            said = f"{args.get('text', '')} {args.get('markdown_text', '')}"
            answered[str(args["thread_ts"])] += TOKEN.findall(said)
        elif call.method == "chat.startStream":
            streams[str(result.get("ts"))] = str(args.get("thread_ts"))
            texts[str(result.get("ts"))].append(str(args.get("markdown_text", "")))
        elif call.method in {"chat.appendStream", "chat.stopStream"}:
            chunks = args.get("chunks") or []
            pieces = [str(args.get("markdown_text", ""))]
            pieces += [str(c.get("text", "")) for c in chunks if isinstance(c, dict)]
            texts[str(args.get("ts"))] += pieces
            if call.method == "chat.stopStream":
                stream = str(args.get("ts"))
                answered[streams.get(stream, "")] += TOKEN.findall("".join(texts.pop(stream)))
    return answered


async def run_slack(processes: int, args: argparse.Namespace, tmp: Path) -> Figures:
    figures = Figures("slack", processes)
    database = await _create_database() if args.store == "postgres" else None
    try:
        async with FakeAnthropic() as model, ObservedSlack() as fake:
            model.responder = echo
            replies = Replies()
            fake.replies = replies
            ports = [_free_port() for _ in range(processes)]
            env = _child_env(
                ANTHROPIC_API_KEY="test-key",
                ANTHROPIC_BASE_URL=model.base_url,
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                QUITBOT_SLACK_MODE="http",
                QUITBOT_SLACK_API_URL=fake.base_url,
                QUITBOT_LOG_LEVEL="WARNING",
            )
            urls = database_urls(args.store, database, tmp, processes)
            settings = dict(setting.split("=", 1) for setting in args.setting)  # win over ours
            envs = [
                env | {"QUITBOT_SLACK_HTTP_PORT": str(port), "QUITBOT_DATABASE_URL": url} | settings
                for port, url in zip(ports, urls, strict=True)
            ]
            if args.bot == "minimal":  # the same as a bot sharing nothing: the control
                control = {"MINIMAL_TRANSPORT": "aiohttp", "BENCH_SLACK_API": fake.base_url}
                envs = [env | control | {"BENCH_SLACK_PORT": str(port)} for port in ports]
            async with (
                bots(envs, tmp, args.counts, args.bot == "minimal", args.pin) as running,
                forwarder(ports) as port,
                aiohttp.ClientSession() as session,
            ):
                for each in ports:
                    await _listening(each)
                url = f"http://127.0.0.1:{port}/slack/events"
                driver = SlackDriver(url, session, replies)
                ids = [f"1700000000.{n:06d}" for n in range(args.threads)]
                for n, thread in enumerate(ids):  # one at a time: each opens its thread
                    await driver.send(thread, f"hello m-{n}-0")
                await replies.wait(len(ids), within=WAIT * 3)
                for n, thread in enumerate(ids):
                    await driver.send(thread, f"warm m-{n}-1")
                await replies.wait(2 * len(ids), within=WAIT * 3)
                gate = asyncio.Semaphore(args.in_flight)  # 16, as Slack itself would
                pending: list[asyncio.Task[None]] = []

                async def one(thread: str, words: str) -> None:
                    async with gate:
                        await driver.send(thread, words)

                async def send(thread: str, words: str) -> None:
                    # In order per thread, as Slack sends a thread's events: the next one
                    # only once the previous one is acknowledged (at most 16 at once).
                    previous = last.get(thread)
                    if previous is not None:
                        await previous
                    task = asyncio.ensure_future(one(thread, words))
                    last[thread] = task
                    pending.append(task)

                last: dict[str, asyncio.Task[None]] = {}
                sent = await burst(running, database, replies, send, ids, args.burst, figures, args)
                await asyncio.gather(*pending)
                check(sent, slack_answers(fake), figures)
    finally:
        if database is not None:
            await _drop_database(database)
    return figures


# --- the report ----------------------------------------------------------------------------


def logs_of(tmp: Path) -> list[str]:
    """The end of each bot's log, to show why a run failed."""
    return [path.read_text(errors="replace")[-1500:] for path in tmp.glob("*.log")]


def show(results: list[Figures]) -> None:
    print(
        f"\n{'platform':<10}{'processes':>10}{'burst/s':>9}{'bot CPU ms/msg':>15}"
        f"{'per process':>18}{'server ms/msg':>14}{'missing':>9}{'twice':>7}{'out of order':>13}"
        f"{'bench ms/msg':>13}{'busy':>6}{'steal':>6}"
    )
    for f in results:
        each = " + ".join(f"{c:.2f}" for c in f.per_process)
        print(
            f"{f.platform:<10}{f.processes:>10}{f.rate:>9.0f}{f.cpu_ms:>15.2f}{each:>18}"
            f"{f.server_ms:>14.2f}{f.missing:>9}{f.duplicated:>7}{f.out_of_order:>13}"
            f"{f.bench_ms:>13.2f}{f.busy:>6.0%}{f.steal:>6.0%}"
        )
        for example in f.examples:
            print(f"    {example}")
        shown = {key for counts in f.counts for key, n in counts.items() if n or key in ALWAYS}
        for key in sorted(shown):
            each = " + ".join(f"{counts.get(key, 0):.3f}" for counts in f.counts)
            print(f"    {key:<58}{sum(c.get(key, 0) for c in f.counts):>8.3f}  ({each}) a message")
    groups: dict[tuple[str, int], list[Figures]] = defaultdict(list)
    for f in results:
        groups[(f.platform, f.processes)].append(f)
    for (platform, processes), runs in groups.items():
        alone = groups.get((platform, 1))
        if processes == 1 or not alone:
            continue
        cpu = statistics.median(f.cpu_ms for f in runs)
        one = statistics.median(f.cpu_ms for f in alone)
        total = cpu + statistics.median(f.server_ms for f in runs)
        print(
            f"{platform}: {processes} processes cost {cpu / one:.2f}x one process's bot CPU per "
            f"message (medians); bot + server {total:.2f} ms/msg: about {1000 / total:.0f} "
            "messages/s per added core, where the model is not the limit"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", choices=["discord", "slack", "both"], default="both")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="messages a second, sent on time whatever the bots do (open loop): one process "
        "and several compared at the same load; 0 (the default) sends as fast as they take them",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=16,
        help="Slack: requests in flight at most (8 gives one process the load each of two has)",
    )
    parser.add_argument(
        "--bot",
        choices=["quitbot", "minimal"],
        default="quitbot",
        help="Slack: minimal runs bench/minimal_slack.py, a bot sharing nothing (no database), "
        "as the control: what a second process costs on this machine by itself",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="QUITBOT_NAME=VALUE",
        help="Slack: a setting for every bot process (repeatable), e.g. "
        "QUITBOT_DATABASE_POOL_SIZE=2",
    )
    parser.add_argument(
        "--store",
        choices=["postgres", "sqlite", "apart"],
        default="postgres",
        help="the processes share one PostgreSQL database (the default) or one SQLite file, "
        "or each has a SQLite file of its own (apart: nothing shared, so what a second process "
        "costs by itself; a thread's messages then reach stores that do not see each other, "
        "and the columns of faults mean nothing)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="each bot on a CPU of its own (taskset), see bots()"
    )
    parser.add_argument(
        "--py-spy", default="", help="directory for py-spy profiles of each bot's burst"
    )
    parser.add_argument(
        "--counts",
        default="",
        help="directory for bench/trip_counts.py's counts of each bot's burst (CPU inflated)",
    )
    args = parser.parse_args()
    platforms = ["discord", "slack"] if args.platform == "both" else [args.platform]
    if args.bot == "minimal" and platforms != ["slack"]:
        parser.error("--bot minimal is for --platform slack")
    if args.bot == "minimal" and args.store != "postgres":
        parser.error("--store is quitbot's: the minimal bot has none")
    if args.bot == "minimal" and args.counts:
        parser.error("--counts counts quitbot's store: the minimal bot has none")
    for setting in args.setting:
        if not setting.startswith("QUITBOT_") or "=" not in setting:
            parser.error(f"--setting {setting!r}: give it as QUITBOT_NAME=VALUE")
    if args.rate < 0:
        parser.error("--rate is messages a second: 0 (as fast as they go) or more")
    runners = {"discord": run_discord, "slack": run_slack}
    results: list[Figures] = []
    for _ in range(args.runs):
        for platform in platforms:
            for processes in (1, args.processes):
                with tempfile.TemporaryDirectory() as directory:
                    tmp = Path(directory)
                    try:
                        results.append(await runners[platform](processes, args, tmp))
                    except Exception as exc:
                        print(f"{platform} x{processes} failed: {exc!r}", file=sys.stderr)
                        print(*logs_of(tmp), file=sys.stderr)
                        continue
                show(results[-1:])
    print("\n=== all runs ===")
    show(results)


if __name__ == "__main__":
    asyncio.run(main())
