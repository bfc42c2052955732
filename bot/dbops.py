"""The operator's database commands: `quitbot db upgrade | copy | backup`.

`copy` moves a deployment between SQLite and PostgreSQL (either way, or between two of one
kind) row for row: conversations keep their ids and order, and every message, audit event,
feedback, processed-event claim, blocked-notice time and message not yet answered
comes along, so a platform retry
after the move is still recognised. Counts are compared before the copy commits.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bot.settings import DatabaseTarget, DatabaseUrlError, Settings, parse_database_url
from bot.store import StoreError, open_store

# In the order a copy writes them: each table's references point at rows already copied
# (a branch's source comes before it, as `n` orders them).
TABLES = (
    "conversations",
    "messages",
    "events",
    # Copied: an event recorded but not yet delivered to a webhook is delivered from the new
    # database (nothing recorded is lost by a move); its rows name events by their number,
    # which a copy keeps.
    "outbox",
    "processed_events",
    "blocked_notices",
    "feedback",
    "inbox",
    "communities",
    "participants",
)
_ORDER = {
    "conversations": "n",
    "messages": "conversation_id, seq",
    "events": "n",
    "outbox": "event_n, target",
    "processed_events": "platform, event_id",
    "blocked_notices": "conversation_id, user_id",
    "feedback": "n",
    "inbox": "n",
    "communities": "platform, community",
    "participants": "conversation_id, user_id",
}
# Columns whose SQLite form (text, integer) differs from PostgreSQL's (timestamptz, boolean).
_TIMES = {"created_at", "updated_at", "ended_at", "at", "shut_out_at", "due_at"}
_FLAGS = {
    "warned",
    "crisis",
    "ended",
    "end_proposed",
    "in_context",
    "shut_out",
    "reply_complete",
}
# PostgreSQL numbers these itself (GENERATED ALWAYS); a copy keeps the source's numbers.
_IDENTITY_TABLES = {"conversations", "events", "feedback", "inbox"}
_CHUNK = 1000


class CopyError(RuntimeError):
    """The copy was refused or did not add up; nothing was written."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    """How many rows of each table were copied."""

    counts: dict[str, int]


async def upgrade(target: DatabaseTarget) -> int:
    """Apply every pending migration (opening the store does); the schema version reached."""
    store = await open_store(target)
    await store.close()
    side = await _open_side(target)
    try:
        return await side.version()
    finally:
        await side.close()


async def copy(
    source: DatabaseTarget,
    target: DatabaseTarget,
    *,
    replace: bool,
    allow_empty_source: bool = False,
) -> CopyReport:
    """Copy every row of `source` into `target` in one transaction of the target.

    The source must already be a quitbot database: nothing is created, migrated or written
    where a mistyped `--from` points. Both are then migrated. A target that holds any
    conversation is refused unless `replace`, which empties it first in the same
    transaction, so the old rows stay until the copy commits; a source with no
    conversations replaces one only with `allow_empty_source` too. Raises CopyError, with
    nothing written, when refused or when the target's counts do not match the source's.
    """
    if source == target:
        raise CopyError("--from and --to name the same database")
    await _require_quitbot_database(source)
    for end in (source, target):
        store = await open_store(end)
        await store.close()
    reader = await _open_side(source)
    try:
        writer = await _open_side(target)
        try:
            return await _copy(reader, writer, replace=replace, allow_empty=allow_empty_source)
        finally:
            await writer.close()
    finally:
        await reader.close()


async def _copy(reader: _Side, writer: _Side, *, replace: bool, allow_empty: bool) -> CopyReport:
    counts: dict[str, int] = {}
    async with reader.snapshot(), writer.transaction():
        present = await writer.count("conversations")
        if present and not replace:
            raise CopyError(
                f"the target already holds {present} conversations; copy into an empty "
                "database, or pass --replace to empty it first"
            )
        if present and not allow_empty and not await reader.count("conversations"):
            lost = ", ".join([f"{await writer.count(t)} {t}" for t in TABLES])
            raise CopyError(
                f"the source holds no conversations: --replace would delete the target's "
                f"rows ({lost}) and put nothing in their place. Check --from; if an empty "
                "database is really what you want, pass --allow-empty-source as well"
            )
        if replace:
            await writer.clear(TABLES)
        for table in TABLES:
            wanted = set(await writer.columns(table))
            columns = [c for c in await reader.columns(table) if c in wanted]
            async for chunk in reader.rows(table, columns):
                await writer.insert(table, columns, chunk)
            counts[table] = await reader.count(table)
            copied = await writer.count(table)
            if copied != counts[table]:
                raise CopyError(
                    f"{table}: {counts[table]} rows in the source but {copied} in the target; "
                    "nothing was written"
                )
        await writer.renumber(_IDENTITY_TABLES)
    return CopyReport(counts)


def backup_sqlite(path: str, destination: Path) -> int:
    """Copy a live SQLite database consistently with SQLite's online backup API.

    Writers may go on meanwhile (the backup restarts its pages as needed); the copy is
    owner-only. Returns the conversations in the copy.
    """
    if not Path(path).exists():
        raise CopyError(f"there is no database at {path}")
    try:
        # Created owner-only before SQLite opens it: conversations are private.
        os.close(os.open(destination, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        raise CopyError(f"{destination} already exists; choose a new file") from None
    except OSError as exc:  # a folder that is not there, or not writable
        raise CopyError(f"cannot create {destination}: {exc.strerror}") from None
    source = sqlite3.connect(path)
    try:
        copy_db = sqlite3.connect(destination)
        try:
            source.backup(copy_db)
            return int(copy_db.execute("SELECT COUNT(*) FROM conversations").fetchall()[0][0])
        finally:
            copy_db.close()
    finally:
        source.close()


def pg_dump_command(target: DatabaseTarget, destination: Path) -> str:
    """The pg_dump command that backs up a PostgreSQL database (custom format)."""
    return f"pg_dump --format=custom --file={_quote(str(destination))} {_quote(target.shown)}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# --- the two kinds of database, as a copy sees them ----------------------------------------


class _Side(Protocol):
    def snapshot(self) -> Any: ...

    def transaction(self) -> Any: ...

    async def version(self) -> int: ...

    async def columns(self, table: str) -> list[str]: ...

    async def count(self, table: str) -> int: ...

    def rows(self, table: str, columns: Sequence[str]) -> AsyncIterator[list[tuple[Any, ...]]]: ...

    async def insert(
        self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None: ...

    async def clear(self, tables: Sequence[str]) -> None: ...

    async def renumber(self, tables: set[str]) -> None: ...

    async def close(self) -> None: ...


async def _require_quitbot_database(source: DatabaseTarget) -> None:
    """Refuse a source that is not a quitbot database, without creating or changing it
    (opening a store there would create an empty one, and copy that over the target)."""
    if source.backend == "sqlite":
        found = _sqlite_has_schema(source.path)
    else:
        found = await _postgres_has_schema(source)
    if not found:
        raise CopyError(f"{source.shown} holds no quitbot tables; check --from")


def _sqlite_has_schema(path_text: str) -> bool:
    if path_text == ":memory:":
        raise CopyError("an in-memory database cannot be copied from or to")
    path = Path(path_text).resolve()
    if not path.is_file():
        raise CopyError(f"there is no database at {path}; check --from")
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            return bool(db.execute(_HAS_SCHEMA_SQLITE).fetchall())
    except sqlite3.Error as exc:
        raise CopyError(f"{path} is not a database quitbot can read: {exc}") from exc


async def _postgres_has_schema(source: DatabaseTarget) -> bool:
    import asyncpg

    try:
        db = await asyncpg.connect(source.url)
    except asyncpg.InvalidCatalogNameError:
        raise CopyError(f"there is no database at {source.shown}; check --from") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise CopyError(f"cannot open {source.shown}: {exc}") from exc
    try:
        return await db.fetchval("SELECT to_regclass('schema_version')") is not None
    finally:
        await db.close()


_HAS_SCHEMA_SQLITE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"


async def _open_side(target: DatabaseTarget) -> _Side:
    if target.backend == "sqlite":
        if target.path == ":memory:":
            raise CopyError("an in-memory database cannot be copied from or to")
        return _SqliteSide(target.path)
    return await _PostgresSide.connect(target.url)


class _SqliteSide:
    """SQLite through sqlite3 directly: a one-shot operator command has no one else to
    serve on its event loop, so blocking calls cost nothing here."""

    def __init__(self, path: str) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA busy_timeout = 5000")

    def snapshot(self) -> Any:
        return self._in_transaction("BEGIN")  # a read transaction sees one snapshot in WAL

    def transaction(self) -> Any:
        return self._in_transaction("BEGIN IMMEDIATE")

    def _in_transaction(self, begin: str) -> Any:
        db = self._db

        @asynccontextmanager
        async def scope() -> AsyncIterator[None]:
            db.execute(begin)
            try:
                yield
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        return scope()

    async def version(self) -> int:
        return int(self._db.execute("SELECT MAX(version) FROM schema_version").fetchall()[0][0])

    async def columns(self, table: str) -> list[str]:
        return [row[1] for row in self._db.execute(f"PRAGMA table_info({table})").fetchall()]

    async def count(self, table: str) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchall()[0][0])

    async def rows(
        self, table: str, columns: Sequence[str]
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        convert = [_from_sqlite(column) for column in columns]
        cursor = self._db.execute(
            f"SELECT {', '.join(columns)} FROM {table} ORDER BY {_ORDER[table]}"
        )
        while chunk := cursor.fetchmany(_CHUNK):
            yield [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in chunk]

    async def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        convert = [_to_sqlite(column) for column in columns]
        marks = ", ".join("?" for _ in columns)
        self._db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows],
        )

    async def clear(self, tables: Sequence[str]) -> None:
        for table in reversed(tables):
            self._db.execute(f"DELETE FROM {table}")

    async def renumber(self, tables: set[str]) -> None:
        pass  # INTEGER PRIMARY KEY goes on from the largest number by itself

    async def close(self) -> None:
        self._db.close()


class _PostgresSide:
    def __init__(self, db: Any) -> None:
        self._db = db

    @classmethod
    async def connect(cls, url: str) -> _PostgresSide:
        import asyncpg

        return cls(await asyncpg.connect(url))

    def snapshot(self) -> Any:
        return self._db.transaction(isolation="repeatable_read", readonly=True)

    def transaction(self) -> Any:
        return self._db.transaction()

    async def version(self) -> int:
        return int(await self._db.fetchval("SELECT MAX(version) FROM schema_version"))

    async def columns(self, table: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        return [row[0] for row in rows]

    async def count(self, table: str) -> int:
        return int(await self._db.fetchval(f"SELECT COUNT(*) FROM {table}"))

    async def rows(
        self, table: str, columns: Sequence[str]
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {_ORDER[table]}"
        chunk: list[tuple[Any, ...]] = []
        async for row in self._db.cursor(sql, prefetch=_CHUNK):
            chunk.append(tuple(row))
            if len(chunk) == _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    async def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
        overriding = " OVERRIDING SYSTEM VALUE" if table in _IDENTITY_TABLES else ""
        await self._db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}){overriding} VALUES ({marks})", rows
        )

    async def clear(self, tables: Sequence[str]) -> None:
        await self._db.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")

    async def renumber(self, tables: set[str]) -> None:
        # SQLite has no last_seq column: number on from each conversation's last message.
        await self._db.execute(
            "UPDATE conversations c SET last_seq = COALESCE("
            "(SELECT MAX(seq) FROM messages m WHERE m.conversation_id = c.id), 0)"
        )
        for table in sorted(tables):
            await self._db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'n'), "
                f"COALESCE((SELECT MAX(n) FROM {table}), 0) + 1, false)"
            )

    async def close(self) -> None:
        await self._db.close()


def _same(value: Any) -> Any:
    return value


def _sqlite_time(value: Any) -> Any:
    if value is None:
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def _sqlite_flag(value: Any) -> Any:
    return None if value is None else bool(value)


def _time_text(value: Any) -> Any:
    # The SQLite store's own form: fixed-width UTC, so text order is time order.
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def _from_sqlite(column: str) -> Any:
    if column in _TIMES:
        return _sqlite_time
    if column in _FLAGS:
        return _sqlite_flag
    return _same


def _to_sqlite(column: str) -> Any:
    return _time_text if column in _TIMES else _same


async def command(args: argparse.Namespace, settings: Settings) -> int:
    """`quitbot db OPERATION`; returns the exit code."""
    try:
        if args.operation == "upgrade":
            version = await upgrade(settings.database)
            print(f"{settings.database.shown} is at schema version {version}")
        elif args.operation == "copy":
            try:
                source, target = parse_database_url(args.source), parse_database_url(args.target)
            except DatabaseUrlError as exc:
                print(f"quitbot: {exc}", file=sys.stderr)
                return 2
            report = await copy(
                source,
                target,
                replace=args.replace,
                allow_empty_source=args.allow_empty_source,
            )
            copied = ", ".join(f"{count} {table}" for table, count in report.counts.items())
            print(f"copied {source.shown} to {target.shown}: {copied}; the counts match")
        elif args.operation == "backup":
            target = settings.database
            destination = Path(args.path)
            if target.backend == "postgresql":
                print("PostgreSQL is backed up with its own tool; run:")
                print(f"  {pg_dump_command(target, destination)}")
                print("(with the password in PGPASSWORD or ~/.pgpass)")
                return 0
            count = backup_sqlite(target.path, destination)
            print(f"backed up {target.shown} to {destination}: {count} conversations")
    except CopyError as exc:
        print(f"quitbot: {exc}", file=sys.stderr)
        return 1
    return 0
