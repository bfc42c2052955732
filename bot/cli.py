"""The `quitbot` command: chat, run, doctor, and the operator's conversation tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from bot import dbops, housekeeping, logs, operator
from bot.adapters import adapters, chat_runner
from bot.app import NO_KEY, NO_PLATFORM, UnconfiguredModel, build_runtime
from bot.evals.command import add_command as add_eval_command
from bot.hooks import HookLoadError
from bot.ports import PlatformUnavailable, PlatformUnreachable
from bot.retry import retrying
from bot.settings import Settings, SettingsError, TextsError, load_settings
from bot.store import SchemaTooNew, StoreError
from bot.texts import template_file
from bot.usertools import ToolError, ToolRegistry

log = logging.getLogger("quitbot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quitbot",
        description="A Claude assistant for Discord and Slack that can end a conversation "
        "as a last resort.",
    )
    parser.add_argument(
        "--env-file", help="settings file (default: .env, when there is one; a named one must be)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="talk to the assistant in this terminal")
    start = chat.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="ID", help="continue a conversation")
    start.add_argument("--branch", metavar="ID", help="start from an earlier conversation")
    chat.add_argument(
        "--from",
        dest="upto",
        type=int,
        metavar="N",
        help="with --branch: carry its first N messages",
    )

    commands.add_parser("run", help="run every configured platform (Discord, Slack)")
    commands.add_parser("doctor", help="check settings, database, model API and platforms")
    commands.add_parser("dashboard", help="serve the moderators' web dashboard on its own")
    commands.add_parser(
        "texts",
        help="print every notice and button text with its key, default and placeholders, "
        "as a TOML file to edit (QUITBOT_TEXTS)",
    )

    conversations = commands.add_parser("conversations", help="operator tools")
    ops = conversations.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    listing = ops.add_parser("list", help="list conversations, newest first")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--state", choices=["active", "ended"])
    listing.add_argument("--platform")
    listing.add_argument("--limit", type=int, default=50)
    show = ops.add_parser("show", help="one conversation with its messages and audit trail")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    reopen = ops.add_parser("reopen", help="make an ended conversation active again")
    reopen.add_argument("id")
    reopen.add_argument("--note", default="", help="why (kept in the audit trail)")
    reopen.add_argument("--by", default="cli-operator", help="who is reopening it")
    reopen.add_argument(
        "--participant",
        metavar="USER_ID",
        help="instead: let this person, shut out of the conversation, take part again",
    )
    export = ops.add_parser("export", help="conversations as JSON Lines, with messages and events")
    export.add_argument("ids", nargs="*", metavar="ID", help="default: all")
    housekeeping.add_commands(commands, ops, export)

    db = commands.add_parser("db", help="database upkeep: migrate, move, back up")
    db_ops = db.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    db_ops.add_parser("upgrade", help="apply pending migrations to QUITBOT_DATABASE_URL")
    copy = db_ops.add_parser(
        "copy", help="copy every conversation from one database to another (SQLite, PostgreSQL)"
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL")
    copy.add_argument("--to", dest="target", required=True, metavar="URL")
    copy.add_argument(
        "--replace",
        action="store_true",
        help="replace the target's conversations (kept until the copy has committed)",
    )
    copy.add_argument(
        "--allow-empty-source",
        action="store_true",
        help="with --replace: let a source with no conversations empty the target",
    )
    backup = db_ops.add_parser(
        "backup", help="consistent copy of a live SQLite database (PostgreSQL: prints pg_dump)"
    )
    backup.add_argument("path", help="the new file to write")

    add_eval_command(commands)

    discord = commands.add_parser("discord", help="Discord helpers")
    discord_ops = discord.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    discord_ops.add_parser("invite-url", help="print the OAuth2 URL that adds the bot")
    return parser


def main(argv: list[str] | None = None, *, tools: ToolRegistry | None = None) -> int:
    """Entry point of the `quitbot` console script; returns the exit code.

    `tools`: the user tools registered in code (your own script's `main`), instead of those
    installed packages declare.
    """
    args = _parser().parse_args(argv)
    args.registry = tools
    if args.command == "chat" and args.branch and args.upto is None:
        print("quitbot: --branch needs --from N", file=sys.stderr)
        return 2
    if args.command == "texts":  # the defaults: no settings needed, nor a good texts file
        sys.stdout.write(template_file())
        return 0
    if args.env_file is not None and not Path(args.env_file).is_file():
        print(f"quitbot: --env-file {args.env_file}: there is no such file", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.env_file or ".env")
    except SettingsError as exc:
        print("quitbot: bad configuration:", file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        return 2
    except TextsError as exc:
        print(f"quitbot: {exc}", file=sys.stderr)
        return 2
    level = settings.log_level
    if args.command in {"chat", "eval"} and "log_level" not in settings.model_fields_set:
        # The terminal shows the conversation (or the report): audit lines would interleave.
        level = "WARNING"
    logs.configure(level, settings.log_format, settings.secrets())
    try:
        return _run_until_signalled(_dispatch(args, settings))
    except PlatformUnavailable as exc:  # e.g. the health port is in use
        print(f"quitbot: {exc}", file=sys.stderr)
        return 1
    except (StoreError, SchemaTooNew) as exc:
        print(f"quitbot: database: {exc}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"quitbot: tools: {exc}", file=sys.stderr)
        return 2
    except HookLoadError as exc:
        print(f"quitbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run_until_signalled(coro: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, but SIGTERM (systemd, docker stop) shuts down as cleanly as Ctrl-C."""

    async def guarded() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coro
        except asyncio.CancelledError:
            return 0

    return asyncio.run(guarded())


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:  # subcommands that name their own (bot/housekeeping.py)
        return int(await handler(args, settings))
    if args.command == "chat":
        return await _chat(args, settings)
    if args.command == "run":
        return await _run_platforms(settings, args.registry)
    if args.command == "doctor":
        return await operator.doctor(settings, args.registry)
    if args.command == "dashboard":
        return await _dashboard(settings)
    if args.command == "discord":
        return await operator.discord_invite_url(settings)
    if args.command == "db":
        return await dbops.command(args, settings)
    return await operator.conversations(args, settings)


async def _chat(args: argparse.Namespace, settings: Settings) -> int:
    run_console = chat_runner()
    if settings.anthropic_api_key is None:
        print(f"quitbot: {NO_KEY}", file=sys.stderr)
        return 2
    # The notice's rate limit spares a platform's shared thread; a terminal has one reader,
    # who should hear each time why nothing answers.
    settings = settings.model_copy(update={"blocked_notice_seconds": 0})
    async with build_runtime(settings, tools=args.registry, deliver_webhooks=True) as runtime:
        return await run_console(
            runtime.engine, resume=args.resume, branch=args.branch, upto=args.upto
        )


def _freeze_start_up_heap() -> None:
    """Move what start-up built (modules, clients, settings; alive for the whole process)
    out of the garbage collector's view. Measured under a message burst: the collector's
    full passes over that heap cost about a fifth of the bot's CPU and ~140 ms stalls
    (bench/README.md, recommendation 1)."""
    gc.collect()
    gc.freeze()


async def _dashboard(settings: Settings) -> int:
    problem = settings.dashboard.problem()
    if problem:
        print(f"quitbot: {problem}", file=sys.stderr)
        return 2
    # Imported here: Jinja2 is for the dashboard only, not every command.
    from bot.dashboard.serve import serve_dashboard

    async with (
        build_runtime(settings, model=UnconfiguredModel()) as runtime,
        serve_dashboard(settings, runtime.engine),
    ):
        await asyncio.Event().wait()  # until Ctrl-C or SIGTERM
    return 0


async def _run_platforms(settings: Settings, tools: ToolRegistry | None) -> int:
    if settings.anthropic_api_key is None:
        print(f"quitbot: {NO_KEY}", file=sys.stderr)
        return 2
    problem = settings.dashboard.port and settings.dashboard.problem()
    if problem:
        print(f"quitbot: {problem}", file=sys.stderr)
        return 2
    chosen = [adapter for adapter in adapters().values() if adapter.configured(settings)]
    if not chosen:
        print(f"quitbot: {NO_PLATFORM}", file=sys.stderr)
        return 2
    # Imported here: aiohttp and prometheus_client are for `run` only, not every command.
    from bot.service import serve

    async with serve(settings, [adapter.name for adapter in chosen], tools) as runtime:
        _freeze_start_up_heap()
        runs = []
        for adapter in chosen:
            log.info("starting the %s adapter", adapter.name)
            start = partial(adapter.run, runtime.engine, settings)
            retries = settings.start_retries
            runs.append(retrying(adapter.name, start, PlatformUnreachable, retries))
        try:
            await _run_all(runs)
        except PlatformUnavailable as exc:
            print(f"quitbot: {exc}", file=sys.stderr)
            return 1
    return 0


async def _run_all(runs: list[Coroutine[Any, Any, None]]) -> None:
    """Every platform at once until one fails or the process is told to stop. Either way
    the others are cancelled and awaited: each lets its replies under way finish before
    the runtime closes the store under them. (`gather` would not wait: it raises as soon
    as the first platform has stopped, while another is still draining.)"""
    try:
        async with asyncio.TaskGroup() as group:
            for run in runs:
                group.create_task(run)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
