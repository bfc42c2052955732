"""Persistence behind `bot.ports.Store`: SQLite by default, PostgreSQL for several processes."""

from __future__ import annotations

from bot.ports import NO_OUTBOX, Outbox, Store
from bot.settings import DatabaseTarget
from bot.store.migrations import SchemaTooNew
from bot.store.sqlite import SqliteStore, StoreError, StoreUnreachable, UnknownConversation

__all__ = [
    "SchemaTooNew",
    "SqliteStore",
    "StoreError",
    "StoreUnreachable",
    "UnknownConversation",
    "open_store",
]


async def open_store(target: DatabaseTarget, *, outbox: Outbox = NO_OUTBOX) -> Store:
    """Open the database `target` names, creating and migrating it as needed; events of
    the `outbox`'s kinds are queued for delivery as they are recorded.

    Raises StoreError when it cannot be opened and SchemaTooNew when a newer quitbot has
    migrated it. The caller closes the store.
    """
    if target.backend == "sqlite":
        return await SqliteStore.open(target.path, outbox=outbox)
    if target.backend == "postgresql":
        try:
            # Imported here: only PostgreSQL deployments install (and pay to import) it.
            from bot.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL needs the asyncpg driver: pip install 'quitbot[postgres]'"
            ) from exc
        return await PostgresStore.open(target.url, pool_size=target.pool_size, outbox=outbox)
    raise StoreError(f"unsupported database backend {target.backend!r}")
