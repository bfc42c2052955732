"""Building the model's context from stored messages: pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.context import build_context, estimate_tokens, user_content
from bot.conversation import Attachment, StoredMessage

AT = datetime(2026, 1, 1, tzinfo=UTC)


def user(seq: int, text: str, *, in_context: bool = True) -> StoredMessage:
    api = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    return StoredMessage(seq, "user", text, api, AT, in_context=in_context)


def assistant(seq: int, *api: dict[str, Any], in_context: bool = True) -> StoredMessage:
    return StoredMessage(seq, "assistant", "", list(api), AT, in_context=in_context)


def said(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


TOOL_USE = {
    "role": "assistant",
    "content": [
        {"type": "text", "text": "I won't."},
        {"type": "tool_use", "id": "t1", "name": "note_concern", "input": {}},
    ],
}
TOOL_RESULT = {
    "role": "user",
    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "Noted."}],
}


def test_refused_turns_are_left_out_and_user_messages_merge() -> None:
    history = [
        user(1, "hello"),
        assistant(2, said("hi")),
        user(3, "bad", in_context=False),
        assistant(4, said("declined"), in_context=False),
        user(5, "unanswered"),  # the model was down
        user(6, "again"),
    ]
    context = build_context(history, 10_000)
    assert [m["role"] for m in context] == ["user", "assistant", "user"]
    assert [b["text"] for b in context[2]["content"]] == ["unanswered", "again"]


def test_tool_exchange_kept_whole_and_next_user_text_follows_results() -> None:
    history = [user(1, "x"), assistant(2, TOOL_USE, TOOL_RESULT), user(3, "y")]
    context = build_context(history, 10_000)
    assert [m["role"] for m in context] == ["user", "assistant", "user"]
    assert [b["type"] for b in context[2]["content"]] == ["tool_result", "text"]


def test_unpaired_tool_use_is_removed() -> None:
    history = [user(1, "x"), assistant(2, TOOL_USE), user(3, "y")]
    context = build_context(history, 10_000)
    assert [b["type"] for b in context[1]["content"]] == ["text"]


def test_orphan_tool_result_and_leading_assistant_are_removed() -> None:
    history = [
        assistant(1, said("hi")),
        user(2, "x"),
        StoredMessage(3, "user", "", [TOOL_RESULT], AT),
    ]
    context = build_context(history, 10_000)
    assert context == [{"role": "user", "content": [{"type": "text", "text": "x"}]}]


def test_budget_keeps_newest_and_bounds_size() -> None:
    history = []
    for i in range(1, 400, 2):
        history += [
            user(i, f"question {i} " + "x" * 400),
            assistant(i + 1, said("answer " + "y" * 400)),
        ]
    history.append(user(401, "latest"))
    context = build_context(history, 2_000)
    assert context[-1]["content"][-1]["text"] == "latest"
    assert context[0]["role"] == "user"
    assert estimate_tokens(context) <= 2_000
    assert len(context) < 20


def test_newest_message_is_kept_even_over_budget() -> None:
    context = build_context([user(1, "z" * 100_000)], 100)
    assert len(context) == 1


def test_user_content_reads_text_passes_images_names_others() -> None:
    blocks = user_content(
        "look",
        (
            Attachment("notes.txt", "text/plain", b"hello", 5),
            Attachment("big.log", "text/plain", b"abc", 10_000),
            Attachment("cat.png", "image/png", b"\x89PNG", 4),
            Attachment("app.exe", "application/octet-stream", b"", 2048),
        ),
    )
    assert blocks[0]["type"] == "image" and blocks[0]["source"]["media_type"] == "image/png"
    text = blocks[1]["text"]
    assert text.startswith("look")
    assert '<file name="notes.txt">\nhello\n</file>' in text
    assert '<file name="big.log" (truncated)>' in text
    assert "app.exe (application/octet-stream, 2,048 bytes); it was not read" in text


def test_empty_message_still_has_text() -> None:
    assert user_content("   ", ()) == [{"type": "text", "text": "(empty message)"}]
