"""GC statistics for a bot started with this directory on PYTHONPATH; see sitecustomize_stats."""

import sitecustomize_stats  # noqa: F401
