"""Your own tools for the model: declared with a pydantic input model and an async handler,
registered in code or through the `quitbot.tools` entry point group, enabled by settings.

A user tool only ever answers the model: it gets a `ToolContext` (ids and settings, never the
ladder or the store), so it cannot change ladder state, and the turn runs it only while the
conversation goes on. Whatever a handler does wrong becomes an `is_error` tool_result.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from bot.tools import END_CONVERSATION, NOTE_CONCERN

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

TOOLS_GROUP = "quitbot.tools"
RESERVED = frozenset({NOTE_CONCERN, END_CONVERSATION})
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_RESULT_CHARS = 20_000
# The Messages API's rule for a tool's name.
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

InputT = TypeVar("InputT", bound=BaseModel)


class ToolError(ValueError):
    """A tool cannot be registered or enabled (a reserved or taken name, an unknown one)."""


class ToolFailure(Exception):
    """Raise it from a handler to tell the model, in your words, that the tool failed.

    Any other exception reaches the model only as its type's name (the log has the rest),
    since its message may hold what the person should not see.
    """


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a handler knows about the call: whose message is being answered, and where."""

    conversation_id: str
    participant: str  # the author of the message being answered
    community: str  # the Discord server or Slack workspace ("" in a DM or the console)
    platform: str
    settings: Settings | None = None


@dataclass(frozen=True, slots=True)
class Tool(Generic[InputT]):
    """A tool the model may call: `handler(context, input)` returns its result (a str, a
    pydantic model or anything JSON can carry). Calling the tool calls the handler."""

    name: str
    description: str
    input_model: type[InputT]
    handler: Callable[[ToolContext, InputT], Awaitable[object]]
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS

    async def __call__(self, context: ToolContext, input: InputT) -> object:
        """Run the handler as written, as `@quitbot.tool` left it callable: for your own
        tests and code. Nothing is checked, timed or cut here; the model's calls go through
        quitbot's tool loop, which does all three."""
        return await self.handler(context, input)

    def definition(self) -> dict[str, Any]:
        """The tool as the Messages API takes it."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_model.model_json_schema(),
        }


def tool(
    name: str | None = None,
    *,
    description: str | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
) -> Callable[[Callable[[ToolContext, Any], Awaitable[object]]], Tool[Any]]:
    """Make a `Tool` of an async handler: the name defaults to the function's, the
    description to its docstring, the input model to its second parameter's annotation."""

    def make(handler: Callable[[ToolContext, Any], Awaitable[object]]) -> Tool[Any]:
        hints = get_type_hints(handler)
        params = [p for p in inspect.signature(handler).parameters if p != "return"]
        model = hints.get(params[1]) if len(params) == 2 else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ToolError(f"{handler.__name__}: the input parameter needs a pydantic model")
        return Tool(
            name or handler.__name__,
            description or inspect.getdoc(handler) or "",
            model,
            handler,
            timeout_seconds,
            max_result_chars,
        )

    return make


class ToolRegistry:
    """The tools this process knows, by name; built in the composition root, not global."""

    def __init__(self, tools: Iterable[Tool[Any]] = ()) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        for each in tools:
            self.register(each)

    def register(self, new: Tool[Any]) -> Tool[Any]:
        """Add a tool; ToolError for a reserved, taken or malformed name."""
        if new.name in RESERVED:
            raise ToolError(
                f"the tool name {new.name!r} is reserved for quitbot's ladder "
                f"({', '.join(sorted(RESERVED))}); give your tool another name"
            )
        if not _NAME.match(new.name):
            raise ToolError(f"{new.name!r} is no valid tool name (letters, digits, _ and -)")
        if new.name in self._tools:
            raise ToolError(f"a tool named {new.name!r} is registered already")
        if new.timeout_seconds <= 0 or new.max_result_chars < 1:
            raise ToolError(f"{new.name!r}: the timeout and the result limit must be positive")
        self._tools[new.name] = new
        return new

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def load_entry_points(self, group: str = TOOLS_GROUP) -> list[str]:
        """Register the tools installed packages declare; a package that fails to load or
        offers a bad tool is left out, and its problem is logged and returned."""
        problems = []
        for point in entry_points(group=group):
            try:
                for each in _tools_of(point.load()):
                    self.register(each)
            except Exception as exc:
                problem = f"tool package entry {point.name!r} ({point.value}): {exc}"
                log.error("left out %s", problem)
                problems.append(problem)
        return problems

    def enabled(
        self, names: Sequence[str], timeouts: Mapping[str, float] | None = None
    ) -> dict[str, Tool[Any]]:
        """The tools `names` enables (`*`: all), with operator-set timeouts applied;
        ToolError for a name no registered tool has."""
        chosen = list(self._tools) if list(names) == ["*"] else list(names)
        for name in [*chosen, *(timeouts or {})]:
            if name not in self._tools:
                known = ", ".join(self._tools) or "none"
                raise ToolError(f"no tool named {name!r} is installed (installed: {known})")
        return {
            name: _with_timeout(self._tools[name], (timeouts or {}).get(name)) for name in chosen
        }


def _with_timeout(chosen: Tool[Any], seconds: float | None) -> Tool[Any]:
    if seconds is None:
        return chosen
    return Tool(
        chosen.name,
        chosen.description,
        chosen.input_model,
        chosen.handler,
        seconds,
        chosen.max_result_chars,
    )


def _tools_of(loaded: object) -> list[Tool[Any]]:
    """An entry point names a Tool, an iterable of them, or a function returning either."""
    if callable(loaded) and not isinstance(loaded, Tool):
        loaded = loaded()
    found = [loaded] if isinstance(loaded, Tool) else list(loaded)  # type: ignore[call-overload]
    if not all(isinstance(each, Tool) for each in found):
        raise ToolError("it must name a quitbot Tool, a list of them or a function returning one")
    return found


@dataclass(frozen=True, slots=True)
class ToolBox:
    """The tools enabled for the process, and the settings their handlers see."""

    tools: Mapping[str, Tool[Any]] = field(default_factory=dict)
    settings: Settings | None = None

    def chosen(self, community_tools: Sequence[str] | None) -> tuple[str, ...]:
        """The names a community runs with: its own choice among the process's, or all."""
        if community_tools is None:
            return tuple(self.tools)
        return tuple(name for name in self.tools if name in community_tools)

    def definitions(self, names: Sequence[str]) -> list[dict[str, Any]]:
        return [self.tools[name].definition() for name in names]


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One call's outcome: what the model is told, and what the record keeps."""

    content: str
    ok: bool
    seconds: float
    failure: str = ""  # invalid_input, exception, timeout, too_long, bad_result


async def run_tool(
    chosen: Tool[Any],
    context: ToolContext,
    payload: object,
    clock: Callable[[], float] = time.monotonic,
) -> ToolRun:
    """Validate, call and bound one handler; never raises (but lets cancellation through)."""
    started = clock()
    content, failure = await _outcome(chosen, context, payload)
    if not failure and len(content) > chosen.max_result_chars:
        content = (
            content[: chosen.max_result_chars]
            + f"\n[cut: the result had {len(content)} characters; only the first "
            f"{chosen.max_result_chars} are shown]"
        )
        failure = "too_long"
    log.debug("tool %s input %r answered %r", chosen.name, payload, content[:2000])
    return ToolRun(content, not failure, clock() - started, failure)


async def _outcome(chosen: Tool[Any], context: ToolContext, payload: object) -> tuple[str, str]:
    try:
        data = chosen.input_model.model_validate(payload)
    except ValidationError as exc:
        return _invalid(exc), "invalid_input"
    except Exception as exc:  # a validator of the tool's own that raised something else
        return _failed(chosen, exc), "exception"
    try:
        task = asyncio.ensure_future(chosen.handler(context, data))
    except Exception as exc:  # a plain function where an async one belongs, say
        return _failed(chosen, exc), "exception"
    try:
        done, _ = await asyncio.wait({task}, timeout=chosen.timeout_seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        # Not awaited: a handler that ignores its cancellation must not hold up the turn.
        task.cancel()
        task.add_done_callback(_forget)
        return f"The tool {chosen.name!r} took too long and was stopped.", "timeout"
    failed = task.cancelled() or task.exception() is not None
    if failed:
        raised = asyncio.CancelledError() if task.cancelled() else task.exception()
        if isinstance(raised, ToolFailure):
            return str(raised) or f"The tool {chosen.name!r} failed.", "exception"
        return _failed(chosen, raised), "exception"
    try:
        # The API refuses an empty text, and "" would leave the model guessing anyway.
        return _as_text(task.result()) or "(The tool returned nothing.)", ""
    except (TypeError, ValueError):
        return f"The tool {chosen.name!r} gave a result it could not send.", "bad_result"


def _failed(chosen: Tool[Any], raised: BaseException | None) -> str:
    kind = type(raised).__name__
    # An exception's message and traceback may quote what people wrote, which the logs
    # carry only at DEBUG; its type is enough to see which tool fails how.
    log.error("tool %s raised %s", chosen.name, kind)
    log.debug("tool %s raised", chosen.name, exc_info=raised)
    return f"The tool {chosen.name!r} failed ({kind}). It may work later."


def _forget(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("a stopped tool raised after its timeout", exc_info=task.exception())


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False)


def _invalid(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "input"
        parts.append(f"{where}: {error['msg']}")
    return "Invalid input: " + "; ".join(parts) + "."
