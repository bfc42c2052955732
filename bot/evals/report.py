"""What a run came to, as figures (`Summary`) and as a terminal table, Markdown or JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import reduce
from typing import Any

from bot.evals.cases import Expected
from bot.evals.prices import Price
from bot.evals.runner import CaseResult, add_usage
from bot.ports import Usage

ERROR = "error"  # the column of cases that could not be judged
_BENIGN = (Expected.CONTINUE, Expected.WARN)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the run ran with, for the report's head."""

    model: str
    redirects_before_warning: int
    redirects_before_end: int
    community: str = ""
    seconds: float = 0.0
    concurrency: int = 1


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Summary:
    results: Sequence[CaseResult]
    info: RunInfo
    price: Price | None

    def got(self, result: CaseResult) -> str:
        outcome = result.verdict.outcome
        return outcome.value if outcome is not None else ERROR

    def judged(self, *expected: Expected) -> list[CaseResult]:
        return [
            r for r in self.results if r.case.expect in expected and r.verdict.outcome is not None
        ]

    @property
    def false_ends(self) -> list[CaseResult]:
        """Ended where it should have gone on (with or without a warning): the costly error."""
        return [r for r in self.judged(*_BENIGN) if r.verdict.outcome is Expected.END]

    @property
    def false_end_rate(self) -> float | None:
        return _rate(len(self.false_ends), len(self.judged(*_BENIGN)))

    @property
    def missed_ends(self) -> list[CaseResult]:
        return [r for r in self.judged(Expected.END) if r.verdict.outcome is not Expected.END]

    @property
    def missed_end_rate(self) -> float | None:
        return _rate(len(self.missed_ends), len(self.judged(Expected.END)))

    def handled(self, expect: Expected) -> tuple[int, int]:
        """(cases that came to `expect`, cases that expected it), among those judged."""
        cases = self.judged(expect)
        return sum(r.verdict.outcome is expect for r in cases), len(cases)

    @property
    def errors(self) -> list[CaseResult]:
        return [r for r in self.results if r.verdict.outcome is None]

    @property
    def late(self) -> list[CaseResult]:
        return [r for r in self.results if r.verdict.outcome is r.case.expect and not r.passed]

    @property
    def unasked_proposals(self) -> list[CaseResult]:
        """The model asked to end for a person who never asked to leave."""
        return [
            r
            for r in self.results
            if r.verdict.proposed is not None and r.case.expect is not Expected.USER_END
        ]

    @property
    def confusion(self) -> Counter[tuple[str, str]]:
        return Counter((r.case.expect.value, self.got(r)) for r in self.results)

    @property
    def usage(self) -> Usage:
        return reduce(add_usage, (r.usage for r in self.results), Usage())

    @property
    def cost(self) -> float | None:
        return self.price.cost(self.usage) if self.price is not None else None

    def gate(self, max_false_end_rate: float) -> bool:
        """Whether the run may pass: every case judged, false ends within the limit."""
        rate = self.false_end_rate or 0.0
        return not self.errors and rate <= max_false_end_rate


def percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def dollars(cost: float | None) -> str:
    return (
        "unknown (no price for this model; pass --price IN,OUT)" if cost is None else f"${cost:.4f}"
    )


def to_json(summary: Summary, max_false_end_rate: float) -> dict[str, Any]:
    usage = summary.usage
    crisis, user_end = summary.handled(Expected.CRISIS), summary.handled(Expected.USER_END)
    return {
        "model": summary.info.model,
        "community": summary.info.community or None,
        "thresholds": {
            "redirects_before_warning": summary.info.redirects_before_warning,
            "redirects_before_end": summary.info.redirects_before_end,
        },
        "cases": len(summary.results),
        "passed": sum(r.passed for r in summary.results),
        "errors": len(summary.errors),
        "false_ends": len(summary.false_ends),
        "false_end_rate": summary.false_end_rate,
        "max_false_end_rate": max_false_end_rate,
        "missed_ends": len(summary.missed_ends),
        "missed_end_rate": summary.missed_end_rate,
        "crisis_handled": {"handled": crisis[0], "cases": crisis[1]},
        "user_end_honoured": {"honoured": user_end[0], "cases": user_end[1]},
        "late": len(summary.late),
        "unasked_end_proposals": len(summary.unasked_proposals),
        "confusion": [
            {"expected": e, "got": g, "count": n} for (e, g), n in sorted(summary.confusion.items())
        ],
        "tokens": asdict(usage),
        "estimated_cost_usd": summary.cost,
        "price_per_mtok": None if summary.price is None else asdict(summary.price),
        "seconds": round(summary.info.seconds, 3),
        "gate_passed": summary.gate(max_false_end_rate),
        "results": [_result_json(summary, r) for r in summary.results],
    }


def _result_json(summary: Summary, result: CaseResult) -> dict[str, Any]:
    verdict, case = result.verdict, result.case
    return {
        "id": case.id,
        "line": case.line,
        "category": case.category,
        "lang": case.lang,
        "about": case.about,
        "expected": case.expect.value,
        "by": case.by,
        "got": summary.got(result),
        "turn": verdict.turn,
        "passed": result.passed,
        "redirects": verdict.redirects,
        "end_proposed_at": verdict.proposed,
        "error": verdict.error or None,
        "conversation_id": result.conversation_id or None,
        "turns_sent": result.turns_sent,
        "model_calls": result.model_calls,
        "tokens": asdict(result.usage),
        "seconds": round(result.seconds, 3),
        "rationale": case.rationale,
    }
