"""The splitter and the throttled editor: pure, so tested without I/O or sleeping."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from platforms.discord.stream import Edit, Send, ThrottledEditor, split_message

_pieces = st.sampled_from(["word ", "longerword ", "\n", "```py\n", "```\n", "x" * 50, "`", " "])
_texts = st.lists(_pieces, max_size=400).map("".join)


def _fences_balanced(chunk: str) -> bool:
    return sum(line.lstrip().count("```") % 2 for line in chunk.split("\n")) % 2 == 0


def test_short_text_is_one_message() -> None:
    assert split_message("hello") == ["hello"]


def test_empty_text_is_no_message() -> None:
    assert split_message("") == []
    assert split_message("  \n ") == []


def test_long_prose_splits_at_newlines() -> None:
    text = "\n".join(f"line {n} " + "a" * 80 for n in range(60))
    chunks = split_message(text)
    assert len(chunks) > 1
    assert all(len(c) <= 2000 for c in chunks)
    assert "".join(chunks) == text
    assert all(c.endswith("\n") for c in chunks[:-1])


def test_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({n})" for n in range(400))
    text = f"Here you go:\n```python\n{code}\n```\nDone."
    chunks = split_message(text)
    assert len(chunks) > 1
    assert chunks[0].endswith("\n```")
    assert all(c.startswith("```python\n") for c in chunks[1:])
    assert all(_fences_balanced(c) for c in chunks)
    assert chunks[-1].endswith("Done.")


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    chunks = split_message("y" * 4500)
    assert [len(c) for c in chunks] == [2000, 2000, 500]


@given(_texts, st.integers(min_value=30, max_value=300))
def test_every_chunk_fits_and_renders_on_its_own(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(len(c) <= limit for c in chunks)
    assert all(c.strip() for c in chunks)
    assert all(_fences_balanced(c) for c in chunks[:-1])


@given(st.lists(st.sampled_from(["word ", "\n", "x" * 40, " "]), max_size=300).map("".join))
def test_text_without_code_is_kept_exactly(text: str) -> None:
    chunks = split_message(text, 120)
    # Only whitespace may go: a blank piece between two messages cannot be posted.
    assert re.sub(r"\s", "", "".join(chunks)) == re.sub(r"\s", "", text)
    assert all(text.find(chunk) >= 0 for chunk in chunks)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_text_is_sent_at_once_then_edits_wait_for_the_interval() -> None:
    clock = _Clock()
    editor = ThrottledEditor(clock, interval=1.0)
    assert editor.update("Hel") == [Send("Hel")]
    clock.now = 0.5
    assert editor.update("Hello") == []
    clock.now = 1.0
    assert editor.update("Hello, wor") == [Edit(0, "Hello, wor")]
    clock.now = 1.2
    assert editor.update("Hello, world") == []
    assert editor.finish("Hello, world!") == [Edit(0, "Hello, world!")]
    assert editor.shown == ("Hello, world!",)


def test_finish_with_nothing_new_does_nothing() -> None:
    editor = ThrottledEditor(_Clock())
    editor.update("done")
    assert editor.finish("done") == []


def test_finish_without_any_text_sends_nothing() -> None:
    assert ThrottledEditor(_Clock()).finish("") == []


def test_growth_past_the_limit_continues_in_a_new_message() -> None:
    clock = _Clock()
    editor = ThrottledEditor(clock, interval=1.0, limit=50)
    first = "a" * 30 + " "
    assert editor.update(first) == [Send(first)]
    clock.now = 5.0
    ops = editor.update(first + "b" * 30)
    assert ops == [Send("b" * 30)]
    assert editor.shown == (first, "b" * 30)
