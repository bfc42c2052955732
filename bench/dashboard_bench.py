"""The dashboard's pages on a big database: p50 and p95 of each page, over HTTP on loopback.

    .venv/bin/python bench/dashboard_bench.py [--conversations 100000] [--messages 10]
        [--database postgresql://...] [--seeded] [--samples 40]

Seeds the database (a temporary SQLite file unless --database names an empty one) through
the store: conversations in one server with --messages messages each, one in ten ended by
the ladder and one in fifty called a mistake, spread over 60 days; then serves the
dashboard in this process and asks for each page as a signed-in moderator. Figures, not
pass/fail; the issue's target is p95 under 150 ms at 100,000 conversations.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.app import UnconfiguredModel, build_runtime
from bot.conversation import Actor, AuditEvent, ConversationKey, EndReason, LadderState
from bot.dashboard.app import SESSION_COOKIE
from bot.dashboard.serve import build_app, dashboard_for
from bot.dashboard.sessions import Moderator
from bot.health import serving
from bot.ports import NewMessage
from bot.settings import DashboardSettings, DiscordSettings, Settings, SlackSettings

GUILD = "100"
ENDED = LadderState(
    3, True, ended=True, ended_by=Actor.MODEL, ended_reason=EndReason.PERSISTENT_ABUSE
)
BATCH = 200  # creates in flight at once: the SQLite store commits them as a group


def settings_for(url: str) -> Settings:
    discord = DiscordSettings(client_id="1", client_secret=SecretStr("x"))
    dashboard = DashboardSettings(url="http://127.0.0.1", secret=SecretStr("s" * 40))
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        discord=discord,
        slack=SlackSettings.model_construct(),
        dashboard=dashboard,
    )


async def seed_one(store: Any, i: int, messages: int, now: datetime) -> str:
    at = now - timedelta(minutes=(i * 877) % (60 * 24 * 60))
    history = [
        NewMessage(
            "user" if m % 2 == 0 else "assistant",
            f"message {m} of {i} " * 8,
            [{"role": "user" if m % 2 == 0 else "assistant", "content": f"m{m}"}],
            at,
            user_id=f"u{i % 500}" if m % 2 == 0 else "",
        )
        for m in range(messages)
    ]
    events = [AuditEvent("redirect", at, Actor.MODEL, {"kind": "abuse"})] if i % 3 == 0 else []
    key = ConversationKey("discord", str(10_000_000 + i))
    created = await store.create(
        key, f"u{i % 500}", at, history=history, events=events, community=GUILD
    )
    if i % 10 == 0:
        end = AuditEvent("end", at, Actor.MODEL, {"reason": "persistent_abuse"})
        await store.commit_turn(created.id, ENDED, at, events=[end])
    if i % 50 == 0:
        said = AuditEvent("feedback", at, Actor.USER, {"user_id": "u", "text": "mistake"})
        await store.add_feedback(created.id, f"u{i % 500}", "mistake", at, (said,))
    return str(created.id)


async def seed(store: Any, count: int, messages: int) -> str:
    now, some = datetime.now(UTC), ""
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        ids = await asyncio.gather(
            *(seed_one(store, i, messages, now) for i in range(first, min(count, first + BATCH)))
        )
        some = some or ids[0]
        if first % 10_000 == 0:
            print(
                f"  seeded {first + len(ids)} in {time.perf_counter() - started:.0f} s", flush=True
            )
    return some


async def measure(http: aiohttp.ClientSession, url: str, samples: int) -> tuple[float, float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        async with http.get(url) as response:
            await response.read()
            assert response.status == 200, (url, response.status)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000, times[min(len(times) - 1, int(len(times) * 0.95))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--database")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument(
        "--seeded", action="store_true", help="--database was seeded by an earlier run"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite:///{Path(folder) / 'bench.db'}"
        settings = settings_for(url)
        async with build_runtime(settings, model=UnconfiguredModel()) as runtime:
            if args.seeded:
                found = await runtime.engine.conversations(
                    "discord", GUILD, state=None, limit=1, offset=0
                )
                one = found[0].id
            else:
                print(f"seeding {args.conversations} conversations x {args.messages} messages")
                one = await seed(runtime.store, args.conversations, args.messages)
            async with dashboard_for(settings, runtime.engine) as dashboard:
                cookie, _ = dashboard.sessions.start(Moderator("discord", "1", "m", {GUILD: "s"}))
                async with serving(build_app(dashboard), "127.0.0.1", 0) as port:
                    base = f"http://127.0.0.1:{port}/c/discord/{GUILD}"
                    pages = {
                        "overview": "/overview",
                        "queue": "/queue",
                        "conversations": "/conversations",
                        "conversations page 100": "/conversations?page=100",
                        "ended, by reason": "/conversations?state=ended&reason=persistent_abuse",
                        "started by one person": "/conversations?user=u7",
                        "transcript": f"/conversations/{one}",
                        "settings": "/settings",
                    }
                    jar = aiohttp.CookieJar(unsafe=True)
                    async with aiohttp.ClientSession(cookie_jar=jar) as http:
                        http.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
                        print(f"{'page':<24} {'p50 ms':>8} {'p95 ms':>8}")
                        for name, path in pages.items():
                            p50, p95 = await measure(http, base + path, args.samples)
                            print(f"{name:<24} {p50:>8.1f} {p95:>8.1f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
