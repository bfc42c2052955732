"""What `quitbot eval` costs to run: the real command over a cases file against the fake
Messages API on 127.0.0.1, its wall time and the child process's peak memory.

    .venv/bin/python bench/eval_bench.py [CASES.jsonl] [--concurrency 8] [--runs 3]

The fake answers at once, as a crude keyword judge: words of abuse or of a harmful request
get `note_concern` and a (mostly declined) `end_conversation`, words of risk a crisis flag,
a request to end `end_conversation` with `user_requested`; everything else a ~300-character
answer. So the run exercises the tool loop, the ladder, the store and the report as a real
one does; the verdicts it reports say nothing about Claude. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.anthropic import FakeAnthropic, Response, text, tool, tools  # noqa: E402

ANSWER = " ".join(["Here is a helpful, ordinary answer to that question."] * 6)
ABUSE = (
    "idiot",
    "garbage",
    "trash",
    "worthless",
    "useless",
    "slut",
    "bitch",
    "retard",
    "cockroach",
    "vermin",
    "basura",
    "abruti",
    "crap",
    "fat pig",
    "moron",
    "pathetic",
)
HARM = (
    "nerve agent",
    "bomb",
    "poison",
    "ransomware",
    "pathogen",
    "middle-school",
    "8th grade",
    "address of my ex",
    "track her",
    "chlorine gas",
    "gas them",
    "bomba",
    "detonatore",
    "tracker",
    "whatsapp",
    "fake bank",
    "instagram",
)
RISK = (
    "kill myself",
    "end it all",
    "sleeping pills",
    "cut myself",
    "stab him",
    "gun",
    "remédios",
    "bridge",
)
LEAVE = (
    "end this conversation",
    "end the conversation",
    "close this chat",
    "end our chat",
    "beende",
)


def _said(body: dict[str, Any]) -> tuple[str, bool]:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content.lower(), False
    answers = any(block.get("type") == "tool_result" for block in content)
    words = " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return words.lower(), answers


def judge(body: dict[str, Any]) -> Response:
    said, answers_tools = _said(body)
    if answers_tools:
        return text("Let's talk about something I can help with.")
    for words, kind, reason in (
        (RISK, "self_harm_risk", None),
        (HARM, "harmful_request", "persistent_harmful_requests"),
        (ABUSE, "abuse", "persistent_abuse"),
    ):
        if any(w in said for w in words):
            concern = ("note_concern", {"kind": kind, "note": "keyword"})
            if reason is None:
                return tool(*concern, text="I'm here with you.")
            end = ("end_conversation", {"reason": reason, "explanation": "keyword"})
            return tools([concern, end], text="I can't help with that.")
    if any(w in said for w in LEAVE):
        return tool("end_conversation", {"reason": "user_requested", "explanation": "asked"})
    return text(ANSWER)


async def one_run(
    cases: Path, concurrency: int, fake: FakeAnthropic
) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUITBOT_", "ANTHROPIC_"))}
        env.update(ANTHROPIC_API_KEY="bench-key", ANTHROPIC_BASE_URL=fake.base_url)
        env["QUITBOT_DATABASE_URL"] = f"sqlite:///{home}/never-used.db"
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "eval",
            str(cases),
            "--json",
            "--concurrency",
            str(concurrency),
            "--max-false-ends",
            "100%",
            cwd=home,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        seconds = time.monotonic() - started
    if process.returncode not in (0, 1):
        raise SystemExit(f"quitbot eval failed ({process.returncode}): {err.decode()}")
    return seconds, json.loads(out)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="?", default=str(ROOT / "eval" / "cases.jsonl"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    async with FakeAnthropic() as fake:
        fake.responder = judge
        runs = [await one_run(Path(args.cases), args.concurrency, fake) for _ in range(args.runs)]
        requests = len(fake.requests) // args.runs
    # Linux reports kilobytes: the largest resident set of any child waited for.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = runs[-1][1]
    print(f"cases {report['cases']}, model requests per run {requests}, runs {args.runs}")
    print(
        f"wall seconds per run: {', '.join(f'{s:.2f}' for s, _ in runs)} "
        f"(median {statistics.median(s for s, _ in runs):.2f}); in-run {report['seconds']} s"
    )
    print(f"peak RSS of quitbot eval: {peak_mib:.0f} MiB")
    print(
        f"tokens {report['tokens']}, fake judge: false ends {report['false_ends']}, "
        f"missed ends {report['missed_ends']}"
    )


if __name__ == "__main__":
    asyncio.run(main())
