"""Loaded through bench/gc_stats/sitecustomize.py (`--bots quitbot-gc=bench/gc_stats`):
counts the garbage collector's runs and CPU time per generation and writes them to
gc-stats.txt in the bot's working directory at exit, for e2e_bench.py to print."""

import atexit
import gc
import time
from pathlib import Path

_started: dict[int, float] = {}
_totals = {generation: [0, 0.0] for generation in range(3)}


def _timed(phase: str, info: dict[str, int]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.process_time()
    else:
        _totals[generation][0] += 1
        _totals[generation][1] += time.process_time() - _started.get(generation, 0.0)


def _write() -> None:
    runs = "; ".join(f"gen{g}: {n} runs {s:.2f} s" for g, (n, s) in _totals.items())
    cpu = time.process_time()
    Path("gc-stats.txt").write_text(
        f"GC {runs} of {cpu:.2f} s process CPU; {len(gc.get_objects())} objects tracked at exit"
    )


gc.callbacks.append(_timed)
atexit.register(_write)
