"""A throw-away PostgreSQL database per test run, on the server this machine runs.

QUITBOT_TEST_POSTGRES_URL names the server (default: postgresql://postgres@127.0.0.1:5432/
postgres, trust auth). With no server reachable the PostgreSQL tests fail, saying how to
start one; QUITBOT_TEST_POSTGRES=0 skips them instead, for a developer without PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

T = TypeVar("T")

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

HOW_TO_START = (
    "the PostgreSQL tests need a server at {url} ({error}). Start one with\n"
    "    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "(or `apt-get install postgresql` first), point QUITBOT_TEST_POSTGRES_URL at another, "
    "or set QUITBOT_TEST_POSTGRES=0 to skip them"
)


def server_url() -> str:
    return os.environ.get("QUITBOT_TEST_POSTGRES_URL", DEFAULT_SERVER)


def enabled() -> bool:
    return os.environ.get("QUITBOT_TEST_POSTGRES", "1") != "0"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(prefix: str = "quitbot_test") -> str:
    """A new, empty database with a random name; its URL. Fails the test if no server."""
    url = server_url()
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        pytest.fail(HOW_TO_START.format(url=url, error=exc or type(exc).__name__), pytrace=False)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(url, name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def empty(url: str) -> None:
    """Remove every row (and restart the numbering) but keep the schema."""
    db = await asyncpg.connect(url)
    try:
        tables = await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename <> 'schema_version'"
        )
        if tables:
            names = ", ".join(f'"{row[0]}"' for row in tables)
            await db.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await db.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own, on another thread: session-wide set-up may
    start while a test's loop is running on this one."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coro).result()
