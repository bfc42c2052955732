"""Where a py-spy profile's samples went, by thread and function (issue 22, fifth round).

    .venv/bin/python bench/py_spy_report.py /tmp/spy/quitbot-slack.txt [top] [--modules]
    .venv/bin/python bench/py_spy_report.py PROFILE 40 --under ClaudeModel.reply

Reads `py-spy record --format raw` output (collapsed stacks, as `e2e_bench.py --py-spy` writes
them). For each thread: each function's own samples (self) and the samples it was on the
stack for (inclusive), or with `--modules` the self samples by library / quitbot module.
`--under NAME` keeps only the stacks through a function whose frame starts with NAME.
py-spy counts a thread waiting for the GIL as busy (`--nonblocking`), so these are wall
samples: a frame that releases the GIL (a socket write, an SQLite step) collects the wait.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_THREAD = re.compile(r"thread \(\d+\): ")
_LINE = re.compile(r":\d+\)$")
_FILE = re.compile(r"\(([^)]*)\)$")


def read(path: Path, under: str) -> list[tuple[str, list[str], int]]:
    """(thread, frames outermost first without line numbers, samples) for each stack."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        frames = [_LINE.sub(")", frame) for frame in frames]
        if under and not any(frame.startswith(under) for frame in frames):
            continue
        name = re.sub(r"_\d+$", "", _THREAD.sub("", thread).strip())  # pool threads as one
        stacks.append((name, frames, int(count)))
    return stacks


def module(frame: str) -> str:
    """A frame's library, or its quitbot module (`bot/context.py`)."""
    found = _FILE.search(frame)
    where = found.group(1).split(":")[0] if found else "?"
    parts = where.split("/")
    return "/".join(parts[:2]) if parts[0] in ("bot", "platforms") else parts[0]


def report(stacks: list[tuple[str, list[str], int]], top: int, modules: bool) -> None:
    own: dict[str, Counter[str]] = defaultdict(Counter)
    on_stack: dict[str, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for thread, frames, count in stacks:
        total[thread] += count
        leaf = frames[-1] if frames else "<no Python frame>"
        own[thread][module(leaf) if modules and frames else leaf] += count
        for frame in set(frames):
            on_stack[thread][frame] += count
    for thread, samples in total.most_common():
        print(f"=== {thread}: {samples} samples")
        sections = [("self", own)] if modules else [("self", own), ("inclusive", on_stack)]
        for title, table in sections:
            print(f"  -- {title}")
            for name, count in table[thread].most_common(top):
                print(f"  {count:7d} {100 * count / samples:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("top", type=int, nargs="?", default=30)
    parser.add_argument("--modules", action="store_true", help="self samples by module")
    parser.add_argument("--under", default="", help="only stacks through this function")
    args = parser.parse_args()
    report(read(args.profile, args.under), args.top, args.modules)


if __name__ == "__main__":
    main()
