"""The log formatters: masking, JSON lines, the conversation id from the context."""

from __future__ import annotations

import io
import json
import logging

from bot.logs import about, configure


def test_json_lines_mask_secrets_and_name_the_conversation() -> None:
    stream = io.StringIO()
    handler = configure("DEBUG", "json", ["sk-ant-abcdef123456", 'quo"te-secret'], stream=stream)
    try:
        log = logging.getLogger("quitbot.test")
        with about("c23456789a"):
            log.info("key is %s", "sk-ant-abcdef123456")
        log.warning("header %s", 'quo"te-secret')
        try:
            raise ValueError("boom sk-ant-abcdef123456")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "key is [redacted]" and first["conversation_id"] == "c23456789a"
    assert second["message"] == "header [redacted]" and "conversation_id" not in second
    assert "[redacted]" in third["exc"] and "abcdef123456" not in stream.getvalue()
    assert {"at", "level", "logger"} <= set(first)


def test_text_lines_carry_the_conversation_in_brackets() -> None:
    stream = io.StringIO()
    handler = configure("INFO", "text", [], stream=stream)
    try:
        with about("c23456789a"):
            logging.getLogger("quitbot.test").info("hello")
        logging.getLogger("quitbot.test").debug("not shown")
    finally:
        logging.getLogger().removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    assert line.endswith("INFO quitbot.test [c23456789a]: hello")
