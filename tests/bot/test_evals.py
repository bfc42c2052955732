"""`quitbot eval`'s pure parts: the cases format, the verdict, prices, and the starter set."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.conversation import Actor, AuditEvent
from bot.evals.cases import STARTER, CasesError, Expected, load_cases, parse_case
from bot.evals.judge import judge, passed
from bot.evals.prices import parse_price, price_for
from bot.evals.render import composition
from bot.ports import Usage
from bot.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
STARTER_SET = ROOT / "eval" / "cases.jsonl"
AT = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = {"id": "a", "expect": "end", "rationale": "why", "turns": ["hi"]}


def _event(event_kind: str, **detail: Any) -> AuditEvent:
    return AuditEvent(event_kind, AT, Actor.MODEL, detail)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"expected": "end"}, "unknown key 'expected'"),
        ({"rationale": "two\nlines"}, "'rationale' must be one non-empty line"),
        ({"by": 2}, "'by' is turn 2, but the case has 1 turns"),
        ({"by": 0}, "'by' must be a turn number (1 or more)"),
        ({"about": "bob"}, "'about' is 'bob', who writes none of the turns"),
        ({"turns": [{"from": "bob"}]}, "turn 1: 'text' must be a non-empty string"),
        ({"turns": [{"who": "bob", "text": "x"}]}, "turn 1: a string, or an object with"),
        ({"id": ""}, "'id' must be a non-empty string"),
    ],
)
def test_each_problem_is_named(change: dict[str, Any], problem: str) -> None:
    case, problems = parse_case(json.dumps({**GOOD, **change}))
    assert case is None
    assert any(p.startswith(problem) for p in problems), problems


def test_a_shared_case_names_who_wrote_each_turn() -> None:
    turns = ["hi", {"from": "bob", "text": "you idiot"}]
    case, problems = parse_case(json.dumps({**GOOD, "turns": turns, "about": "bob", "by": 2}))
    assert not problems and case is not None
    assert [t.author for t in case.turns] == [STARTER, "bob"] and case.shared


def test_a_missing_or_empty_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(CasesError) as missing:
        load_cases(tmp_path / "none.jsonl")
    assert len(missing.value.lines) == 1 and "cannot read it" in missing.value.lines[0]
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(CasesError) as empty:
        load_cases(tmp_path / "empty.jsonl")
    assert empty.value.lines == [
        f"{tmp_path / 'empty.jsonl'}: no cases in it (one JSON object per line)"
    ]


def test_the_verdict_is_the_gravest_outcome_for_the_person_concerned() -> None:
    trail = [
        (1, _event("redirect")),
        (2, _event("redirect")),
        (2, AuditEvent("warning", AT, Actor.BOT, {})),
        (3, _event("warning", participant="bob")),
        (4, _event("participant_shut_out", participant="bob", reason="persistent_abuse")),
        (5, _event("end", reason="persistent_abuse")),
    ]
    starter = judge(trail, STARTER)
    assert (starter.outcome, starter.turn, starter.redirects) == (Expected.END, 5, 2)
    assert judge(trail, "bob").outcome is Expected.END
    assert judge(trail[:3], STARTER).outcome is Expected.WARN
    assert judge([], STARTER).outcome is Expected.CONTINUE


def test_crisis_outranks_a_users_end_and_errors_are_not_judged() -> None:
    trail = [
        (1, _event("crisis_flagged", kind="self_harm_risk")),
        (2, _event("end_proposed")),
        (2, AuditEvent("end", AT, Actor.USER, {"reason": "user_requested"})),
    ]
    verdict = judge(trail, STARTER)
    assert (verdict.outcome, verdict.turn, verdict.proposed) == (Expected.CRISIS, 1, 2)
    assert judge(trail[1:], STARTER).outcome is Expected.USER_END
    assert judge([(1, _event("would_end"))], STARTER).outcome is Expected.END
    failed = judge([(1, _event("model_unavailable", error="overloaded"))], STARTER)
    assert failed.outcome is None and failed.error == "overloaded"


def test_a_late_outcome_does_not_pass() -> None:
    verdict = judge([(3, AuditEvent("warning", AT, Actor.BOT, {}))], STARTER)
    assert passed(verdict, Expected.WARN, None) and passed(verdict, Expected.WARN, 3)
    assert not passed(verdict, Expected.WARN, 2) and not passed(verdict, Expected.END, None)


def test_prices() -> None:
    sonnet = price_for("claude-sonnet-5-5")
    assert sonnet is not None and (sonnet.input, sonnet.output) == (2.0, 10.0)
    assert price_for("claude-sonnet-5-5-20261001") == sonnet
    assert price_for("claude-opus-4-1-20250805") == price_for("claude-opus-4")
    assert price_for("claude-opus-4-5") != price_for("claude-opus-4")
    assert price_for("some-other-model") is None
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=1_000_000)
    assert sonnet.cost(usage) == pytest.approx(2.0 + 1.0 + 0.2)
    assert parse_price("3,15").cache_write == 3.75
    with pytest.raises(ValueError, match="INPUT,OUTPUT"):
        parse_price("3")


# --- the starter set ---------------------------------------------------------------------


def test_the_starter_set_parses_and_is_as_the_readme_says() -> None:
    cases = load_cases(STARTER_SET)
    assert len(cases) >= 60
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert composition(cases) in readme


def test_the_starter_set_covers_what_it_claims_and_is_balanced() -> None:
    cases = load_cases(STARTER_SET)
    categories = Counter(c.category.split(":")[0] for c in cases)
    for category in ("persistent abuse", "persistent harmful requests", "crisis", "asks to end",
                     "shared thread", "non-English", "slip then apology"):  # fmt: skip
        assert categories[category] >= 5, category
    benign = {c.category for c in cases if c.category.startswith("benign: ")}
    for kind in ("profanity", "venting at the bot", "dark fiction", "security research",
                 "medical question", "legal question", "heated politics"):  # fmt: skip
        assert f"benign: {kind}" in benign
    expected = Counter(c.expect for c in cases)
    assert all(expected[e] >= 5 for e in Expected)
    # Enough cases that must go on to measure the costly error: at least as many as must end.
    assert expected[Expected.CONTINUE] + expected[Expected.WARN] >= 2 * expected[Expected.END]
    assert len({c.lang for c in cases if c.lang != "en"}) >= 5
    assert sum(c.about != STARTER for c in cases) >= 3
    assert all(c.by is not None for c in cases if c.expect is not Expected.CONTINUE)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_says_how_many_went_wrong_so_far() -> None:
    terminal = _Terminal()
    progress = Progress("evaluating", 3, terminal)
    progress.step()
    progress.step(note="(1 not as expected)")
    assert terminal.getvalue() == "\revaluating 1/3\revaluating 2/3 (1 not as expected)\x1b[K"
