"""The moderators' marks on alert-only mode (DESIGN.md rule 9), in the CLI: `review list
--would-end` lists what the ladder would have ended, `review mark ID --right|--wrong` marks
it, and `review stats` gives the one mistake rate that counts reopened ends and would-be
ends marked wrong alike."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.app import UnconfiguredModel, build_runtime
from bot.engine import ConversationNotFound
from bot.review import MistakeRate
from bot.settings import Settings


def add_commands(review_ops: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `review mark` and `review stats` (`review list --would-end` is the list's flag)."""
    decision_command(
        review_ops,
        "mark",
        "alert-only mode: was the ladder right to want to end it?",
        {"--right": "ending it would have been right", "--wrong": "it would have been a false end"},
    ).set_defaults(handler=_mark)
    stats = review_ops.add_parser("stats", help="how often the ladder was wrong, as decided")
    stats.add_argument("--days", type=int, default=30, help="decisions of the last N days")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=_stats)


def decision_command(
    review_ops: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    choices: dict[str, str],
) -> argparse.ArgumentParser:
    """A moderator's decision on one conversation: exactly one of `choices` (flag: help),
    with a note for the audit trail."""
    command = review_ops.add_parser(name, help=help_text)
    command.add_argument("id")
    decision = command.add_mutually_exclusive_group(required=True)
    for flag, meaning in choices.items():
        decision.add_argument(flag, action="store_true", help=meaning)
    command.add_argument("--note", required=True, help="why (kept in the audit trail)")
    command.add_argument("--by", default="cli-operator", help="who decided")
    return command


async def would_end_list(args: argparse.Namespace, settings: Settings) -> int:
    """`review list --would-end`."""
    async with build_runtime(settings, model=UnconfiguredModel()) as runtime:
        found = await runtime.engine.awaiting_marks(
            args.platform, args.limit, community=args.community
        )
        listed: list[dict[str, Any]] = []
        for conversation in found:
            _, events = await runtime.engine.record(conversation.id)
            would = [e for e in events if e.kind == "would_end"]
            listed.append(
                {
                    "id": conversation.id,
                    "platform": conversation.key.platform,
                    "user_id": conversation.user_id,
                    "would_end": [{"at": e.at.isoformat(), **e.detail} for e in would],
                }
            )
    if args.json:
        print(json.dumps(listed, indent=2, ensure_ascii=False))
    elif not listed:
        print("Nothing to mark.")
    for item in [] if args.json else listed:
        print(f"{item['id']} on {item['platform']}, started by {item['user_id']}")
        for w in item["would_end"]:
            said = " ".join(str(w.get("explanation", "")).split())[:200]
            who = f" (for {w['participant']})" if "participant" in w else ""
            print(f"  would have ended{who} at {w['at']}: {w.get('reason')}: {said}")
    return 0


async def _mark(args: argparse.Namespace, settings: Settings) -> int:
    async with build_runtime(settings, model=UnconfiguredModel()) as runtime:
        conversation = await runtime.engine.get(args.id)
        if conversation is None:
            print(f"quitbot: no conversation with id {args.id!r}", file=sys.stderr)
            return 1
        _, events = await runtime.engine.record(conversation.id)
        if not any(e.kind == "would_end" for e in events):
            print(
                f"quitbot: {conversation.id} has no would_end to mark (alert-only mode records "
                "one where it would have ended)",
                file=sys.stderr,
            )
            return 1
        try:
            await runtime.engine.mark_would_end(
                conversation.id, args.by, right=args.right, note=args.note
            )
        except ConversationNotFound as exc:
            print(f"quitbot: {exc}", file=sys.stderr)
            return 1
    print(f"{conversation.id}: marked {'right' if args.right else 'wrong (a false end)'}.")
    return 0


async def _stats(args: argparse.Namespace, settings: Settings) -> int:
    since = datetime.now(UTC) - timedelta(days=args.days)
    async with build_runtime(settings, model=UnconfiguredModel()) as runtime:
        rate = MistakeRate.of(await runtime.engine.review_decisions(since))
    shown = {
        "days": args.days,
        "ends_upheld": rate.upheld,
        "ends_reopened": rate.reopened,
        "would_end_right": rate.would_end_right,
        "would_end_wrong": rate.would_end_wrong,
        "shut_outs_readmitted": rate.readmitted,
        "mistake_rate": rate.rate,
    }
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    print(f"Decisions of the last {args.days} days:")
    print(f"  ends: {rate.upheld} upheld, {rate.reopened} reopened as mistakes")
    print(f"  alert-only: {rate.would_end_right} right, {rate.would_end_wrong} wrong")
    print(f"  shut-outs: {rate.readmitted} readmitted as mistakes (upheld ones count above)")
    share = "no decisions yet" if rate.rate is None else f"{rate.rate:.0%}"
    print(f"  mistake rate: {share} ({rate.mistakes} of {rate.decided})")
    return 0
