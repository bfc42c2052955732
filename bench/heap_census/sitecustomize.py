"""A heap census in a bot started with this directory on PYTHONPATH (`--bots
quitbot-census=bench/heap_census`), taken on SIGUSR1: e2e_bench.py sends one after each RSS
reading of `--distinct` when BENCH_CENSUS_DIR is set, and waits for the file.

Each census (BENCH_CENSUS_DIR/census-PID-N.txt): the objects the collector tracks, by type,
count and shallow bytes (those made after start-up: the bot freezes the rest); pymalloc's
arenas and free blocks; glibc's main arena, and every arena at once (`malloc_info`);
VmRSS, RssAnon and the threads; each aiohttp connector's limits, keep-alive and idle
connections by host; the peers of the open sockets. With BENCH_CENSUS_TRIM set, it then
runs glibc's `malloc_trim(0)` and adds what that gave back and how long it took (the next
pass then starts trimmed). Compare two with `python bench/heap_census/compare.py A B`.

With BENCH_CENSUS_SAMPLE=SECONDS, a thread also writes, that often, the process's RssAnon,
glibc's main arena (its size and bytes in use) and pymalloc's blocks in use to
BENCH_CENSUS_DIR/samples-PID.txt: where a pass's peak lies, and how high, which the
censuses after each pass cannot show.
"""

import collections
import contextlib
import ctypes
import gc
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

_taken = [0]


def _pymalloc() -> list[str]:
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        wanted = ("# arenas allocated current", "# bytes in available blocks")
        return [f"pymalloc {line}" for line in out.read().splitlines() if line.startswith(wanted)]


_MALLINFO2 = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
_MALLINFO2 += ("uordblks", "fordblks", "keepcost")


def _glibc() -> str:
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return f"malloc main arena {info.arena} in use {info.uordblks} free {info.fordblks}"


def _malloc_info() -> str:
    """Every glibc arena at once (mallinfo2 sees the main one only): the heaps' sizes,
    the bytes the arenas hold free, and how many arenas there are."""
    libc = ctypes.CDLL("libc.so.6")
    libc.fdopen.restype = ctypes.c_void_p
    libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryFile("w+b") as out:
        stream = libc.fdopen(os.dup(out.fileno()), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        out.seek(0)
        xml = out.read().decode()
    tail = xml[xml.rfind("</heap>") :]
    wanted = ('<total type="fast"', '<total type="rest"', "<system ", "<aspace ")
    totals = [line.strip() for line in tail.splitlines() if line.strip().startswith(wanted)]
    return f"malloc_info arenas {xml.count('<heap nr=')} " + " ".join(totals)


def _process() -> str:
    status = Path("/proc/self/status").read_text().splitlines()
    fields = [line for line in status if line.startswith(("VmRSS", "RssAnon", "Threads"))]
    return " ".join(" ".join(line.split()) for line in fields)


def _pools() -> str:
    """Each aiohttp connector's idle connections by host and its connections in use."""
    shown = []
    for thing in gc.get_objects():
        if type(thing).__name__ in ("TCPConnector", "BaseConnector"):
            idle = {str(key.host) + ":" + str(key.port): len(v) for key, v in thing._conns.items()}
            shown.append(
                f"{type(thing).__name__}(limit={thing.limit}, "
                f"per_host={thing.limit_per_host}, keepalive={thing._keepalive_timeout}, "
                f"idle={idle}, acquired={len(thing._acquired)})"
            )
    return "pools " + "; ".join(shown)


def _census(signum: int, frame: object) -> None:
    gc.collect()
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    peers: collections.Counter[str] = collections.Counter()
    for thing in gc.get_objects():
        kind = type(thing)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(thing)
        if name == "socket.socket":
            with contextlib.suppress(OSError):
                peers[str(thing.getpeername())] += 1  # type: ignore[attr-defined]
    lines = [*_pymalloc(), _glibc(), _malloc_info(), _process(), _pools()]
    lines.append(f"sockets by peer {dict(peers)}")
    lines += [f"{sizes[name]:>12} {counts[name]:>9} {name}" for name, _ in sizes.most_common(200)]
    path = f"{os.environ['BENCH_CENSUS_DIR']}/census-{os.getpid()}-{_taken[0]}.txt"
    _taken[0] += 1
    if os.environ.get("BENCH_CENSUS_TRIM"):  # what malloc_trim(0) would give back, and its cost
        import time

        started = time.perf_counter()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        spent = (time.perf_counter() - started) * 1000
        lines.insert(5, f"after malloc_trim(0) ({spent:.2f} ms): {_process()} {_malloc_info()}")
    with open(path + ".part", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.rename(path + ".part", path)


def _sample(every: float) -> None:
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    path = f"{os.environ['BENCH_CENSUS_DIR']}/samples-{os.getpid()}.txt"
    started = time.monotonic()
    with open(path, "w", buffering=1) as out:
        out.write("seconds rss_anon_kb glibc_arena glibc_in_use pymalloc_blocks\n")
        while True:
            status = Path("/proc/self/status").read_text()
            anon = status.split("RssAnon:", 1)[1].split()[0]
            info = libc.mallinfo2()
            blocks = sys.getallocatedblocks()
            elapsed = time.monotonic() - started
            out.write(f"{elapsed:.1f} {anon} {info.arena} {info.uordblks} {blocks}\n")
            time.sleep(every)


signal.signal(signal.SIGUSR1, _census)
if os.environ.get("BENCH_CENSUS_SAMPLE"):
    every = float(os.environ["BENCH_CENSUS_SAMPLE"])
    threading.Thread(target=_sample, args=(every,), daemon=True, name="census-sample").start()
