"""The platforms quitbot can serve, found through package entry points.

A platform is a package that declares an `Adapter` under the `quitbot.platforms` entry-point
group (ours do so in pyproject.toml), so a third-party package can add one without touching
the core, and the core never imports `platforms/` by name. The terminal chat is found the
same way, under `quitbot.chat`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.ports import ModLog, Places
    from bot.settings import Settings

PLATFORMS = "quitbot.platforms"
CHAT = "quitbot.chat"

# A check's status: True (ok), False (quitbot cannot work as set up) or "warn" (it works,
# with less, e.g. a missing optional permission); only False makes `doctor` exit non-zero.
CheckStatus = bool | Literal["warn"]
Check = tuple[CheckStatus, str]
ChatRunner = Callable[..., Awaitable[int]]


class Adapter(Protocol):
    """What the core asks of a platform: run it, check its set-up, help set it up."""

    name: str
    # For an operator who reopened a conversation from the command line: what that leaves
    # undone on this platform, and how to do it there.
    reopened_elsewhere: str

    def configured(self, settings: Settings) -> bool:
        """Whether the operator set this platform up (its token is there)."""
        ...

    async def run(self, engine: Engine, settings: Settings) -> None:
        """Serve the platform until cancelled; raise PlatformUnavailable in plain words."""
        ...

    async def doctor(self, settings: Settings) -> list[Check]:
        """Check credentials and permissions: (status, what) lines."""
        ...

    async def setup_help(self, settings: Settings) -> str:
        """How to add the bot (an invite URL, where the app manifest is)."""
        ...


class Reachable(Protocol):
    """A platform whose places a process can reach without serving the platform (no
    gateway or socket): the dashboard reopens threads through it."""

    def reach(self, settings: Settings) -> AbstractAsyncContextManager[tuple[Places, ModLog]]:
        """Log in to the platform's API only; its Places and ModLog until the block ends.
        Raises PlatformUnavailable (or PlatformUnreachable) in plain words."""
        ...


def reachable(name: str, settings: Settings) -> Reachable | None:
    """The platform `name`, if it is installed, configured and can be reached that way."""
    found = adapters().get(name)
    if found is None or not found.configured(settings) or not hasattr(found, "reach"):
        return None
    return found  # type: ignore[return-value]


class UnknownPlatform(LookupError):
    """No installed package provides that platform."""


def adapters() -> dict[str, Adapter]:
    """Every installed platform adapter, by name."""
    found: dict[str, Adapter] = {}
    for point in entry_points(group=PLATFORMS):
        adapter: Adapter = point.load()
        found[point.name] = adapter
    return found


def platform_names() -> set[str]:
    """Every installed platform's name, the terminal chat's too, without importing any."""
    return {point.name for group in (PLATFORMS, CHAT) for point in entry_points(group=group)}


def adapter(name: str) -> Adapter:
    found = adapters()
    if name not in found:
        installed = ", ".join(sorted(found)) or "none"
        raise UnknownPlatform(f"no platform {name!r} is installed (installed: {installed})")
    return found[name]


def chat_runner() -> ChatRunner:
    """The terminal chat: `runner(engine, resume=..., branch=..., upto=...) -> exit code`."""
    points = list(entry_points(group=CHAT))
    if not points:
        raise UnknownPlatform("the terminal chat is not installed (reinstall quitbot)")
    runner: Any = points[0].load()
    return runner  # type: ignore[no-any-return]
