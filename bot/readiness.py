"""Whether each configured platform is connected, as the adapters report it, for /readyz."""

from __future__ import annotations

from collections.abc import Iterable


class Readiness:
    """Each configured platform's connection state, set by its adapter.

    `quitbot run` builds one, naming every platform it starts (each starts as not
    connected), and hands it to the adapters as `engine.readiness`. An adapter calls
    `engine.readiness.set("discord", True)` once it is connected and able to answer (Discord:
    on READY / `on_ready`; Slack: on each Socket Mode connection's `hello`, or once the HTTP
    server listens), and `set(..., False)` when it loses the connection (a gateway
    disconnect, a Socket Mode connection closing or being replaced) until it is back.
    """

    def __init__(self, platforms: Iterable[str] = ()) -> None:
        self._connected = dict.fromkeys(platforms, False)

    def set(self, platform: str, connected: bool) -> None:
        """Report whether `platform` is connected now."""
        self._connected[platform] = connected

    def platforms(self) -> dict[str, bool]:
        """Every platform known so far and whether it is connected."""
        return dict(self._connected)

    @property
    def ready(self) -> bool:
        """True when every expected platform is connected."""
        return all(self._connected.values())
