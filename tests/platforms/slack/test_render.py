"""Markdown -> mrkdwn, splitting, notices as Block Kit (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.notices import Notice, NoticeKind
from platforms.slack.render import (
    MISTAKE,
    NEW_CONVERSATION,
    parse_action_value,
    render_notice,
    split_text,
    to_mrkdwn,
)
from platforms.slack.translate import Place


def test_markdown_becomes_mrkdwn() -> None:
    markdown = (
        "# Title\n**bold** and *italic* and ~~gone~~, [docs](https://example.com)\n"
        "- one\n* two\n`a<b>` and 1 < 2 & 3"
    )
    assert to_mrkdwn(markdown) == (
        "*Title*\n*bold* and _italic_ and ~gone~, <https://example.com|docs>\n"
        "• one\n• two\n`a&lt;b&gt;` and 1 &lt; 2 &amp; 3"
    )


def test_code_blocks_lose_their_language_and_keep_their_stars() -> None:
    assert to_mrkdwn("```python\nx = a**b\n```\n**after**") == "```x = a**b\n```\n*after*"


def test_an_unclosed_fence_mid_stream_stays_code() -> None:
    assert to_mrkdwn("see\n```\n**not bold") == "see\n```\n**not bold"


def test_short_text_is_one_piece() -> None:
    assert split_text("hello", 100) == ["hello"]


def test_split_prefers_paragraphs() -> None:
    text = "a" * 60 + "\n\n" + "b" * 60
    assert split_text(text, 100) == ["a" * 60, "b" * 60]


def test_a_cut_code_block_is_closed_and_reopened() -> None:
    text = "```\n" + "\n".join(f"line {i}" for i in range(40)) + "\n```"
    pieces = split_text(text, 100)
    assert len(pieces) > 1
    assert all(piece.count("```") % 2 == 0 for piece in pieces)
    assert all(len(piece) <= 100 for piece in pieces)


@given(st.text(alphabet=st.sampled_from("ab \n`*#-"), max_size=2_000), st.integers(16, 400))
def test_split_never_exceeds_the_limit_nor_loses_words(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(len(piece) <= limit for piece in pieces)
    assert _squeeze("".join(pieces)) == _squeeze(text)


def _squeeze(text: str) -> str:
    """The words, without the whitespace and code fences a split may add or move."""
    return "".join(text.replace("`", "").split())


def test_the_end_notice_has_both_buttons_and_how_to_start_again() -> None:
    notice = Notice(NoticeKind.END, "This conversation has ended because you asked to end it.")
    text, blocks = render_notice(notice, Place.CHANNEL, "U0QUITBOT", "conv-1")
    assert "mention <@U0QUITBOT>" in text
    actions = next(b for b in blocks if b["type"] == "actions")
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (NEW_CONVERSATION, "conv-1|channel"),
        (MISTAKE, "conv-1|channel"),
    ]
    assert parse_action_value("conv-1|channel") == ("conv-1", Place.CHANNEL)


def test_the_end_notice_repeats_crisis_resources() -> None:
    notice = Notice(NoticeKind.END, "Ended.", resources="Call 988.")
    text, blocks = render_notice(notice, Place.DM, "U0QUITBOT", "c")
    assert "Call 988." in text
    assert any("Call 988." in str(block) for block in blocks)
    assert "outside this thread" in text


def test_blocked_says_how_to_start_again_in_an_assistant_thread() -> None:
    notice = Notice(NoticeKind.BLOCKED, "This conversation has ended, so I won't reply here.")
    text, _ = render_notice(notice, Place.ASSISTANT, "U0QUITBOT")
    assert "new chat" in text


def test_a_warning_is_distinct() -> None:
    text, blocks = render_notice(Notice(NoticeKind.WARNING, "Careful & kind"), Place.CHANNEL, "U")
    assert text == "Careful & kind"
    assert blocks[0]["text"]["text"] == ":warning: *Warning*\nCareful &amp; kind"
    # What continuing leads to is the core's to say (an end, being shut out, or in
    # alert-only mode nothing): no line of the adapter's own adds an end to it.
    assert len(blocks) == 1


def test_the_blocked_notice_mentions_the_bot_as_a_mention() -> None:
    _text, blocks = render_notice(
        Notice(NoticeKind.BLOCKED, "Ended <for> you & me."), Place.CHANNEL, "U0BOT"
    )
    shown = blocks[0]["text"]["text"]
    assert "mention <@U0BOT> in a new message" in shown  # markup the bot meant
    assert "Ended &lt;for&gt; you &amp; me." in shown  # text it did not mean as markup
    assert "&lt;@U0BOT&gt;" not in shown
