"""Loaded through bench/gc_stats/sitecustomize.py (`--bots quitbot-gc=bench/gc_stats`):
counts the garbage collector's runs and CPU time per generation and writes them to
gc-stats.txt in the bot's working directory at exit, for e2e_bench.py to print."""

import atexit
import gc
import time
from pathlib import Path

_started: dict[int, tuple[float, float]] = {}
_long: list[str] = []  # gen2 runs and any over 5 ms, in order
_totals = {generation: [0, 0.0, 0.0] for generation in range(3)}  # runs, CPU s, longest wall


def _timed(phase: str, info: dict[str, int]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = (time.process_time(), time.perf_counter())
    else:
        cpu, wall = _started.get(generation, (0.0, 0.0))
        totals = _totals[generation]
        totals[0] += 1
        totals[1] += time.process_time() - cpu
        took = time.perf_counter() - wall
        totals[2] = max(totals[2], took)
        if generation == 2 or took > 0.005:
            _long.append(f"gen{generation} {took * 1000:.1f} ms ({info['collected']} freed)")


def _write() -> None:
    runs = "; ".join(
        f"gen{g}: {n} runs {s:.2f} s, longest {longest * 1000:.1f} ms"
        for g, (n, s, longest) in _totals.items()
    )
    cpu = time.process_time()
    Path("gc-stats.txt").write_text(
        f"GC {runs} of {cpu:.2f} s process CPU; {len(gc.get_objects())} objects tracked at exit; "
        f"in order: {', '.join(_long)}"
    )


gc.callbacks.append(_timed)
atexit.register(_write)
