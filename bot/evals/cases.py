"""The labelled conversations `quitbot eval` replays: one JSON object per line.

    {"id": "abuse-01", "expect": "end", "by": 5, "category": "persistent abuse",
     "lang": "en", "rationale": "insults that go on after the warning",
     "turns": ["first message", "second", {"from": "bob", "text": "someone else"}]}

A turn is a string (the person who started the conversation wrote it) or an object naming
who wrote it (`from`; "starter" is the person who started it). `about` names whose outcome
is judged (default the starter): in a shared place, the case of a third person who abuses
is about them. `by` is the turn (counted from 1 over all turns) by which the expected
outcome must have happened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

STARTER = "starter"


class Expected(StrEnum):
    """What a case should come to for the person it is about, mildest first."""

    CONTINUE = "continue"
    WARN = "warn"
    END = "end"
    CRISIS = "crisis"
    USER_END = "user_end"


@dataclass(frozen=True, slots=True)
class Turn:
    author: str  # STARTER or another participant's name
    text: str


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    turns: tuple[Turn, ...]
    expect: Expected
    rationale: str
    by: int | None = None
    about: str = STARTER
    category: str = "uncategorised"
    lang: str = "en"
    line: int = 0

    @property
    def shared(self) -> bool:
        return any(turn.author != STARTER for turn in self.turns)


class CasesError(Exception):
    """A cases file that cannot be replayed: one `file:line: problem` per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


_KEYS = {"id", "turns", "expect", "rationale", "by", "about", "category", "lang"}
_REQUIRED = ("id", "turns", "expect", "rationale")


def load_cases(path: Path) -> list[Case]:
    """Every case in the file, in order; raises CasesError naming each problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CasesError([f"{path}: cannot read it: {exc}"]) from exc
    cases: list[Case] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        case, found = parse_case(raw, number)
        problems += [f"{path}:{number}: {p}" for p in found]
        if case is None:
            continue
        if case.id in seen:
            problems.append(
                f"{path}:{number}: id {case.id!r} is already used on line {seen[case.id]}"
            )
            continue
        seen[case.id] = number
        cases.append(case)
    if not cases and not problems:
        problems.append(f"{path}: no cases in it (one JSON object per line)")
    if problems:
        raise CasesError(problems)
    return cases


def parse_case(raw: str, line: int = 0) -> tuple[Case | None, list[str]]:
    """One line as a case, or the problems that stop it being one."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [f"not JSON: {exc.msg} (column {exc.colno})"]
    if not isinstance(data, dict):
        return None, ["a case must be a JSON object"]
    problems = [f"missing {key!r}" for key in _REQUIRED if key not in data]
    problems += [f"unknown key {key!r}" for key in sorted(set(data) - _KEYS)]
    turns, turn_problems = _turns(data.get("turns", []))
    problems += turn_problems
    problems += _field_problems(data, turns)
    if problems:
        return None, problems
    return (
        Case(
            id=data["id"],
            turns=turns,
            expect=Expected(data["expect"]),
            rationale=data["rationale"],
            by=data.get("by"),
            about=data.get("about", STARTER),
            category=data.get("category", "uncategorised"),
            lang=data.get("lang", "en"),
            line=line,
        ),
        [],
    )


def _turns(value: Any) -> tuple[tuple[Turn, ...], list[str]]:
    if not isinstance(value, list) or not value:
        return (), ["'turns' must be a non-empty list"]
    turns: list[Turn] = []
    problems: list[str] = []
    for index, item in enumerate(value, start=1):
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or set(item) - {"from", "text"}:
            problems.append(f"turn {index}: a string, or an object with 'text' and 'from'")
            continue
        author, text = item.get("from", STARTER), item.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"turn {index}: 'text' must be a non-empty string")
        elif not isinstance(author, str) or not author.strip():
            problems.append(f"turn {index}: 'from' must be a non-empty string")
        else:
            turns.append(Turn(author, text))
    return tuple(turns), problems


def _field_problems(data: dict[str, Any], turns: tuple[Turn, ...]) -> list[str]:
    problems: list[str] = []
    if "id" in data and (not isinstance(data["id"], str) or not data["id"].strip()):
        problems.append("'id' must be a non-empty string")
    if "expect" in data and data["expect"] not in set(Expected):
        choices = ", ".join(e.value for e in Expected)
        problems.append(f"'expect' is {data['expect']!r}; it must be one of {choices}")
    rationale = data.get("rationale", "")
    if not isinstance(rationale, str) or not rationale.strip() or "\n" in rationale:
        problems.append("'rationale' must be one non-empty line")
    for key in ("category", "lang"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            problems.append(f"{key!r} must be a non-empty string")
    by = data.get("by")
    if by is not None and (isinstance(by, bool) or not isinstance(by, int) or by < 1):
        problems.append("'by' must be a turn number (1 or more)")
    elif by is not None and turns and by > len(turns):
        problems.append(f"'by' is turn {by}, but the case has {len(turns)} turns")
    about = data.get("about", STARTER)
    authors = {turn.author for turn in turns} | {STARTER}
    if not isinstance(about, str) or (turns and about not in authors):
        problems.append(f"'about' is {about!r}, who writes none of the turns")
    return problems
