"""`quitbot eval CASES.jsonl`: replay labelled conversations through the real engine and
the configured Claude model, and report how it judged them.

The replay runs on a throw-away in-memory database, so nothing it does reaches the
operator's: no conversation, audit event or limit of theirs changes. With `--community`
the community's own settings are read from the operator's database and copied into it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bot.adapters import platform_names
from bot.app import NO_KEY, build_runtime
from bot.communities import CommunitySettings
from bot.evals.cases import Case, CasesError, load_cases
from bot.evals.prices import Price, parse_price, price_for
from bot.evals.render import markdown, terminal
from bot.evals.report import RunInfo, Summary, to_json
from bot.evals.runner import EVAL_PLATFORM, CaseResult, EvalPlace, Replay, UsageTally, run_all
from bot.flows import Flows
from bot.ids import COMMUNITY, COMMUNITY_EXAMPLE, BadId, split_id
from bot.progress import Progress
from bot.settings import Settings
from bot.store import open_store

THROWAWAY_DATABASE = "sqlite:///:memory:"


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `eval` to the `quitbot` parser."""
    parser = commands.add_parser(
        "eval", help="replay labelled conversations and measure how the configured model judges"
    )
    parser.add_argument("cases", metavar="CASES.jsonl", help="one labelled case per line")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--report", metavar="OUT.md", help="also write the report as Markdown")
    parser.add_argument(
        "--community", metavar="PLATFORM:COMMUNITY_ID", help="run with that community's settings"
    )
    parser.add_argument(
        "--concurrency", type=_positive, default=4, metavar="N", help="cases at once (default 4)"
    )
    parser.add_argument(
        "--max-false-ends",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="exit 1 when the false-end rate is above this (0.05 or 5%%; default 0)",
    )
    parser.add_argument(
        "--price", type=_price, metavar="IN,OUT", help="USD per million tokens, for the estimate"
    )
    parser.set_defaults(handler=evaluate)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _rate(value: str) -> float:
    try:
        rate = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a rate (0.05 or 5%)") from None
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not between 0 and 1 (0% and 100%)")
    return rate


def _price(value: str) -> Price:
    try:
        return parse_price(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        cases = load_cases(Path(args.cases))
    except CasesError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2
    if settings.anthropic_api_key is None:
        print(f"quitbot: {NO_KEY}", file=sys.stderr)
        return 2
    if args.report and not Path(args.report).parent.is_dir():
        # Found out before the run, not after paying for it.
        print(f"quitbot: no folder to write {args.report} in", file=sys.stderr)
        return 2
    where = EVAL_PLATFORM, ""
    if args.community:
        try:
            where = split_id(
                args.community, platform_names(), form=COMMUNITY, example=COMMUNITY_EXAMPLE
            )
        except BadId as exc:
            print(f"quitbot: {exc}", file=sys.stderr)
            return 2
    own = await _community_settings(settings, *where) if args.community else CommunitySettings()
    started = time.monotonic()
    results = await _replay(settings, cases, where, own, args.concurrency)
    defaults = settings.rules()
    rules = own.rules(defaults)
    info = RunInfo(
        settings.model,
        rules.redirects_before_warning,
        rules.redirects_before_end,
        args.community or "",
        time.monotonic() - started,
        args.concurrency,
    )
    return _show(Summary(results, info, args.price or price_for(settings.model)), args)


async def _replay(
    settings: Settings,
    cases: list[Case],
    where: tuple[str, str],
    own: CommunitySettings,
    concurrency: int,
) -> list[CaseResult]:
    """Every case replayed on a throw-away database, in the community `where` names."""
    platform, community = where
    tally = UsageTally()
    progress = Progress("evaluating", len(cases))
    # Every case is someone new: the daily limit on ends would refuse later cases.
    throwaway = settings.model_copy(
        update={"database_url": THROWAWAY_DATABASE, "max_ended_per_day": 0}
    )
    async with build_runtime(throwaway, observer=tally) as runtime:
        if own != CommunitySettings():
            await runtime.engine.set_community_settings(platform, community, own, "quitbot-eval")
        flows = Flows(runtime.engine, platform, EvalPlace())
        replay = Replay(flows, runtime.store, tally, platform, community)
        results = await run_all(replay, cases, concurrency, _counting(progress))
    progress.finish()
    return results


def _counting(progress: Progress) -> Callable[[CaseResult], None]:
    """Each finished case steps the progress line, which says how many went wrong so far."""
    wrong = 0

    def done(result: CaseResult) -> None:
        nonlocal wrong
        wrong += not result.passed
        progress.step(note=f"({wrong} not as expected)" if wrong else "")

    return done


def _show(summary: Summary, args: argparse.Namespace) -> int:
    limit: float = args.max_false_ends
    if args.json:
        print(json.dumps(to_json(summary, limit), indent=2, ensure_ascii=False))
    else:
        print(terminal(summary, limit))
    if args.report:
        try:
            Path(args.report).write_text(markdown(summary, limit), encoding="utf-8")
        except OSError as exc:
            print(f"quitbot: could not write the report: {exc}", file=sys.stderr)
            return 2
    return 0 if summary.gate(limit) else 1


async def _community_settings(
    settings: Settings, platform: str, community: str
) -> CommunitySettings:
    """A community's own settings as the operator's database holds them; only read (opening
    it migrates it, as every command does)."""
    store = await open_store(settings.database)
    try:
        own = await store.community_settings(platform, community)
    finally:
        await store.close()
    if own is None:
        print(
            f"quitbot: {platform}:{community} has no settings of its own; "
            "the process-wide settings apply",
            file=sys.stderr,
        )
    return own or CommunitySettings()
