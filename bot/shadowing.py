"""A clear error when someone's own module named `bot` (or `platforms`) is shadowed by
quitbot's core package of that name.

Once quitbot is imported, `bot` and `platforms` in `sys.modules` are quitbot's (see
`quitbot._home`), so a project's `from bot import MyBot` finds quitbot's core and Python's
own message ("cannot import name 'MyBot' from 'bot' (.../site-packages/bot/__init__.py)")
hides why. The packages' module `__getattr__` answers with this instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def missing_name(package: str, path: Iterable[str], name: str) -> AttributeError | ImportError:
    """The error for `package.name` that does not exist.

    An AttributeError, as usual, for private names and for the package's own submodules
    not imported yet (`mock.patch`, `monkeypatch` and `pkgutil` look those up by catching
    AttributeError, then import them). Anything else is most likely a name from the
    person's own module: an ImportError, which Python passes on with this message intact
    (an AttributeError it would replace with its generic one).
    """
    if name.startswith("_") or any(_is_submodule(Path(p), name) for p in path):
        return AttributeError(f"module {package!r} has no attribute {name!r}")
    return ImportError(
        f"{name!r} is not in quitbot's core package {package!r}: once quitbot is imported, "
        f"`{package}` means quitbot's own package, not your {package}.py. Give your module "
        f"another name (e.g. my_{package}.py, or your project's name), or load it by path "
        f"(importlib.util.spec_from_file_location).",
        name=package,
    )


def _is_submodule(directory: Path, name: str) -> bool:
    return (directory / f"{name}.py").is_file() or (directory / name / "__init__.py").is_file()
