"""The gc.freeze() experiment (`--bots quitbot-freeze=bench/gc_freeze`): GC statistics as in
bench/gc_stats, and 12 s after start (once quitbot has connected and imported everything)
a full collection and gc.freeze(), which moves every object alive then out of the
collector's reach. What quitbot's composition root would do once start-up is over."""

import gc
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gc_stats"))
import sitecustomize_stats  # noqa: F401


def _freeze() -> None:
    gc.collect()
    gc.freeze()


threading.Timer(12.0, _freeze).start()
