"""A real browser for the dashboard's tests: Debian's chromium, driven by Playwright.

Playwright's own browser download (`playwright install`) is never used: the tests launch
the system's chromium (`QUITBOT_TEST_CHROMIUM`, else `chromium` on PATH). Without it they
fail, saying how to install it; they are never skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, async_playwright
from playwright.async_api import Error as PlaywrightError

HOW_TO_INSTALL = (
    "the dashboard's browser tests need Debian's chromium ({why}). Install it with\n"
    "    apt-get update && apt-get install -y chromium\n"
    "(not `playwright install`, whose download is not used), or point "
    "QUITBOT_TEST_CHROMIUM at a chromium binary"
)


def chromium_path() -> str:
    path = os.environ.get("QUITBOT_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(HOW_TO_INSTALL.format(why="there is no chromium on PATH"), pytrace=False)
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    # Chromium's sandbox refuses to run as root, which CI and containers are.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(executable_path=path, args=args)
        except PlaywrightError as exc:
            why = f"{path} would not start: {str(exc).splitlines()[0]}"
            pytest.fail(HOW_TO_INSTALL.format(why=why), pytrace=False)
        try:
            yield browser
        finally:
            await browser.close()
