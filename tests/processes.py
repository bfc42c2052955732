"""Running the real `quitbot` command in a child process, with nothing from this environment."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack


def clean_env(tmp_path: Path, fake: FakeAnthropic | None, **extra: str) -> dict[str, str]:
    """This process's environment without any quitbot, Claude, Discord or Slack setting."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUITBOT_", "ANTHROPIC_", "DISCORD_", "SLACK_"))
    }
    env["QUITBOT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env["QUITBOT_MODEL_MAX_RETRIES"] = "0"
    if fake is not None:
        env["ANTHROPIC_API_KEY"] = "test-key"
        env["ANTHROPIC_BASE_URL"] = fake.base_url
    env.update(extra)
    return env


def reaching_discord(fake: FakeDiscord) -> dict[str, str]:
    """The settings that point `quitbot run` at a fake Discord."""
    return {
        "DISCORD_TOKEN": fake.token,
        "QUITBOT_DISCORD_API_BASE": fake.api_base,
        "QUITBOT_DISCORD_GATEWAY_URL": fake.gateway_url,
    }


def reaching_slack_socket(fake: FakeSlack) -> dict[str, str]:
    """The settings that point `quitbot run` at a fake Slack in Socket Mode."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "QUITBOT_SLACK_API_URL": fake.base_url,
    }


def reaching_slack_http(fake: FakeSlack, port: int) -> dict[str, str]:
    """The settings that point `quitbot run` at a fake Slack, in HTTP mode on `port`."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "QUITBOT_SLACK_MODE": "http",
        "QUITBOT_SLACK_HTTP_PORT": str(port),
        "QUITBOT_SLACK_API_URL": fake.base_url,
    }


async def start_quitbot(
    tmp_path: Path, env: dict[str, str], *args: str, script: Path | None = None
) -> asyncio.subprocess.Process:
    """`python -m bot ARGS` (or `python SCRIPT ARGS`) in `tmp_path` (so no .env is read),
    its pipes open."""
    command = [str(script)] if script is not None else ["-m", "bot"]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )


async def quitbot(
    tmp_path: Path, env: dict[str, str], *args: str, stdin: str = "", script: Path | None = None
) -> tuple[int, str, str]:
    """Run `quitbot ARGS` (or a script that runs it) to the end with `stdin`; (exit code,
    stdout, stderr)."""
    process = await start_quitbot(tmp_path, env, *args, script=script)
    out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def read_until(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> None:
    """Read log lines until one contains `needle` (the process says when it listens)."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"the process ended before logging {needle!r}: {seen}")
        seen.append(line)
        if needle in line:
            return


@dataclass
class Logged:
    """What a `quitbot run` wrote to stderr, and its exit code once it has stopped."""

    lines: list[str] = field(default_factory=list)
    returncode: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip("\n") for line in self.lines)


@asynccontextmanager
async def running_quitbot(
    tmp_path: Path, env: dict[str, str], logged_first: str, command: str = "run"
) -> AsyncIterator[Logged]:
    """`quitbot run` (or `command`) until it has logged `logged_first`; SIGTERM and its
    whole log on exit."""
    process = await start_quitbot(tmp_path, env, command)
    assert process.stderr is not None
    logged = Logged()
    try:
        await asyncio.wait_for(read_until(process.stderr, logged_first, logged.lines), 30)
        yield logged
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await process.communicate()
        logged.lines += rest.decode().splitlines()
        logged.returncode = process.returncode
