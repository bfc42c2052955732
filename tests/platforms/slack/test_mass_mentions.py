"""The model's text never notifies a whole channel or a user group on Slack: every special
mention (<!here>, <!channel>, <!everyone>, <!subteam^...>) goes out as plain text, on every
path (a reply posted whole, a streamed one, split across appends), and code is left alone."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from platforms.slack.render import neutral
from tests.fakes.anthropic import text
from tests.fakes.slack_requests import event_callback, mention
from tests.platforms.slack.conftest import SlackHarness
from tests.platforms.slack.test_conversations import streamed

SPECIAL = re.compile(r"<!(here|channel|everyone|subteam)")
ASKED = "Sure: <!here> <!channel|channel> <!everyone> <!subteam^S0123|@devs> <!subteam^S9>"


def test_each_special_mention_becomes_plain_text() -> None:
    assert neutral(ASKED, final=True) == "Sure: @here @channel @everyone @devs @group"


def test_code_is_left_as_written() -> None:
    code = "Write `<!here>` or\n```\n<!channel>\n```\nbut not <!here>"
    assert neutral(code, final=True) == "Write `<!here>` or\n```\n<!channel>\n```\nbut not @here"


def test_what_may_still_become_a_mention_waits_until_complete() -> None:
    assert neutral("hello <!he", final=False) == "hello "
    assert neutral("hello <!here>", final=False) == "hello @here"
    assert neutral("an open `span with <!he", final=False) == "an open "
    assert neutral("an open `span with <!here>", final=True) == "an open `span with @here"


PIECES = ["<!here>", "<!channel>", "<!subteam^S1|@team>", "`", "```", "\n", "a", " ", "<", ">"]


@given(st.lists(st.sampled_from(PIECES), max_size=30), st.integers(min_value=0))
def test_what_is_shown_early_is_never_taken_back(pieces: list[str], cut: int) -> None:
    whole = "".join(pieces)
    early = neutral(whole[: cut % (len(whole) + 1)], final=False)
    assert neutral(whole, final=True).startswith(early)


@given(st.lists(st.sampled_from([p for p in PIECES if "`" not in p]), max_size=30))
def test_no_special_mention_survives_outside_code(pieces: list[str]) -> None:
    assert SPECIAL.search(neutral("".join(pieces), final=True)) is None


async def test_a_reply_posted_whole_notifies_nobody(harness: SlackHarness) -> None:
    harness.claude.add(text(ASKED))
    await harness.send.event(event_callback(mention("ping everyone", ts="1700000700.000100")))
    await harness.settle()
    [posted] = [c for c in harness.slack.calls_to("chat.postMessage") if "markdown_text" in c]
    assert posted["markdown_text"] == "Sure: @here @channel @everyone @devs @group"


async def test_a_streamed_reply_notifies_nobody_even_split_across_appends(
    harness: SlackHarness,
) -> None:
    long = ("Here is a long answer. " * 30) + ASKED + " `<!here>` " + ("More. " * 2500)
    harness.claude.add(text(long))
    await harness.send.event(event_callback(mention("ping everyone", ts="1700000700.000200")))
    await harness.settle()
    shown = streamed(harness.slack)
    assert SPECIAL.search(shown.replace("`<!here>`", "")) is None
    assert "@here @channel @everyone @devs @group" in shown and "`<!here>`" in shown
    assert len(harness.slack.calls_to("chat.appendStream")) >= 1
