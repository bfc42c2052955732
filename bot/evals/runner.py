"""Replays cases through the real flows and engine, with no platform: each case is one
conversation in a place of its own, its turns sent in order, several cases at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.conversation import Attachment, AuditEvent, Conversation, ConversationKey, FileRef, Inbound
from bot.evals.cases import STARTER, Case, Expected
from bot.evals.judge import Verdict, judge, passed
from bot.flows import Flows
from bot.logs import current_conversation
from bot.notices import Notice, NoticeKind
from bot.ports import NoObserver, Store, Usage

EVAL_PLATFORM = "eval"


class _Reply:
    """A reply nobody reads: the verdict comes from the audit trail, not the text."""

    async def thinking(self) -> None:
        return None

    async def text(self, delta: str) -> None:
        return None

    async def done(self) -> str:
        return ""

    async def close(self) -> None:
        return None


class EvalPlace:
    """Where every case's conversation lives: it shows nothing and closes nothing."""

    def reply(self) -> _Reply:
        return _Reply()

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        return ""

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        return None

    async def close(self, conversation: Conversation) -> None:
        return None

    async def reopen(self, conversation: Conversation) -> str:
        return ""

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
        key = ConversationKey(self.platform, f"eval-{case.id}")
        trail: list[tuple[int, AuditEvent]] = []
        conversation_id = ""
        sent = 0
        failed = 0
        for number, turn in enumerate(case.turns, start=1):
            inbound = Inbound(
                key=key,
                event_id=f"{case.id}#{number}",
                user_id=turn.author,
                text=turn.text,
                message_id=f"t{number}",
                community=self.community,
            )
            outcome = await self.flows.converse(inbound, self.place)
            sent = number
            if outcome.conversation is not None:
                conversation_id = outcome.conversation.id
            if any(n.kind is NoticeKind.MODEL_UNAVAILABLE for n in outcome.notices):
                failed = failed or number
            asked = any(n.kind is NoticeKind.CONFIRM_END for n in outcome.notices)
            if asked and case.expect is Expected.USER_END:
                # The person asked to end and says yes when the bot asks, as they would.
                await self.flows.confirm_end(key, STARTER, self.place, proposal=True)
            ended = await self._record(conversation_id, trail, number)
            if ended:
                break
        verdict = judge(trail, case.about)
        if failed and verdict.outcome is not None:
            # The turn broke before the model was asked (the trail says nothing of it): a
            # verdict without that turn would be a guess.
            verdict = Verdict(None, error=f"turn {failed} could not be handled (see the log)")
        return CaseResult(
            case,
            verdict,
            passed(verdict, case.expect, case.by),
            conversation_id,
            self.tally.by_conversation.get(conversation_id, Usage()),
            self.tally.calls.get(conversation_id, 0),
            time.monotonic() - started,
            sent,
        )

    async def _record(
        self, conversation_id: str, trail: list[tuple[int, AuditEvent]], turn: int
    ) -> bool:
        """Add the events this turn recorded to `trail`; True once the conversation ended."""
        if not conversation_id:
            return False
        events = await self.store.events(conversation_id)
        trail.extend((turn, event) for event in events[len(trail) :])
        conversation = await self.store.get(conversation_id)
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
