"""Progress of long operator commands: one updating line on a terminal, nothing when piped."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Counts steps towards `total` and shows `what n/total` on `stream` (stderr), only
    when it is a terminal, so scripts and pipes get clean output."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None) -> None:
        self._what = what
        self._total = total
        self._stream = stream if stream is not None else sys.stderr
        self._shown = _is_terminal(self._stream)
        self._done = 0

    def step(self, n: int = 1, note: str = "") -> None:
        """`note`, if given, follows the count (e.g. what went wrong so far)."""
        self._done += n
        if self._shown:
            # Erase to the end of the line: a shorter note must not leave an older one's end.
            tail = f" {note}\x1b[K" if note else ""
            self._stream.write(f"\r{self._what} {self._done}/{self._total}{tail}")
            self._stream.flush()

    def finish(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
