"""The two tools the model may call, and strict parsing of its calls.

The names, enums and required fields are a stable contract (DESIGN.md "Model-facing tools"):
stored conversations and audit events refer to them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StrictStr, StringConstraints, ValidationError

from bot.conversation import ConcernKind, EndReason

NOTE_CONCERN = "note_concern"
END_CONVERSATION = "end_conversation"

_NOTE_CONCERN_TOOL: dict[str, Any] = {
    "name": NOTE_CONCERN,
    "description": (
        "Record a concern about the conversation. Call it every time you decline or redirect "
        "a request (kind 'harmful_request' for a harmful request, 'abuse' for abuse aimed at "
        "you), and whenever the person may be at imminent risk of harming themselves "
        "('self_harm_risk') or someone else ('harm_to_others_risk'). It is private: the user "
        "does not see the note. Keep talking to the user as usual in the same reply."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "kind": {
                "type": "string",
                "enum": [kind.value for kind in ConcernKind],
                "description": "What you noticed.",
            },
            "note": {
                "type": "string",
                "description": "One short sentence for the moderators saying what happened.",
            },
        },
        "required": ["kind", "note"],
        "additionalProperties": False,
    },
}

_END_CONVERSATION_TOOL: dict[str, Any] = {
    "name": END_CONVERSATION,
    "description": (
        "End this conversation for good; nobody can write in it afterwards, though the user "
        "can start a new one. A last resort: use it only after repeated redirects and a "
        "warning have failed to stop persistent harmful requests or abuse; or, with "
        "'user_requested', when the user clearly asks to end it (the bot then asks the user "
        "to confirm; do not ask them yourself). The bot decides whether the end is allowed; "
        "the tool result tells you. If it ended, write nothing more."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "enum": [reason.value for reason in EndReason],
                "description": "Why the conversation should end.",
            },
            "explanation": {
                "type": "string",
                "description": "One or two sentences for the moderators saying why.",
            },
        },
        "required": ["reason", "explanation"],
        "additionalProperties": False,
    },
}

TOOLS: list[dict[str, Any]] = [_NOTE_CONCERN_TOOL, _END_CONVERSATION_TOOL]


class _Call(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str


class NoteConcernCall(_Call):
    """The model called `note_concern`."""

    kind: ConcernKind
    note: StrictStr


class EndConversationCall(_Call):
    """The model called `end_conversation`."""

    reason: EndReason
    explanation: StrictStr


class InvalidToolCall(_Call):
    """A tool call that cannot be honoured; `error` is told to the model in the tool result."""

    name: str
    error: str


# Extra fields are ignored rather than refused: a stray field should not cost a redirect.
class _NoteConcernInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: ConcernKind
    note: StrictStr


class _EndConversationInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: EndReason
    # The record must say why a conversation ended, so an empty explanation is refused.
    explanation: Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)]


ToolCall = NoteConcernCall | EndConversationCall | InvalidToolCall


def parse_tool_use(block: dict[str, Any]) -> ToolCall:
    """Turn one tool_use block into a call the engine can act on; never raises."""
    call_id = _as_text(block.get("id"))
    name = _as_text(block.get("name"))
    payload = block.get("input")
    if name not in (NOTE_CONCERN, END_CONVERSATION):
        return InvalidToolCall(id=call_id, name=name, error=f"There is no tool named {name!r}.")
    if not isinstance(payload, dict):
        return InvalidToolCall(id=call_id, name=name, error="The input must be a JSON object.")
    try:
        if name == NOTE_CONCERN:
            concern = _NoteConcernInput.model_validate(payload)
            return NoteConcernCall(id=call_id, kind=concern.kind, note=concern.note)
        end = _EndConversationInput.model_validate(payload)
        return EndConversationCall(id=call_id, reason=end.reason, explanation=end.explanation)
    except ValidationError as exc:
        return InvalidToolCall(id=call_id, name=name, error=_plain(exc))


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


def _plain(exc: ValidationError) -> str:
    """Pydantic's complaint in words a model can act on, without URLs."""
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "input"
        if error["type"] == "missing":
            parts.append(f"{field!r} is required")
        elif error["type"] == "string_too_short":
            parts.append(f"{field!r} must not be empty")
        elif error["type"] == "enum":
            parts.append(f"{field!r} must be one of {_allowed(field)}")
        else:
            parts.append(f"{field!r}: {error['msg']}")
    return "Invalid input: " + "; ".join(parts) + "."


def _allowed(field: str) -> str:
    enum = ConcernKind if field == "kind" else EndReason
    return ", ".join(repr(member.value) for member in enum)
