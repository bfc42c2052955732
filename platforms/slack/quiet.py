"""Bolt's start-up warning that a client given with a token makes the token unused, kept
out of the log when both are the same bot token (an app of quitbot's, or a host's)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from slack_bolt.async_app import AsyncApp
from slack_bolt.logger import get_bolt_logger
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped


class _Without(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


@contextmanager
def without_token_warning(logger: logging.Logger | None = None) -> Iterator[None]:
    """Build your `AsyncApp(client=...)` inside this: Bolt reads SLACK_BOT_TOKEN from the
    environment itself and, given a client too, warns on every start that it uses the
    client's token instead (the same token). `logger` is the one given to `AsyncApp`, if any.
    """
    logger = logger or get_bolt_logger(AsyncApp)
    quiet = _Without(warning_client_prioritized_and_token_skipped())
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
