"""Operator commands for running quitbot for months: `conversations purge`, `conversations
export --format md`, `users forget|export`, `review list|resolve`.

Each subcommand carries its handler (`set_defaults(handler=...)`), so the CLI's dispatch
needs one line for all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bot import marks
from bot.adapters import platform_names
from bot.app import UnconfiguredModel, build_runtime
from bot.communities import ENFORCEMENTS, SETTING_NAMES, BadCommunitySettings, CommunitySettings
from bot.conversation import Conversation
from bot.engine import ConversationNotFound, Engine
from bot.ids import COMMUNITY, COMMUNITY_EXAMPLE, BadId, community_id, split_id
from bot.ports import Store
from bot.privacy import export, forget, on_record
from bot.progress import Progress
from bot.retention import purge
from bot.review import ReviewItem, awaits_decision, disputed_by, review_queue
from bot.settings import Settings
from bot.transcript import markdown


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    conversations: argparse._SubParsersAction[argparse.ArgumentParser],
    export_parser: argparse.ArgumentParser,
) -> None:
    """Add the subcommands to the `quitbot` parser."""
    purging = conversations.add_parser(
        "purge", help="remove message text older than QUITBOT_RETENTION_DAYS (or --days)"
    )
    purging.add_argument("--days", type=int, help="default: QUITBOT_RETENTION_DAYS")
    purging.set_defaults(handler=_purge)
    export_parser.add_argument(
        "--format",
        choices=["jsonl", "md"],
        default="jsonl",
        help="jsonl (default; one conversation per line) or md (a readable transcript)",
    )
    export_parser.set_defaults(handler=_export_conversations)

    users = commands.add_parser("users", help="a person's data: forget it, export it")
    user_ops = users.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    forgetting = user_ops.add_parser("forget", help="delete a person's messages and feedback")
    forgetting.add_argument("person", metavar="PLATFORM:USER_ID")
    forgetting.add_argument("--by", default="cli-operator", help="who asked (kept in the audit)")
    forgetting.set_defaults(handler=_forget)
    exporting = user_ops.add_parser("export", help="everything kept about a person, as JSON")
    exporting.add_argument("person", metavar="PLATFORM:USER_ID")
    exporting.set_defaults(handler=_export_person)

    review = commands.add_parser("review", help="ended conversations someone called a mistake")
    review_ops = review.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    listing = review_ops.add_parser("list", help="the queue, longest-waiting first")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--platform")
    listing.add_argument("--community", help="one server's or workspace's id")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument(
        "--would-end",
        action="store_true",
        help="instead: what alert-only mode would have ended, to mark right or wrong",
    )
    listing.set_defaults(handler=_review_list)
    resolving = marks.decision_command(
        review_ops,
        "resolve",
        "decide: reopen it, or uphold the end",
        {
            "--reopen": "the end was a mistake",
            "--uphold": "the end (or, with --person, their shut-out) stands",
            "--readmit": "the shut-out was a mistake: the person may take part again",
        },
    )
    resolving.add_argument(
        "--person",
        metavar="USER_ID",
        help="decide this person's shut-out (needed only when several are disputed)",
    )
    resolving.set_defaults(handler=_review_resolve)
    marks.add_commands(review_ops)

    communities = commands.add_parser("communities", help="a server's or workspace's own settings")
    community_ops = communities.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    showing = community_ops.add_parser("show", help="communities with settings of their own")
    showing.add_argument("community", nargs="?", metavar="PLATFORM:COMMUNITY_ID")
    showing.add_argument("--json", action="store_true")
    showing.set_defaults(handler=_communities_show)
    setting = community_ops.add_parser(
        "set", help="override some settings for one community (a guild id, a team id)"
    )
    setting.add_argument("community", metavar="PLATFORM:COMMUNITY_ID")
    setting.add_argument("--redirects-before-warning", type=int)
    setting.add_argument("--redirects-before-end", type=int)
    setting.add_argument("--crisis-message")
    setting.add_argument("--system-prompt-extra")
    setting.add_argument(
        "--enforcement",
        choices=ENFORCEMENTS,
        help="alert: where the bot would end, alert the moderators and end nothing",
    )
    setting.add_argument(
        "--tools",
        dest="tool_names",
        type=_names,
        help="comma-separated user tools this community's model may call, among those "
        'QUITBOT_TOOLS enables ("" for none)',
    )
    setting.add_argument(
        "--text",
        dest="texts",
        action="append",
        type=_text,
        metavar="KEY=WORDS",
        help="this community's own words for one text (`quitbot texts` lists the keys); "
        "repeat for more",
    )
    setting.add_argument("--by", default="cli-operator", help="who changed them")
    setting.set_defaults(handler=_communities_set)
    resetting = community_ops.add_parser("reset", help="back to the process-wide settings")
    resetting.add_argument("community", metavar="PLATFORM:COMMUNITY_ID")
    resetting.add_argument(
        "--setting", choices=SETTING_NAMES, help="only this one (without it: all of them)"
    )
    resetting.add_argument("--by", default="cli-operator", help="who reset them")
    resetting.set_defaults(handler=_communities_reset)


def _now() -> datetime:
    return datetime.now(UTC)


def _fail(message: str) -> int:
    print(f"quitbot: {message}", file=sys.stderr)
    return 1


async def _purge(args: argparse.Namespace, settings: Settings) -> int:
    days = args.days if args.days is not None else settings.retention_days
    if days <= 0:
        print(
            "quitbot: nothing to purge by: set QUITBOT_RETENTION_DAYS or pass --days N",
            file=sys.stderr,
        )
        return 2
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        progress = Progress(f"removing text older than {days} days…", 1)
        purged = await purge(runtime.store, days, _now())
        progress.step()
        progress.finish()
    print(
        f"Removed the text of {purged.messages} messages, {purged.feedback} feedback and "
        f"{purged.events} audit events older than {days} days; dropped {purged.pending} "
        "unhandled messages."
    )
    return 0


async def _export_conversations(args: argparse.Namespace, settings: Settings) -> int:
    from bot.operator import full_json

    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        engine, store = runtime.engine, runtime.store
        ids = args.ids or [c.id for c in await store.list_conversations(limit=10**9)]
        progress = Progress("exported", len(ids))
        for index, conversation_id in enumerate(ids):
            conversation = await engine.get(conversation_id)
            if conversation is None:
                progress.finish()
                return _fail(f"no conversation with id {conversation_id!r}")
            if args.format == "md":
                messages, events = await engine.record(conversation.id)
                separator = "\n---\n\n" if index else ""
                others = await engine.participants(conversation.id)
                sys.stdout.write(separator + markdown(conversation, messages, events, others))
            else:
                print(json.dumps(await full_json(engine, conversation)))
            progress.step()
        progress.finish()
    return 0


def _platform(name: str) -> str:
    known = platform_names()
    if name.lower() not in known:
        raise BadId(f"there is no platform {name!r} (installed: {', '.join(sorted(known))})")
    return name.lower()


def _person(value: str) -> tuple[str, str]:
    return split_id(
        value, platform_names(), form="PLATFORM:USER_ID", example="discord:123456789 or slack:U0123"
    )


async def _forget(args: argparse.Namespace, settings: Settings) -> int:
    try:
        platform, user_id = _person(args.person)
    except BadId as exc:
        return _fail(str(exc))
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        if not on_record(await runtime.store.person(platform, user_id)):
            return _fail(f"nothing is on record for {platform}:{user_id}; nothing was deleted")
        purged = await forget(runtime.store, platform, user_id, args.by, _now())
    print(
        f"Forgot {platform}:{user_id}: deleted {purged.messages} messages, "
        f"{purged.feedback} feedback and {purged.pending} unhandled messages; removed text "
        f"from {purged.events} audit events. The deletion is on each conversation's record."
    )
    return 0


async def _export_person(args: argparse.Namespace, settings: Settings) -> int:
    try:
        platform, user_id = _person(args.person)
    except BadId as exc:
        return _fail(str(exc))
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        exported = await export(runtime.store, platform, user_id, _now())
        if not on_record(await runtime.store.person(platform, user_id)):
            print(f"quitbot: nothing is on record for {platform}:{user_id}", file=sys.stderr)
    print(json.dumps(exported, indent=2, ensure_ascii=False))
    return 0


async def _review_list(args: argparse.Namespace, settings: Settings) -> int:
    platform, community = args.platform, args.community
    try:
        if platform is not None:
            platform = _platform(platform)
        if community is not None and ":" in community:
            named, community = split_id(
                community, platform_names(), form=COMMUNITY, example=COMMUNITY_EXAMPLE
            )
            if platform not in {None, named}:
                return _fail(f"--community {args.community} is not on --platform {platform}")
            platform = named
    except BadId as exc:
        return _fail(str(exc))
    if args.would_end:
        args.platform, args.community = platform, community
        return await marks.would_end_list(args, settings)
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        items = await review_queue(
            runtime.engine, platform=platform, community=community, limit=args.limit
        )
    if args.json:
        print(json.dumps([_item_json(item) for item in items], indent=2, ensure_ascii=False))
    elif not items:
        print("Nothing to review.")
    else:
        print("\n\n".join(_describe(item) for item in items))
    return 0


async def _review_resolve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.operator import reopened_elsewhere

    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        conversation = await runtime.engine.get(args.id)
        if conversation is None:
            return _fail(f"no conversation with id {args.id!r}")
        if args.readmit or args.person or not conversation.ladder.ended:
            return await _resolve_shut_out(runtime.engine, conversation, args)
        if args.uphold and not await awaits_decision(runtime.engine, conversation):
            return _fail(
                f"nobody has called the end of {conversation.id} a mistake since it was last "
                "decided; there is nothing to uphold (review list shows what awaits a decision)"
            )
        try:
            await runtime.engine.review(
                conversation.id, args.by, reopen=args.reopen, note=args.note
            )
        except ConversationNotFound as exc:
            return _fail(str(exc))
    if args.reopen:
        print(f"{conversation.id} reopened in quitbot. {reopened_elsewhere(conversation)}")
    else:
        print(f"{conversation.id}: the end is upheld.")
    return 0


async def _resolve_shut_out(
    engine: Engine, conversation: Conversation, args: argparse.Namespace
) -> int:
    """Readmit someone shut out of the conversation, or uphold the shut-out they disputed."""
    disputed = await disputed_by(engine, conversation)
    person = args.person or (disputed[0] if len(disputed) == 1 else None)
    if person is None:
        if not disputed:
            return _fail(
                f"nobody shut out of {conversation.id} has called that a mistake since it was "
                "last decided (and it is not ended); --person USER_ID names whom to readmit"
            )
        return _fail(f"several people's shut-outs await; name one with --person ({disputed})")
    if args.uphold and person not in disputed:
        return _fail(
            f"{person} has not called their shut-out of {conversation.id} a mistake since it "
            "was last decided; there is nothing to uphold"
        )
    readmit = not args.uphold
    if not await engine.review_shut_out(
        conversation.id, person, args.by, readmit=readmit, note=args.note
    ):
        return _fail(f"{person} is not shut out of {conversation.id}")
    done = "readmitted: they may take part again" if readmit else "the shut-out is upheld"
    print(f"{conversation.id}: {person} {done}.")
    return 0


def _item_json(item: ReviewItem) -> dict[str, Any]:
    from bot.operator import conversation_json, message_json, participant_json

    return {
        **conversation_json(item.conversation),
        "stated_reason": item.stated_reason,
        "waiting_since": item.waiting_since.isoformat(),
        "feedback": [
            {"user_id": f.user_id, "text": f.text, "at": f.at.isoformat()} for f in item.feedback
        ],
        "last_messages": [message_json(m) for m in item.last_messages],
        "participants": [participant_json(u, p) for u, p in sorted(item.participants.items())],
        # null for the starter's end; else whose shut-out is disputed (feedback, stated
        # reason and last messages are then theirs)
        "shut_out_user_id": item.shut_out_user_id,
    }


def _describe(item: ReviewItem) -> str:
    c = item.conversation
    ended = f"{c.ladder.ended_by.value if c.ladder.ended_by else '?'}: {c.ladder.ended_reason}"
    if item.shut_out_user_id is not None:
        theirs = item.participants.get(item.shut_out_user_id)
        why = theirs.ended_reason if theirs else "?"
        ended = f"SHUT OUT: {item.shut_out_user_id} ({why}); the conversation is "
        ended += "ended" if c.ladder.ended else "active"
    else:
        ended = f"ended by {ended}; redirects {item.redirects}"
    lines = [
        f"{c.id} on {c.key.platform}, started by {c.user_id}; waiting since "
        f"{item.waiting_since:%Y-%m-%d %H:%M} UTC",
        f"  {ended}",
        f"  the model said: {item.stated_reason or '(no explanation)'}",
    ]
    for user_id, theirs in sorted(item.participants.items()):
        out = f", shut out ({theirs.ended_reason})" if theirs.ended else ""
        lines.append(f"  also writing: {user_id}, redirects {theirs.redirects}{out}")
    lines += [f"  feedback from {f.user_id}: {f.text}" for f in item.feedback]
    lines.append("  last messages:")
    for m in item.last_messages:
        text = " ".join(m.text.split()) or "(text removed)"
        lines.append(f"    {m.role}: {text[:200]}")
    return "\n".join(lines)


# --- per-community settings -------------------------------------------------------------


def _effective(settings: Settings, own: CommunitySettings) -> dict[str, Any]:
    defaults = settings.rules()
    rules = own.rules(defaults)
    return {
        "redirects_before_warning": rules.redirects_before_warning,
        "redirects_before_end": rules.redirects_before_end,
        "enforcement": "alert" if rules.alert_only else "end",
        "crisis_message": own.crisis_message or settings.crisis_message,
        "system_prompt_extra": (
            own.system_prompt_extra
            if own.system_prompt_extra is not None
            else settings.system_prompt_extra
        ),
        "tools": ",".join(own.tools if own.tools is not None else settings.tools),
        "texts": {**settings.words.overrides, **(own.texts or {})},
    }


def _text(given: str) -> tuple[str, str]:
    key, equals, words = given.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{given!r}: write KEY=WORDS, e.g. warning='Careful.'")
    return key.strip(), words


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


async def _community(store: Store, value: str) -> tuple[str, str]:
    """`platform:id`, or a bare id that one platform's community with settings has."""
    known = [(r.platform, r.community) for r in await store.communities()]
    return community_id(value, platform_names(), known)


async def _communities_show(args: argparse.Namespace, settings: Settings) -> int:
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        records = await runtime.store.communities()
        if args.community:
            try:
                wanted = await _community(runtime.store, args.community)
            except BadId as exc:
                return _fail(str(exc))
            others = len(records)
            records = [r for r in records if (r.platform, r.community) == wanted]
            if not records and not args.json:
                print(
                    f"{wanted[0]}:{wanted[1]} has no settings of its own; the process-wide "
                    f"settings apply there ({others} other communities have their own)."
                )
                return 0
    shown: list[dict[str, Any]] = [
        {
            "platform": r.platform,
            "community": r.community,
            "own": {k: v for k, v in asdict(r.settings).items() if v is not None},
            "effective": _effective(settings, r.settings),
            "updated_at": r.updated_at.isoformat(),
            "updated_by": r.updated_by,
        }
        for r in records
    ]
    if args.json:
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    if not shown:
        print("No community has settings of its own; the process-wide settings apply.")
        return 0
    for entry in shown:
        print(
            f"{entry['platform']}:{entry['community']} (by {entry['updated_by']}, "
            f"{entry['updated_at']})"
        )
        effective: dict[str, Any] = entry["effective"]
        for key, value in effective.items():
            mark = "own" if key in entry["own"] else "default"
            print(f"  {key} = {' '.join(str(value).split())[:120]} ({mark})")
    return 0


async def _communities_set(args: argparse.Namespace, settings: Settings) -> int:
    changes = CommunitySettings(
        args.redirects_before_warning,
        args.redirects_before_end,
        args.crisis_message,
        args.system_prompt_extra,
        args.enforcement,
        args.tool_names,
        dict(args.texts) if args.texts else None,
    )
    if changes == CommunitySettings():
        return _fail("nothing to set: give at least one --option (see --help)")
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        try:
            platform, community = await _community(runtime.store, args.community)
            updated = await runtime.engine.set_community_settings(
                platform, community, changes, args.by
            )
        except (BadId, BadCommunitySettings) as exc:
            return _fail(str(exc))
    own = ", ".join(f"{k}={v!r}" for k, v in asdict(updated).items() if v is not None)
    print(f"{platform}:{community} now has: {own}")
    return 0


async def _communities_reset(args: argparse.Namespace, settings: Settings) -> int:
    async with build_runtime(settings, model=UnconfiguredModel(), tools=args.registry) as runtime:
        try:
            platform, community = await _community(runtime.store, args.community)
        except BadId as exc:
            return _fail(str(exc))
        try:
            await runtime.engine.reset_community_settings(
                platform, community, args.by, args.setting
            )
        except BadCommunitySettings as exc:  # the other threshold, left alone, breaks the ladder
            return _fail(f"{args.setting} cannot go back to the process-wide value: {exc}")
    if args.setting is None:
        print(f"{platform}:{community} uses the process-wide settings again.")
    else:
        print(f"{platform}:{community} uses the process-wide {args.setting} again.")
    return 0
