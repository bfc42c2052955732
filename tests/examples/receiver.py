"""The example webhook receiver (examples/webhook_receiver.py), loaded from its file and
served on 127.0.0.1 for tests: it records each event it accepts and wakes whoever waits."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str = "webhook_receiver") -> ModuleType:
    """An example script, loaded from its file as a module named after it."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Receiver:
    """The example app on a port of 127.0.0.1; `stop()` closes the port (the receiver is
    down: connections are refused) and `start()` opens the same port again."""

    def __init__(self, secret: bytes) -> None:
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._secret = secret
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/quitbot"

    async def _handle(self, event: dict[str, Any]) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    async def start(self) -> None:
        # A new app each time: aiohttp freezes an app once it has served.
        app = load_example().build_app(self._secret, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.events) >= count)
        return self.events
