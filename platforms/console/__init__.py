"""Terminal chat on the same core: local use, demos, and scripted runs."""

from platforms.console.chat import ConsoleChat, run_console

__all__ = ["ConsoleChat", "run_console"]
