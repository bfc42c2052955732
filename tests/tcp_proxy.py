"""A TCP proxy on 127.0.0.1 that a test can cut and restore: a database outage without
stopping a server that other tests (and other people) share."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `host`:`target`. `cut()` drops every connection and stops
    listening, so connecting is refused, as when the server is down; `restore()` listens on
    the same port again."""

    def __init__(self, host: str, target: int) -> None:
        self._host, self._target = host, target
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._open = False
        self.port = 0

    async def __aenter__(self) -> TcpProxy:
        await self.restore()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cut()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._open = True

    async def cut(self) -> None:
        self._open = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._links:
            writer.transport.abort()  # a reset, not a goodbye: as a vanished server
        self._links.clear()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await asyncio.open_connection(self._host, self._target)
        except OSError:
            writer.transport.abort()
            return
        if not self._open:  # accepted just before the cut: it must not outlive it
            writer.transport.abort()
            far_writer.transport.abort()
            return
        self._links |= {writer, far_writer}
        for source, sink in ((reader, far_writer), (far_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()
