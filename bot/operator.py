"""The operator's commands: conversations list/show/reopen/export, doctor, invite URL."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.adapters import Check, adapter, adapters, platform_names
from bot.app import NO_PLATFORM, UnconfiguredModel, build_runtime, tool_registry
from bot.conversation import AuditEvent, Conversation, LadderState, StoredMessage
from bot.engine import ConversationNotFound, Engine
from bot.hooks import Hooks
from bot.ports import ModelUnavailable
from bot.settings import Settings
from bot.usertools import ToolError, ToolRegistry
from bot.webhooks import WebhookTarget


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    """The `list --json` shape (a contract: see DESIGN.md)."""
    ladder = conversation.ladder
    return {
        "id": conversation.id,
        "platform": conversation.key.platform,
        "place": conversation.key.place,
        "user_id": conversation.user_id,
        "state": conversation.state,
        "redirects": ladder.redirects,
        "warned": ladder.warned,
        "crisis": ladder.crisis,
        "ended_by": ladder.ended_by.value if ladder.ended_by else None,
        "ended_reason": ladder.ended_reason.value if ladder.ended_reason else None,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "ended_at": conversation.ended_at.isoformat() if conversation.ended_at else None,
        "branched_from": conversation.branched_from,
    }


def message_json(message: StoredMessage) -> dict[str, Any]:
    return {
        "seq": message.seq,
        "role": message.role,
        "text": message.text,
        "at": message.at.isoformat(),
        "user_id": message.user_id,
        "platform_message_id": message.platform_message_id,
        "in_context": message.in_context,
    }


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "at": event.at.isoformat(),
        "actor": event.actor.value,
        "detail": event.detail,
    }


def participant_json(user_id: str, ladder: LadderState) -> dict[str, Any]:
    """Someone other than the starter who wrote in the conversation, and their ladder."""
    return {
        "user_id": user_id,
        "redirects": ladder.redirects,
        "warned": ladder.warned,
        "crisis": ladder.crisis,
        "shut_out": ladder.ended,
        "shut_out_reason": ladder.ended_reason.value if ladder.ended_reason else None,
    }


async def full_json(engine: Engine, conversation: Conversation) -> dict[str, Any]:
    """The `show --json` shape: the conversation, its `messages`, its audit `events` and
    the `participants` other than its starter."""
    messages, events = await engine.record(conversation.id)
    others = await engine.participants(conversation.id)
    return {
        **conversation_json(conversation),
        "messages": [message_json(m) for m in messages],
        "events": [event_json(e) for e in events],
        "participants": [participant_json(u, ladder) for u, ladder in sorted(others.items())],
    }


async def conversations(args: argparse.Namespace, settings: Settings) -> int:
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        engine, store = runtime.engine, runtime.store
        try:
            if args.operation == "list":
                found = await store.list_conversations(
                    state=args.state, platform=args.platform, limit=args.limit
                )
                _print_list(found, as_json=args.json)
            elif args.operation == "show":
                conversation = await _require(engine, args.id)
                shown = await full_json(engine, conversation)
                print(json.dumps(shown, indent=2) if args.json else _describe(shown))
            elif args.operation == "reopen" and args.participant:
                before = await _require(engine, args.id)
                if not await engine.readmit(before.id, args.participant, args.by, args.note):
                    print(
                        f"quitbot: {args.participant} is not shut out of {before.id}",
                        file=sys.stderr,
                    )
                    return 1
                print(f"{args.participant} may take part in {before.id} again")
            elif args.operation == "reopen":
                before = await _require(engine, args.id)
                if not before.ladder.ended:
                    print(f"{before.id} was not ended; nothing changed")
                else:
                    after = await engine.reopen(before.id, args.by, args.note)
                    print(f"{after.id} reopened in quitbot. {reopened_elsewhere(after)}")
            elif args.operation == "export":
                ids = args.ids or [c.id for c in await store.list_conversations(limit=10**9)]
                for conversation_id in ids:
                    conversation = await _require(engine, conversation_id)
                    print(json.dumps(await full_json(engine, conversation)))
        except ConversationNotFound as exc:
            print(f"quitbot: {exc}", file=sys.stderr)
            return 1
    return 0


def reopened_elsewhere(conversation: Conversation) -> str:
    """What a reopen from here leaves undone on the conversation's own platform."""
    platform = conversation.key.platform
    elsewhere = f"Its place on {platform} is not reopened from here."
    found = adapters().get(platform)
    if found is not None:
        # getattr: an adapter from another package may predate this attribute.
        return str(getattr(found, "reopened_elsewhere", elsewhere))
    if platform in platform_names():  # the terminal chat
        return f"Continue it with: quitbot chat --resume {conversation.id}"
    return elsewhere


async def _require(engine: Engine, conversation_id: str) -> Conversation:
    conversation = await engine.get(conversation_id)
    if conversation is None:
        raise ConversationNotFound(f"no conversation with id {conversation_id!r}")
    return conversation


def _print_list(found: list[Conversation], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([conversation_json(c) for c in found], indent=2))
        return
    if not found:
        print("No conversations.")
        return
    print(
        f"{'ID':<12} {'PLATFORM':<8} {'STATE':<6} {'REDIR':>5} {'WARNED':<6} {'CRISIS':<6} "
        f"{'UPDATED':<20} ENDED"
    )
    for c in found:
        ended = f"{c.ladder.ended_by.value}: {c.ladder.ended_reason}" if c.ladder.ended_by else ""
        print(
            f"{c.id:<12} {c.key.platform:<8} {c.state:<6} {c.ladder.redirects:>5} "
            f"{_yes(c.ladder.warned):<6} {_yes(c.ladder.crisis):<6} "
            f"{c.updated_at:%Y-%m-%d %H:%M:%S} {ended}"
        )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _describe(shown: dict[str, Any]) -> str:
    lines = [
        f"Conversation {shown['id']} on {shown['platform']} ({shown['place']}): {shown['state']}",
        f"  redirects {shown['redirects']}, warned {_yes(shown['warned'])}, "
        f"crisis {_yes(shown['crisis'])}",
    ]
    if shown["state"] == "ended":
        lines.append(
            f"  ended by {shown['ended_by']}: {shown['ended_reason']} at {shown['ended_at']}"
        )
    for p in shown["participants"]:
        out = f", shut out: {p['shut_out_reason']}" if p["shut_out"] else ""
        lines.append(
            f"  also writing: {p['user_id']} (redirects {p['redirects']}, warned "
            f"{_yes(p['warned'])}, crisis {_yes(p['crisis'])}{out})"
        )
    lines.append("Messages:")
    for m in shown["messages"]:
        hidden = "" if m["in_context"] else " (left out of context)"
        lines.append(f"  {m['seq']:>3}. {m['role']}{hidden}: {m['text']}")
    lines.append("Audit trail:")
    for e in shown["events"]:
        lines.append(f"  {e['at']} {e['kind']} by {e['actor']} {json.dumps(e['detail'])}")
    return "\n".join(lines)


_LABELS = {True: "ok  ", False: "FAIL", "warn": "WARN"}


async def doctor(settings: Settings, tools: ToolRegistry | None = None) -> int:
    """Check everything quitbot needs and say in plain words what is missing."""
    registry = tool_registry(tools)
    tool_checks, openable = _tools(registry, settings)
    results: list[Check] = [(True, "settings: loaded"), (True, _texts(settings)), *tool_checks]
    async with build_runtime(openable, tools=registry) as runtime:
        results.append((True, f"database: {settings.database.shown} opens and is migrated"))
        check = getattr(runtime.model, "check", None)
        if settings.anthropic_api_key is None:
            results.append((False, "model API: ANTHROPIC_API_KEY is not set"))
        elif check is not None:
            try:
                results.append((True, f"model API: {await check()}"))
            except ModelUnavailable as exc:
                results.append((False, f"model API: {exc}"))
        results.extend(_hooks_and_webhooks(runtime.hooks, settings))
    configured = 0
    for name, platform in sorted(adapters().items()):
        if not platform.configured(settings):
            results.append((True, f"{name}: not configured (skipped)"))
            continue
        configured += 1
        results.extend(await platform.doctor(settings))
    if not configured:
        results.append((False, f"run: `quitbot run` will refuse to start: {NO_PLATFORM}"))
    for status, line in results:
        print(f"{_LABELS[status]} {line}")
    return 1 if any(status is False for status, _ in results) else 0


def _tools(registry: ToolRegistry, settings: Settings) -> tuple[list[Check], Settings]:
    """Which tools are registered and which QUITBOT_TOOLS enables, and settings the runtime
    opens with even when QUITBOT_TOOLS is wrong, so that the other checks still run."""
    try:
        enabled = registry.enabled(settings.tools, settings.tool_timeouts)
    except ToolError as exc:
        wrong = f"tools: {exc}; `quitbot run` will refuse to start until QUITBOT_TOOLS is fixed"
        return [(False, wrong)], settings.model_copy(update={"tools": [], "tool_timeouts": {}})
    shown = ", ".join(registry.names) or "none"
    checks: list[Check] = [
        (True, f"tools: registered {shown}; QUITBOT_TOOLS enables {', '.join(enabled) or 'none'}")
    ]
    checks += [
        ("warn", f"tools: {name} is registered but off (add it to QUITBOT_TOOLS to let the "
         "model call it)")
        for name in registry.names
        if name not in enabled
    ]  # fmt: skip
    return checks, settings


def _texts(settings: Settings) -> str:
    """Whose words the bot speaks in (the file was checked when the settings were read)."""
    if settings.texts is None:
        return "texts: the bot's own words (QUITBOT_TEXTS not set)"
    return f"texts: {len(settings.words.overrides)} of your own from {settings.texts}"


def _hooks_and_webhooks(hooks: Hooks, settings: Settings) -> list[Check]:
    """Which hooks loaded and where webhooks go (their hosts: a URL may carry a token)."""
    installed = ", ".join(hooks.names) or "none installed"
    targets = ", ".join(WebhookTarget(url).label for url in settings.webhook_url)
    return [
        (True, f"hooks: {installed}"),
        (True, f"webhooks: to {targets}" if targets else "webhooks: not configured"),
    ]


async def discord_invite_url(settings: Settings) -> int:
    if not settings.discord.enabled:
        print("quitbot: DISCORD_TOKEN is not set", file=sys.stderr)
        return 2
    print(await adapter("discord").setup_help(settings))
    return 0
