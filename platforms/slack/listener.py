"""Slack's HTTP endpoint served from a thread of its own, with an event loop of its own.

quitbot acknowledges a person's message only once it is kept (issue 9). On the loop that
runs the conversations' turns, that receipt's round trip took four or five turns of a loop
full of them, and in a burst Slack's acknowledgements waited on replies being streamed
(bench/README.md, issue 22). Here a request waits for the signature check, the store's
commit and a switch of threads. People's messages are kept here and handed to the inbox's
lines on the turns' loop; everything else goes on to Bolt, on that loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from platforms.slack.edge import HttpEdge, Messages

# The longest a thread waiting for the GIL waits before the running one is asked to let go
# (CPython's default is 5 ms). A message's acknowledgement needs the GIL back on the
# listener's thread two or three times (the door, the store's outcome, the answer) while the
# turns' loop runs Python: in a burst each wait could be a whole interval. At 5 ms the burst's
# ack p99 was over 50 ms in 4 rounds of 6 (43-60); at 1 ms 36-48 in all 6, the burst rate
# and the CPU a message unchanged (bench/README.md, issue 22, fourth round). On a slower
# machine 1 ms was over 50 in 10 rounds of 15, 0.5 ms in 4 of the same 15, the CPU a message
# and the burst rate the same (issue 22, fifth round). On a slower one still, with the burst
# sent from a process of its own, 0.5 ms was over 50 in 6 rounds of 7 and 0.2 ms in 1 of the
# same 7, the CPU a message no higher; 0.1 ms cost 15% more CPU (issue 22, sixth round).
SWITCH_SECONDS = 0.0002


@contextmanager
def prompt_switches(threaded: bool) -> Iterator[None]:
    """While quitbot's own process serves Slack from the listener's thread (`threaded`), the
    GIL changes hands within `SWITCH_SECONDS`; the interval is given back afterwards, and a
    shorter one already set is kept."""
    before = sys.getswitchinterval()
    # Set only when shorter: CPython keeps whole microseconds, rounding down, so setting again
    # a value it read back can take a microsecond off.
    shorten = threaded and before > SWITCH_SECONDS
    if shorten:
        sys.setswitchinterval(SWITCH_SECONDS)
    try:
        yield
    finally:
        if shorten:
            sys.setswitchinterval(before)


class Listener:
    """Serves `path` on `host:port` from its own thread: `start`, then `cleanup`.

    `messages` runs on the listener's loop; Bolt's dispatch runs on the loop that started
    the listener, which must keep running until `cleanup` returns."""

    def __init__(self, app: AsyncApp, signing_secret: str, messages: Messages, path: str) -> None:
        self._app, self._path = app, path
        self._edge = HttpEdge(app, signing_secret, messages, self._on_bolts_loop)
        self._bolts_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None  # the listener loop's
        self._runner: web.AppRunner | None = None
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None

    @property
    def addresses(self) -> list[Any]:
        return self._runner.addresses if self._runner is not None else []

    async def start(self, host: str, port: int) -> None:
        """Listening once this returns; raises what binding the port raised (OSError)."""
        self._bolts_loop = asyncio.get_running_loop()
        listening: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = self._thread = threading.Thread(
            target=self._run,
            args=(host, port, listening),
            name="quitbot-slack-listener",
            daemon=True,  # a start cancelled half-way must not keep the process alive
        )
        thread.start()
        await asyncio.wrap_future(listening)

    async def cleanup(self) -> None:
        """Stop taking requests, let those under way finish (each message kept is handed
        over before its request is answered), and end the thread."""
        if self._loop is not None and self._stopping is not None and not self._ended.done():
            with suppress(RuntimeError):  # its loop closed meanwhile: it stopped by itself
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._loop is not None:
            await asyncio.shield(asyncio.wrap_future(self._ended))
        if self._thread is not None and self._ended.done():
            self._thread.join()  # it has nothing left to do but return

    def _run(self, host: str, port: int, listening: concurrent.futures.Future[None]) -> None:
        """The listener's thread: its loop, closed before `cleanup` hears it ended."""
        loop = self._loop = asyncio.new_event_loop()
        failed: BaseException | None = None
        try:
            loop.run_until_complete(self._serve(host, port, listening))
        except BaseException as exc:
            failed = exc
            if not listening.done():
                listening.set_exception(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        if failed is None:
            self._ended.set_result(None)
        else:
            self._ended.set_exception(failed)

    async def _serve(
        self, host: str, port: int, listening: concurrent.futures.Future[None]
    ) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._edge.web_app(self._path), handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            self._runner = runner
            listening.set_result(None)
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    async def _on_bolts_loop(self, request: AsyncBoltRequest) -> BoltResponse:
        assert self._bolts_loop is not None
        dispatching = asyncio.run_coroutine_threadsafe(
            self._app.async_dispatch(request), self._bolts_loop
        )
        return await asyncio.wrap_future(dispatching)
