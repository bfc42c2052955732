"""The public API's surface as text: every name `quitbot` exports, with its signature (and,
for a class, its public methods, properties and members).

    .venv/bin/python -m tests.quitbot.api > tests/quitbot/api.txt

regenerates the snapshot that tests/quitbot/test_api.py compares with; a change to it is a
change to the public API, so it goes in CHANGELOG.md with the version it calls for.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Iterator
from importlib import import_module
from typing import Any

from pydantic import BaseModel

import quitbot


def surface() -> str:
    lines: list[str] = []
    for name in sorted(quitbot.__all__):
        lines.extend(_describe(name, getattr(quitbot, name)))
    for module_name in (*quitbot.PLATFORM_MODULES, "testing"):  # each with its own `__all__`
        module = import_module(f"quitbot.{module_name}")
        lines.append(f"module quitbot.{module_name}")
        for name in sorted(module.__all__):
            lines.extend(_describe(f"{module_name}.{name}", getattr(module, name)))
    return "\n".join(lines) + "\n"


def _describe(name: str, value: Any) -> Iterator[str]:
    if inspect.isclass(value) and issubclass(value, BaseModel):
        # Fields, not the constructor: pydantic-settings adds private parameters of its own.
        yield f"class {name}(BaseModel)"
        for field, info in value.model_fields.items():
            default = "<factory>" if info.default_factory else _plain(repr(info.default))
            yield f"    {name}.{field}: {inspect.formatannotation(info.annotation)} = {default}"
        yield from _members(name, value)
    elif inspect.isclass(value):
        yield f"class {name}{_signature(value)}"
        yield from _members(name, value)
    elif callable(value):
        yield f"def {name}{_signature(value)}"
    elif name == "__version__":
        yield f"{name}: str"
    elif isinstance(value, frozenset):
        yield f"{name} = frozenset({sorted(value)!r})"
    else:
        yield f"{name} = {value!r}"


def _members(name: str, cls: type) -> Iterator[str]:
    if issubclass(cls, enum.Enum):
        for member in cls:
            yield f"    {name}.{member.name} = {member.value!r}"
        return
    for attr, value in sorted(vars(cls).items()):
        if attr.startswith("_") or attr.startswith("model_"):
            continue
        if isinstance(value, property):
            yield f"    {name}.{attr}: property"
        elif isinstance(value, (classmethod, staticmethod)):
            yield f"    {name}.{attr}{_signature(value.__func__)}"
        elif inspect.isfunction(value):
            yield f"    {name}.{attr}{_signature(value)}"


def _signature(value: Any) -> str:
    try:
        return _plain(inspect.signature(value))
    except (TypeError, ValueError):
        return "(...)"


def _plain(value: Any) -> str:
    """Its text, without the memory addresses that differ from run to run."""
    return re.sub(r" at 0x[0-9a-f]+", "", str(value))


if __name__ == "__main__":
    print(surface(), end="")
