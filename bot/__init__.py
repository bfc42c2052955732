"""quitbot's platform-neutral core."""

from typing import NoReturn


def __getattr__(name: str) -> NoReturn:
    from bot.shadowing import missing_name

    raise missing_name(__name__, __path__, name)
