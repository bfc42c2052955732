"""Make `bot` and `platforms` mean quitbot's own packages, whatever the working directory.

quitbot's core lives in the top-level packages `bot` and `platforms`. A discord.py project
very often has its own `bot.py`, and `python bot.py` puts that file's directory first on
`sys.path`, so a plain `import bot` would find the project's file instead of quitbot's core.
Importing `quitbot` first loads the core from where this distribution installed it, so the
core's own `from bot... import` lines find it in `sys.modules` from then on.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

# Both top-level packages are installed beside this one (site-packages, or the source tree
# of an editable install).
_HOME = Path(__file__).resolve().parent.parent


class ShadowedCore(ImportError):
    """Something other than quitbot's core was imported as `bot` or `platforms` first."""


def load_core() -> None:
    for name in ("bot", "platforms"):
        loaded = sys.modules.get(name)
        if loaded is None:
            _load(name)
        elif not _is_ours(loaded.__file__):
            raise ShadowedCore(
                f"a module named {name!r} was imported from {loaded.__file__} before quitbot, "
                f"so quitbot's own {name!r} package cannot load. Import quitbot first, or "
                f"rename your module (e.g. {name}.py -> my_{name}.py)."
            )


def _is_ours(file: str | None) -> bool:
    return file is not None and Path(file).resolve().parent.parent == _HOME


def _load(name: str) -> None:
    spec = importlib.machinery.PathFinder.find_spec(name, [str(_HOME)])
    if spec is None or spec.loader is None:
        raise ImportError(f"quitbot's {name!r} package is missing from {_HOME}; reinstall quitbot")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
