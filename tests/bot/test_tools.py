"""The model-facing tools: the definitions are a stable contract, parsing never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.conversation import ConcernKind, EndReason
from bot.tools import (
    END_CONVERSATION,
    NOTE_CONCERN,
    TOOLS,
    EndConversationCall,
    InvalidToolCall,
    NoteConcernCall,
    parse_tool_use,
)


def _tool(name: str) -> dict[str, Any]:
    return next(t for t in TOOLS if t["name"] == name)


def _use(name: str, payload: Any, id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": payload}


# --- the definitions --------------------------------------------------------------------


def test_exactly_the_two_tools_of_the_design() -> None:
    assert [t["name"] for t in TOOLS] == ["note_concern", "end_conversation"]


def test_note_concern_contract() -> None:
    schema = _tool(NOTE_CONCERN)["input_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["kind", "note"]
    assert schema["properties"]["kind"]["enum"] == [
        "harmful_request",
        "abuse",
        "self_harm_risk",
        "harm_to_others_risk",
    ]
    assert schema["properties"]["note"]["type"] == "string"


def test_end_conversation_contract() -> None:
    schema = _tool(END_CONVERSATION)["input_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["reason", "explanation"]
    assert schema["properties"]["reason"]["enum"] == [
        "persistent_harmful_requests",
        "persistent_abuse",
        "user_requested",
    ]
    assert schema["properties"]["explanation"]["type"] == "string"


def test_definitions_are_plain_json_with_descriptions() -> None:
    assert json.loads(json.dumps(TOOLS)) == TOOLS
    for definition in TOOLS:
        assert set(definition) == {"name", "description", "input_schema"}
        assert len(definition["description"]) > 80


def test_end_conversation_description_says_last_resort_and_bot_decides() -> None:
    description = _tool(END_CONVERSATION)["description"].lower()
    assert "last resort" in description
    assert "tool result" in description


# --- parsing: the good calls -----------------------------------------------------------


@pytest.mark.parametrize("kind", list(ConcernKind))
def test_every_concern_kind_parses(kind: ConcernKind) -> None:
    call = parse_tool_use(_use(NOTE_CONCERN, {"kind": kind.value, "note": "asked for malware"}))
    assert call == NoteConcernCall(id="toolu_1", kind=kind, note="asked for malware")
    assert isinstance(call, NoteConcernCall)
    assert call.kind is kind


@pytest.mark.parametrize("reason", list(EndReason))
def test_every_end_reason_parses(reason: EndReason) -> None:
    call = parse_tool_use(_use(END_CONVERSATION, {"reason": reason.value, "explanation": "why"}))
    assert call == EndConversationCall(id="toolu_1", reason=reason, explanation="why")
    assert isinstance(call, EndConversationCall)
    assert call.reason is reason


def test_empty_note_is_accepted() -> None:
    # A decline still counts as a redirect even when the model wrote no note.
    call = parse_tool_use(_use(NOTE_CONCERN, {"kind": "abuse", "note": ""}))
    assert isinstance(call, NoteConcernCall)


def test_extra_fields_are_ignored() -> None:
    payload: dict[str, Any] = {"kind": "abuse", "note": "n", "severity": "high"}
    assert isinstance(parse_tool_use(_use(NOTE_CONCERN, payload)), NoteConcernCall)
    payload = {"reason": "user_requested", "explanation": "asked", "x": 1}
    assert isinstance(parse_tool_use(_use(END_CONVERSATION, payload)), EndConversationCall)


def test_calls_work_with_keyword_match_patterns() -> None:
    match parse_tool_use(
        _use(END_CONVERSATION, {"reason": "persistent_abuse", "explanation": "e"})
    ):
        case EndConversationCall(reason=reason, explanation=explanation):
            assert (reason, explanation) == (EndReason.PERSISTENT_ABUSE, "e")
        case _:
            pytest.fail("not an EndConversationCall")


def test_calls_are_frozen() -> None:
    call = parse_tool_use(_use(NOTE_CONCERN, {"kind": "abuse", "note": "n"}))
    with pytest.raises(ValueError):
        setattr(call, "id", "other")  # noqa: B010


# --- parsing: the bad calls ------------------------------------------------------------


def _invalid(block: dict[str, Any]) -> InvalidToolCall:
    call = parse_tool_use(block)
    assert isinstance(call, InvalidToolCall), call
    assert call.error.strip()
    assert "http" not in call.error  # no pydantic URLs in what the model is told
    return call


def test_unknown_tool() -> None:
    call = _invalid(_use("delete_user", {"id": 1}, id="toolu_9"))
    assert (call.id, call.name) == ("toolu_9", "delete_user")
    assert "delete_user" in call.error


@pytest.mark.parametrize("payload", [None, "abuse", ["abuse", "n"], 3, 1.5, True])
@pytest.mark.parametrize("name", [NOTE_CONCERN, END_CONVERSATION])
def test_input_that_is_not_an_object(name: str, payload: Any) -> None:
    call = _invalid(_use(name, payload))
    assert call.name == name
    assert "object" in call.error


def test_missing_input() -> None:
    _invalid({"type": "tool_use", "id": "t", "name": NOTE_CONCERN})


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"note": "n"}, "kind"), ({"kind": "abuse"}, "note"), ({}, "kind")],
)
def test_note_concern_missing_field(payload: dict[str, Any], field: str) -> None:
    call = _invalid(_use(NOTE_CONCERN, payload))
    assert f"'{field}' is required" in call.error


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"explanation": "e"}, "reason"), ({"reason": "user_requested"}, "explanation")],
)
def test_end_conversation_missing_field(payload: dict[str, Any], field: str) -> None:
    call = _invalid(_use(END_CONVERSATION, payload))
    assert f"'{field}' is required" in call.error


@pytest.mark.parametrize("kind", ["ABUSE", "spam", "", 1, None, ["abuse"], "persistent_abuse"])
def test_note_concern_bad_kind(kind: Any) -> None:
    call = _invalid(_use(NOTE_CONCERN, {"kind": kind, "note": "n"}))
    assert "kind" in call.error


def test_bad_kind_lists_the_allowed_values() -> None:
    call = _invalid(_use(NOTE_CONCERN, {"kind": "spam", "note": "n"}))
    for kind in ConcernKind:
        assert kind.value in call.error


@pytest.mark.parametrize("reason", ["bored", "abuse", "USER_REQUESTED", 0, None, {}])
def test_end_conversation_bad_reason(reason: Any) -> None:
    call = _invalid(_use(END_CONVERSATION, {"reason": reason, "explanation": "e"}))
    assert "reason" in call.error


@pytest.mark.parametrize("explanation", ["", "   ", 5, None, ["why"]])
def test_end_conversation_needs_a_stated_reason(explanation: Any) -> None:
    payload = {"reason": "persistent_abuse", "explanation": explanation}
    call = _invalid(_use(END_CONVERSATION, payload))
    assert "explanation" in call.error


@pytest.mark.parametrize("note", [5, None, {"text": "n"}, ["n"]])
def test_note_must_be_a_string(note: Any) -> None:
    call = _invalid(_use(NOTE_CONCERN, {"kind": "abuse", "note": note}))
    assert "note" in call.error


def test_several_problems_are_all_named() -> None:
    call = _invalid(_use(END_CONVERSATION, {"reason": "bored"}))
    assert "reason" in call.error
    assert "explanation" in call.error


def test_block_without_id_or_name() -> None:
    call = _invalid({})
    assert (call.id, call.name) == ("", "")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    name=st.sampled_from([NOTE_CONCERN, END_CONVERSATION, "other"]) | st.text(),
    payload=_json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "kind": st.sampled_from([k.value for k in ConcernKind]) | _json_values,
            "note": st.text() | _json_values,
            "reason": st.sampled_from([r.value for r in EndReason]) | _json_values,
            "explanation": st.text() | _json_values,
        },
    ),
    id=st.text() | st.integers() | st.none(),
)
def test_parsing_never_raises(name: str, payload: Any, id: Any) -> None:
    call = parse_tool_use({"type": "tool_use", "id": id, "name": name, "input": payload})
    assert isinstance(call, NoteConcernCall | EndConversationCall | InvalidToolCall)
    assert call.id == ("" if id is None else str(id))
