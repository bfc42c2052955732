"""Building the model's context from stored messages: pure."""

from __future__ import annotations

import base64
import copy
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.context import (
    MAX_IMAGE_BYTES,
    STEP_MESSAGES,
    Context,
    _already_valid,
    _merge,
    _read,
    _valid,
    build_context,
    estimate_tokens,
    file_kind,
    text_type,
    user_content,
)
from bot.conversation import Attachment, ContextEntry
from bot.store.rows import encode_json

AT = datetime(2026, 1, 1, tzinfo=UTC)


def user(seq: int, text: str, *, in_context: bool = True) -> ContextEntry:
    api = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    return ContextEntry(seq, "user", encode_json(api), in_context)


def assistant(seq: int, *api: dict[str, Any], in_context: bool = True) -> ContextEntry:
    return ContextEntry(seq, "assistant", encode_json(list(api)), in_context)


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
        ContextEntry(3, "user", encode_json([TOOL_RESULT])),
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


def test_an_image_the_api_would_refuse_as_too_large_is_named_instead() -> None:
    # 3.75 MB of bytes is 5 MB of base64, the API's limit (bot/context.MAX_IMAGE_BYTES).
    fits = Attachment("fits.png", "image/png", b"x" * MAX_IMAGE_BYTES, MAX_IMAGE_BYTES)
    big = Attachment("big.png", "image/png", b"x" * (MAX_IMAGE_BYTES + 1), MAX_IMAGE_BYTES + 1)
    blocks = user_content("look", (fits, big))
    assert len(base64.b64decode(blocks[0]["source"]["data"])) == MAX_IMAGE_BYTES
    assert len(blocks[0]["source"]["data"]) <= 5 * 1024 * 1024
    assert [b["type"] for b in blocks] == ["image", "text"]
    assert "big.png (image/png, 3,750,001 bytes); it was not read" in blocks[1]["text"]


def test_empty_message_still_has_text() -> None:
    assert user_content("   ", ()) == [{"type": "text", "text": "(empty message)"}]


# --- trimming in steps, so the prompt prefix (and the API's prefix cache) survives turns ---

ENGINE_WINDOW = 60  # stored messages the engine reads per turn (bot/engine.py _HISTORY_LIMIT)


def _conversation(
    turns: int, user_chars: int, reply_chars: int, tool_every: int = 0
) -> Iterator[list[ContextEntry]]:
    """Per turn, (the history the engine reads before the model call, the turn's reply)."""
    history: list[ContextEntry] = []
    for turn in range(1, turns + 1):
        history.append(user(len(history) + 1, f"question {turn} " + "q" * user_chars))
        yield history
        reply = said(f"answer {turn} " + "a" * reply_chars)
        if tool_every and turn % tool_every == 0:
            use = {"type": "tool_use", "id": f"t{turn}", "name": "note_concern", "input": {}}
            result = {"type": "tool_result", "tool_use_id": f"t{turn}", "content": "Noted."}
            api = [
                {"role": "assistant", "content": [use]},
                {"role": "user", "content": [result]},
                reply,
            ]
            history.append(assistant(len(history) + 1, *api))
        else:
            history.append(assistant(len(history) + 1, reply))


def _requests(turns: int, budget: int, window: int | None, **sizes: int) -> list[list[Any]]:
    """The context of each turn's first request, as the engine builds it."""
    contexts = []
    for history in _conversation(turns, **sizes):
        seen = history[-window:] if window else history
        contexts.append(build_context(seen, budget))
    return contexts


def _shares_prefix(before: list[Any], after: list[Any]) -> bool:
    return after[: len(before)] == before


def _check(contexts: list[list[Any]], budget: int) -> int:
    """Every request valid and within budget; returns how many times the prefix changed."""
    changes = 0
    for n, context in enumerate(contexts):
        assert context[0]["role"] == "user"
        assert context[0]["content"][0]["type"] == "text"  # never a bare tool_result
        assert estimate_tokens(context) <= budget, n
        if n and not _shares_prefix(contexts[n - 1], context):
            changes += 1
    return changes


def test_a_long_thread_within_the_engine_window_changes_prefix_once_per_step() -> None:
    # Short messages: the engine's 60-message window binds before the token budget does.
    contexts = _requests(200, 20_000, ENGINE_WINDOW, user_chars=200, reply_chars=800)
    changes = _check(contexts, 20_000)
    # A sliding window would change the prefix on each of the last ~170 turns; steps of 16
    # messages (8 turns) change it at most once per 8 turns after the window fills.
    assert changes <= (200 - ENGINE_WINDOW // 2) // 8 + 1
    assert all(len(c) >= ENGINE_WINDOW - STEP_MESSAGES for c in contexts[ENGINE_WINDOW // 2 :])


def test_a_long_thread_over_the_token_budget_is_cut_in_steps() -> None:
    budget = 6_000
    contexts = _requests(200, budget, None, user_chars=400, reply_chars=2_000)
    changes = _check(contexts, budget)
    assert estimate_tokens(contexts[199]) <= budget  # turn 200
    # The budget holds about ten exchanges here; a sliding window would change the prefix on
    # each of the last ~190 turns.
    assert changes <= 52
    moved = [n for n in range(1, 200) if not _shares_prefix(contexts[n - 1], contexts[n])]
    assert min(b - a for a, b in itertools.pairwise(moved)) >= 3
    # Between steps, every turn sends the previous request plus the new exchange.
    unchanged = sum(_shares_prefix(a, b) for a, b in itertools.pairwise(contexts))
    assert unchanged >= 199 - changes
    # After a cut at least half the budget stays in context.
    assert min(estimate_tokens(c) for c in contexts[50:]) >= budget // 2


def test_steps_with_tool_exchanges_keep_the_tool_loop_valid() -> None:
    budget = 4_000
    contexts = _requests(200, budget, ENGINE_WINDOW, user_chars=300, reply_chars=900, tool_every=3)
    changes = _check(contexts, budget)
    assert changes <= 200 // 4
    for context in contexts:
        for a, b in itertools.pairwise(context):
            uses = {x["id"] for x in a["content"] if x["type"] == "tool_use"}
            results = {x["tool_use_id"] for x in b["content"] if x["type"] == "tool_result"}
            assert uses == (results if a["role"] == "assistant" else uses)


def test_huge_messages_fall_back_to_the_newest_that_fit() -> None:
    history = [user(1, "x" * 40_000), assistant(2, said("y" * 40_000)), user(3, "latest")]
    context = build_context(history, 1_000)
    assert context == [{"role": "user", "content": [{"type": "text", "text": "latest"}]}]


@st.composite
def _conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mostly well-formed exchanges (so the no-copy path is taken), sometimes broken."""
    messages: list[dict[str, Any]] = []
    asked: list[str] = []
    for n in range(draw(st.integers(0, 8))):
        role = "user" if n % 2 == 0 else "assistant"
        if draw(st.integers(0, 9)) == 0:
            role = draw(st.sampled_from(["user", "assistant"]))  # breaks alternation
        content: list[dict[str, Any]] = []
        if role == "user":
            answered = asked if draw(st.integers(0, 4)) else draw(st.lists(_IDS, max_size=2))
            content += [
                {"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in answered
            ]
            asked = []
        if draw(st.booleans()) or not content:
            content.append({"type": "text", "text": "x"})
        if role == "assistant":
            asked = draw(st.lists(_IDS, max_size=2, unique=True))
            content += [{"type": "tool_use", "id": i, "name": "n", "input": {}} for i in asked]
        if draw(st.integers(0, 19)) == 0:
            content = []
        messages.append({"role": role, "content": content})
    return messages


_IDS = st.sampled_from(["a", "b", "c"])


@given(_conversations())
def test_the_no_copy_path_gives_what_the_repair_would(messages: list[dict[str, Any]]) -> None:
    # A context passed on as stored must be exactly what repairing it would have produced.
    if _already_valid(messages):
        assert _valid(_merge(copy.deepcopy(messages))) == messages


# --- stored text sent on as it is ----------------------------------------------------------

# Text that looks like the JSON around it: quotes, escapes, the plain shape's own tail, keys.
_AWKWARD = st.text() | st.sampled_from(
    ['"}]}]', '"type":"image"', "\\", '\\"', "a\nb\tc", "\x00\x1f", "é 日本 🙂", '","role":"x']
)


@st.composite
def _stored_histories(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Each stored message's API messages: mostly one text block, sometimes more or tools."""
    history: list[list[dict[str, Any]]] = []
    for n in range(draw(st.integers(1, 12))):
        role = "user" if n % 2 == 0 else "assistant"
        blocks = [{"type": "text", "text": draw(_AWKWARD)} for _ in range(draw(st.integers(1, 2)))]
        api = [{"role": role, "content": blocks}]
        if role == "assistant" and draw(st.integers(0, 4)) == 0:
            use = {"type": "tool_use", "id": f"t{n}", "name": "note_concern", "input": {}}
            result = {"type": "tool_result", "tool_use_id": f"t{n}", "content": "Noted."}
            api = [{"role": role, "content": [use]}, {"role": "user", "content": [result]}, *api]
        history.append(api)
    return history


@given(_stored_histories(), st.integers(50, 2_000), st.integers(0, 3))
def test_stored_text_gives_the_context_decoding_would(
    history: list[list[dict[str, Any]]], budget: int, refused: int
) -> None:
    # Spaced JSON is never the plain shape, so it is always decoded: the reference.
    def entries(encode: Any) -> list[ContextEntry]:
        return [
            ContextEntry(n + 1, api[-1]["role"], encode(api), n != refused)
            for n, api in enumerate(history)
        ]

    compact, decoded = (
        build_context(entries(encode_json), budget),
        build_context(entries(json.dumps), budget),
    )
    assert compact == decoded
    assert [json.loads(text) for text in compact.json_items(encode_json)] == list(decoded)
    for api in history:  # the same token estimate, so the same trimming at every budget
        assert _read(encode_json(api))[0] == _read(json.dumps(api))[0] == estimate_tokens(api)


def test_only_one_message_with_one_text_block_is_plain() -> None:
    two = [
        {"role": "user", "content": [{"type": "text", "text": "a"}]},
        {"role": "assistant", "content": [{"text": "b"}]},  # no block type to give it away
    ]
    assert _read(encode_json(two)) == (estimate_tokens(two), two)


def test_a_text_block_with_more_fields_is_not_plain() -> None:
    # The plain shape's head and tail, and no escape between them: the quotes there are the
    # JSON's own, so it is decoded (and estimated) like any other shape.
    for extra in ('"x":"b"', '"type":"text","text":"b"'):
        api_json = f'[{{"role":"user","content":[{{"type":"text","text":"a",{extra}}}]}}]'
        api = json.loads(api_json)
        assert _read(api_json) == (estimate_tokens(api), api)


def test_a_plain_stored_message_is_sent_as_stored_text() -> None:
    history = [user(1, 'say "hi"\n'), assistant(2, said("hi é")), user(3, "and?")]
    context = build_context(history, 10_000)
    assert context.json_items(lambda _: "decoded") == [e.api_json[1:-1] for e in history]
    assert context[0] == {"role": "user", "content": [{"type": "text", "text": 'say "hi"\n'}]}
    # Only the turn's own messages are encoded; the stored ones stay as they were.
    more = context.plus([{"role": "assistant", "content": [{"type": "text", "text": "x"}]}])
    assert more.json_items(lambda _: "new")[2:] == [
        '{"role":"user","content":[{"type":"text","text":"and?"}]}',
        "new",
    ]
    assert len(more) == 4 and more[-1]["content"][0]["text"] == "x"


def test_a_message_of_another_shape_is_decoded() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
    }
    shaped = [{"role": "user", "content": [image, {"type": "text", "text": "look"}]}]
    history = [ContextEntry(1, "user", encode_json(shaped))]
    context = build_context(history, 10_000)
    assert context.json_items(lambda _: "decoded") == ["decoded"]
    assert context == shaped
    assert Context(shaped) == shaped and Context(shaped) != "not a sequence of messages"


def test_a_file_is_known_by_its_type_or_its_name_on_every_platform() -> None:
    assert file_kind("cat.png", "image/png") == "image"
    assert file_kind("cat.PNG", "application/octet-stream") == "other"  # not sent as an image
    assert file_kind("notes", "text/markdown") == "text"
    assert file_kind("deploy.yaml", "application/x-yaml") == "text"
    assert file_kind("Config.TOML", "application/octet-stream") == "text"
    assert file_kind("song.mp3", "audio/mpeg") == "other"
    assert file_kind("archive.tar.gz", "application/gzip") == "other"
    assert text_type("application/octet-stream") == "text/plain"
    assert text_type("application/json") == "application/json"
    assert text_type("text/csv") == "text/csv"
