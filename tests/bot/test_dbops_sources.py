"""`quitbot db copy --replace` never empties a target because `--from` was mistyped: a
source that is not a quitbot database is refused before anything is created or written,
an empty one replaces nothing unless told twice, and a copy that fails midway leaves the
target row for row as it was. Each case in both directions (into SQLite and into
PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot import dbops
from bot.conversation import ConversationKey
from bot.dbops import TABLES, CopyError, copy
from bot.settings import parse_database_url
from tests import postgres
from tests.bot.storekit import T0
from tests.bot.test_dbops import fill, opened
from tests.processes import clean_env, quitbot

Rows = dict[str, list[tuple[Any, ...]]]


async def rows_of(url: str) -> Rows:
    """Every row of every table, in a fixed order: the target as it is."""
    side = await dbops._open_side(parse_database_url(url))
    try:
        seen: Rows = {}
        async with side.snapshot():
            for table in TABLES:
                columns = await side.columns(table)
                seen[table] = [row async for chunk in side.rows(table, columns) for row in chunk]
        return seen
    finally:
        await side.close()


async def copy_urls(source: str, target: str, **options: bool) -> dbops.CopyReport:
    return await copy(parse_database_url(source), parse_database_url(target), **options)


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest_asyncio.fixture
async def filled_target(target_url: str) -> AsyncIterator[tuple[str, Rows]]:
    store = await opened(target_url)
    try:
        await fill(store)
    finally:
        await store.close()
    before = await rows_of(target_url)
    assert len(before["conversations"]) == 3
    yield target_url, before


@pytest_asyncio.fixture
async def spare_postgres() -> AsyncIterator[str]:
    """A PostgreSQL database of its own, with nothing in it (not even quitbot's tables)."""
    url = await postgres.create_database("quitbot_source")
    try:
        yield url
    finally:
        await postgres.drop_database(url)


async def test_a_missing_sqlite_source_is_refused_and_not_created(
    filled_target: tuple[str, Rows], tmp_path: Path
) -> None:
    target, before = filled_target
    missing = tmp_path / "var" / "lib" / "quitbot" / "misspelt.db"
    with pytest.raises(CopyError, match=f"there is no database at {missing}; check --from"):
        await copy(
            parse_database_url(f"sqlite:///{missing}"), parse_database_url(target), replace=True
        )
    assert not missing.exists() and not missing.parent.exists()
    assert await rows_of(target) == before


async def test_the_relative_path_slip_is_refused_and_leaves_no_stray_file(
    filled_target: tuple[str, Rows], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite:///var/lib/...` (three slashes) is relative to the working directory."""
    target, before = filled_target
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(CopyError, match=r"there is no database at .*elsewhere/var/lib/quitbot"):
        await copy(
            parse_database_url("sqlite:///var/lib/quitbot/quitbot.db"),
            parse_database_url(target),
            replace=True,
        )
    assert list(work.iterdir()) == []
    assert await rows_of(target) == before


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        (b"", "holds no quitbot tables"),
        (b"QUITBOT_DATABASE_URL=sqlite:///quitbot.db\n" * 200, "not a database quitbot can read"),
    ],
    ids=["empty-file", "not-sqlite"],
)
async def test_a_file_that_is_not_a_quitbot_database_is_refused_and_left_alone(
    filled_target: tuple[str, Rows], tmp_path: Path, content: bytes, refusal: str
) -> None:
    target, before = filled_target
    source = tmp_path / "source.db"
    source.write_bytes(content)
    with pytest.raises(CopyError, match=refusal):
        await copy(
            parse_database_url(f"sqlite:///{source}"), parse_database_url(target), replace=True
        )
    assert source.read_bytes() == content
    assert await rows_of(target) == before


async def test_a_sqlite_database_of_something_else_is_refused_and_not_migrated(
    filled_target: tuple[str, Rows], tmp_path: Path
) -> None:
    target, before = filled_target
    source = tmp_path / "other-app.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(CopyError, match="holds no quitbot tables"):
        await copy(
            parse_database_url(f"sqlite:///{source}"), parse_database_url(target), replace=True
        )
    with sqlite3.connect(source) as db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("notes",)]
    assert await rows_of(target) == before


async def test_a_missing_postgres_source_is_refused(filled_target: tuple[str, Rows]) -> None:
    target, before = filled_target
    missing = postgres.with_database(postgres.server_url(), "quitbot_misspelt_no_such_db")
    with pytest.raises(CopyError, match=r"there is no database at .*quitbot_misspelt_no_such_db"):
        await copy_urls(missing, target, replace=True)
    assert await rows_of(target) == before


async def test_a_postgres_database_without_quitbot_is_refused_and_not_migrated(
    filled_target: tuple[str, Rows], spare_postgres: str
) -> None:
    target, before = filled_target
    with pytest.raises(CopyError, match="holds no quitbot tables"):
        await copy_urls(spare_postgres, target, replace=True)
    assert await _postgres_tables(spare_postgres) == []
    assert await rows_of(target) == before


async def _postgres_tables(url: str) -> list[str]:
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        rows = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row[0] for row in rows]
    finally:
        await db.close()


@pytest.mark.parametrize("source_kind", ["sqlite", "postgresql"])
async def test_an_empty_source_replaces_nothing_unless_told_twice(
    filled_target: tuple[str, Rows], tmp_path: Path, spare_postgres: str, source_kind: str
) -> None:
    target, before = filled_target
    source = f"sqlite:///{tmp_path / 'empty.db'}" if source_kind == "sqlite" else spare_postgres
    await (await opened(source)).close()  # a quitbot database, with no conversations
    source_at, target_at = parse_database_url(source), parse_database_url(target)
    lost = "3 conversations, 4 messages, 3 events, 2 outbox, 4 processed_events"
    with pytest.raises(CopyError, match=f"holds no conversations.*{lost}.*--allow-empty-source"):
        await copy(source_at, target_at, replace=True)
    assert await rows_of(target) == before
    report = await copy(source_at, target_at, replace=True, allow_empty_source=True)
    assert set(report.counts.values()) == {0}
    assert all(rows == [] for rows in (await rows_of(target)).values())


@pytest.mark.parametrize("failing_table", ["messages", "inbox"])
async def test_a_copy_that_fails_midway_leaves_the_target_as_it_was(
    filled_target: tuple[str, Rows],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing_table: str,
) -> None:
    """The old rows are deleted in the copy's own transaction: until it commits, they stay."""
    target, before = filled_target
    into_sqlite = target.startswith("sqlite")
    source = await postgres.create_database("quitbot_source") if into_sqlite else None
    source_url = source or f"sqlite:///{tmp_path / 'source.db'}"
    try:
        store = await opened(source_url)
        try:
            await fill(store)
            await store.create(ConversationKey("discord", "one-more"), "u9", T0)
        finally:
            await store.close()
        writer = dbops._SqliteSide if into_sqlite else dbops._PostgresSide
        monkeypatch.setattr(writer, "insert", _failing_on(failing_table, writer.insert))
        with pytest.raises(OSError, match="the disk is full"):
            await copy_urls(source_url, target, replace=True)
        assert await rows_of(target) == before
    finally:
        if source is not None:
            await postgres.drop_database(source)


def _failing_on(
    table: str, insert: Callable[..., Awaitable[None]]
) -> Callable[..., Awaitable[None]]:
    async def failing(self: Any, into: str, columns: Any, rows: Any) -> None:
        await insert(self, into, columns, rows)
        if into == table:
            raise OSError("the disk is full")

    return failing


async def test_the_cli_refuses_a_mistyped_source_with_exit_1(
    filled_target: tuple[str, Rows], tmp_path: Path
) -> None:
    target, before = filled_target
    env = clean_env(tmp_path, None)
    code, out, err = await quitbot(
        tmp_path,
        env,
        "db",
        "copy",
        "--from",
        "sqlite:///var/lib/quitbot/misspelt.db",
        "--to",
        target,
        "--replace",
    )
    assert (code, out) == (1, "")
    assert f"there is no database at {tmp_path}/var/lib/quitbot/misspelt.db" in err
    assert not (tmp_path / "var").exists()
    assert await rows_of(target) == before
