"""Replays cases through the real flows and engine, with no platform: each case is one
conversation in a place of its own, its turns sent in order, several cases at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.conversation import Attachment, AuditEvent, ConversationKey, FileRef, Inbound
from bot.evals.cases import STARTER, Case, Expected, Turn
from bot.evals.judge import Verdict, judge, passed
from bot.flows import Flows
from bot.logs import current_conversation
from bot.notices import NoticeKind
from bot.ports import NoObserver, QuietPlace, ReplyShown, Store, Usage

EVAL_PLATFORM = "eval"


class _Reply:
    """A reply nobody reads: the verdict comes from the audit trail, not the text."""

    async def thinking(self) -> None:
        return None

    async def text(self, delta: str) -> None:
        return None

    def track(self, answering: str, shown: ReplyShown) -> None:
        return None

    async def done(self) -> str:
        return ""

    async def close(self) -> None:
        return None


class EvalPlace(QuietPlace):
    """Where every case's conversation lives: it shows nothing and closes nothing."""

    def reply(self) -> _Reply:
        return _Reply()

    def place(self, key: ConversationKey) -> EvalPlace:
        return self

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        return tuple(file.unread() for file in files)


class UsageTally(NoObserver):
    """Adds up each model call's tokens by the conversation it was made for (the engine
    names it in the logging context while a turn runs), so cases run at once stay apart."""

    def __init__(self) -> None:
        self.by_conversation: dict[str, Usage] = {}
        self.calls: dict[str, int] = {}

    def model_call(self, first_token: float | None, total: float, usage: Usage) -> None:
        key = current_conversation() or ""
        self.by_conversation[key] = add_usage(self.by_conversation.get(key, Usage()), usage)
        self.calls[key] = self.calls.get(key, 0) + 1


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cache_read_tokens + b.cache_read_tokens,
        a.cache_write_tokens + b.cache_write_tokens,
    )


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    verdict: Verdict
    passed: bool
    conversation_id: str = ""
    usage: Usage = field(default_factory=Usage)
    model_calls: int = 0
    seconds: float = 0.0
    turns_sent: int = 0


@dataclass(slots=True)
class _Replayed:
    """How far one case's replay has come."""

    trail: list[tuple[int, AuditEvent]] = field(default_factory=list)
    conversation_id: str = ""
    sent: int = 0
    failed: int = 0  # the first turn that could not be handled, if any

    def verdict(self, case: Case) -> Verdict:
        verdict = judge(self.trail, case.about)
        if self.failed and verdict.outcome is not None:
            # The turn broke before the model was asked (the trail says nothing of it): a
            # verdict without that turn would be a guess.
            return Verdict(None, error=f"turn {self.failed} could not be handled (see the log)")
        return verdict


@dataclass(slots=True)
class Replay:
    """Everything a run shares: the flows over the engine, its store, the token tally."""

    flows: Flows
    store: Store
    tally: UsageTally
    platform: str = EVAL_PLATFORM
    community: str = ""
    place: EvalPlace = field(default_factory=EvalPlace)

    async def run(self, case: Case) -> CaseResult:
        started = time.monotonic()
        so_far = _Replayed()
        for number, turn in enumerate(case.turns, start=1):
            if await self._send(case, number, turn, so_far):
                break
        verdict = so_far.verdict(case)
        conversation_id = so_far.conversation_id
        return CaseResult(
            case,
            verdict,
            passed(verdict, case.expect, case.by),
            conversation_id,
            self.tally.by_conversation.get(conversation_id, Usage()),
            self.tally.calls.get(conversation_id, 0),
            time.monotonic() - started,
            so_far.sent,
        )

    async def _send(self, case: Case, number: int, turn: Turn, so_far: _Replayed) -> bool:
        """Send one turn (and confirm an end the person asked for); True once it ended."""
        key = ConversationKey(self.platform, f"eval-{case.id}")
        inbound = Inbound(
            key=key,
            event_id=f"{case.id}#{number}",
            user_id=turn.author,
            text=turn.text,
            message_id=f"t{number}",
            community=self.community,
        )
        outcome = await self.flows.converse(inbound, self.place)
        so_far.sent = number
        if outcome.conversation is not None:
            so_far.conversation_id = outcome.conversation.id
        shown = {notice.kind for notice in outcome.notices}
        if NoticeKind.MODEL_UNAVAILABLE in shown:
            so_far.failed = so_far.failed or number
        if NoticeKind.CONFIRM_END in shown and case.expect is Expected.USER_END:
            # The person asked to end and says yes when the bot asks, as they would.
            await self.flows.confirm_end(key, STARTER, self.place, proposal=True)
        return await self._record(so_far, number)

    async def _record(self, so_far: _Replayed, turn: int) -> bool:
        """Add the events this turn recorded to the trail; True once the conversation ended."""
        if not so_far.conversation_id:
            return False
        events = await self.store.events(so_far.conversation_id)
        so_far.trail.extend((turn, event) for event in events[len(so_far.trail) :])
        conversation = await self.store.get(so_far.conversation_id)
        return conversation is not None and conversation.ladder.ended


async def run_all(
    replay: Replay,
    cases: Sequence[Case],
    concurrency: int,
    done: Callable[[CaseResult], None] = lambda _: None,
) -> list[CaseResult]:
    """Every case's result, in the cases' order; `done` hears of each as it finishes."""
    queue: asyncio.Queue[tuple[int, Case]] = asyncio.Queue()
    for item in enumerate(cases):
        queue.put_nowait(item)
    results: list[CaseResult | None] = [None] * len(cases)

    async def worker() -> None:
        while not queue.empty():
            index, case = queue.get_nowait()
            results[index] = result = await replay.run(case)
            done(result)

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(concurrency, len(cases)))):
            group.create_task(worker())
    return [r for r in results if r is not None]
