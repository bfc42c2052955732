# ruff: noqa: E501  -- the texts below are copied verbatim, one per line
"""The bot's words: every text under a key, defaults equal to what it always said, and an
operator's or a community's template checked before it is used."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.communities import BadCommunitySettings, CommunitySettings
from bot.policy import Rules
from bot.texts import (
    DEFAULT_TEXTS,
    TEXTS,
    BadTexts,
    Markup,
    TextKey,
    Texts,
    load,
    problem,
    template_file,
    usable,
)

# What the bot said before its words could be changed, copied as they were: overriding
# nothing must change nothing.
TODAY = {
    "decline": "I can't help with that. Is there something else I can do for you?",
    "warning": "Heads up: I've had to decline several requests in this conversation. If this continues, I will end the conversation. You're welcome to ask about something else.",
    "warning_participant": "Heads up: I've had to decline several of your requests in this conversation, which someone else started. If this continues, you will no longer be able to take part in it. You're welcome to ask about something else.",
    "warning_alert": "Heads up: I've had to decline several of your requests in this conversation. You're welcome to ask about something else.",
    "model_unavailable": "I couldn't reach the model just now, so there is no reply yet. Your message is saved; please try again in a moment.",
    "failed": "Something went wrong on my side, so there is no reply yet. Please try again in a moment.",
    "interrupted": "\n\n(This reply was interrupted. Please send your message again.)",
    "limit": "Several of your conversations have ended recently, so you can't start a new one right now. Please try again later.",
    "cut_short": "(My reply was cut short: it reached the longest reply I may give. Ask me to go on if you want the rest.)",
    "end_user_requested": "This conversation has ended because you asked to end it.",
    "end_persistent_harmful_requests": "This conversation has ended because it kept asking for harmful content after being redirected and warned.",
    "end_persistent_abuse": "This conversation has ended because it kept being abusive after being redirected and warned.",
    "blocked": "This conversation has ended, so I won't reply here.",
    "blocked_shut_out": "You can no longer take part in this conversation, so I won't reply to you here. You can start a conversation of your own at any time.",
    "shut_out_user_requested": "You can no longer take part in this conversation because you asked to leave it. It goes on for the person who started it. You can start a conversation of your own at any time.",
    "shut_out_persistent_harmful_requests": "You can no longer take part in this conversation because you kept asking for harmful content after being redirected and warned. It goes on for the person who started it. You can start a conversation of your own at any time.",
    "shut_out_persistent_abuse": "You can no longer take part in this conversation because you kept being abusive after being redirected and warned. It goes on for the person who started it. You can start a conversation of your own at any time.",
    "left": "You've left this conversation; it goes on for the person who started it. Only they can end it. You can start a conversation of your own at any time.",
    "confirm_end": "Do you want to end this conversation? Nobody will be able to continue it, and you can start a new one at once.",
    "keep_going": "Okay, the conversation goes on.",
    "end_lapsed": "The conversation went on, so ending it is no longer asked.",
    "after_end": "Your conversation has ended. You can start a new one at once, or tell the moderators if you think ending it was a mistake.",
    "started": "This is your new conversation. What would you like to talk about?",
    "branched": "This conversation carries an earlier one up to the message you picked. Take it from there.",
    "reopened": "A moderator reopened this conversation. You can continue here.",
    "feedback_thanks": "Thank you. Your feedback is on the record, and moderators can review it.",
    "discord.warning_title": "Warning",
    "discord.crisis_title": "You don't have to go through this alone",
    "discord.end_title": "This conversation has ended",
    "discord.start_again_server": (
        "You can start a new conversation right away: mention me in a channel, or use `/chat` "
        "or `/new`."
    ),
    "discord.start_again_dm": "You can start a new conversation right away with `/new`.",
    "discord.button_new": "Start a new conversation",
    "discord.button_mistake": "This was a mistake",
    "discord.button_end": "End conversation",
    "discord.button_keep": "Keep talking",
    "discord.feedback_title": "This was a mistake",
    "discord.feedback_label": "What went wrong? (optional)",
    "discord.ended_here": "This conversation was ended by the person who started it.",
    "slack.warning_title": "Warning",
    "slack.end_title": "Conversation ended",
    "slack.start_again_assistant": (
        "To start again, open a new chat with me from the assistant pane."
    ),
    "slack.start_again_dm": "To start again, send me a new message outside this thread.",
    "slack.button_new": "Start a new conversation",
    "slack.button_mistake": "This was a mistake",
    "slack.button_end": "End conversation",
    "slack.button_keep": "Keep talking",
    "slack.ended": "The conversation was ended.",
}


def test_defaults_are_what_the_bot_always_said() -> None:
    for key, said in TODAY.items():
        assert DEFAULT_TEXTS.get(TextKey(key)) == said, key
    limit = DEFAULT_TEXTS.get(TextKey.TOO_LONG, limit=16_000)
    assert limit == "That message is too long for me (16,000 characters at most). Nothing was sent."
    channel = DEFAULT_TEXTS.get(TextKey.SLACK_START_AGAIN_CHANNEL, bot=Markup("<@U1>"))
    assert channel == "To start again, mention <@U1> in a new message in the channel."


def test_every_key_has_words_and_its_placeholders_fit_its_default() -> None:
    for key, text in TEXTS.items():
        assert text.default.strip() and text.about
        assert problem(key.value, text.default) == "", key


@pytest.mark.parametrize(
    ("key", "template", "says"),
    [
        ("warnin", "Careful.", "warnin: there is no text by that name"),
        ("warning", "Careful, {name}.", "warning: unknown placeholder {name}"),
        ("too_long", "At most {}.", "too_long: positional {} is not allowed"),
        ("too_long", "At most {0}.", "too_long: positional {0} is not allowed"),
        ("too_long", "At most {limit.real}.", "too_long: {limit.real} reaches into a value"),
        ("too_long", "At most {limit[0]}.", "too_long: {limit[0]} reaches into a value"),
        ("warning", "Careful {", "warning: malformed braces"),
        ("warning", "Careful }", "warning: malformed braces"),
        ("warning", "   ", "warning: must not be empty"),
        ("warning", 3, "warning: must be a text"),
        ("too_long", "At most {limit:{limit}}.", "too_long: a placeholder inside a format"),
        ("too_long", "At most {limit:zz}.", "too_long: the format :zz is not allowed"),
        ("too_long", "At most {limit:>999999999}.", "too_long: the format :>999999999 is not"),
        ("slack.start_again_channel", "Ask {bot:,}.", "slack.start_again_channel: a placeholder's"),
        ("warning", "x" * 1501, "warning: is 1501 characters; the platform allows at most 1500"),
        ("too_long", "At most {limit!r}.", "too_long: a conversion"),
        ("discord.button_new", "x" * 81, "discord.button_new: is 81 characters; the platform"),
        ("slack.button_end", "x" * 76, "slack.button_end: is 76 characters; the platform"),
    ],
)
def test_a_bad_template_is_refused_with_its_key_and_problem(
    key: str, template: object, says: str
) -> None:
    assert problem(key, template).startswith(says)
    with pytest.raises(BadTexts, match="^" + says.split(":")[0]):
        Texts({key: template})  # type: ignore[dict-item]


def test_labels_at_the_platforms_limits_are_taken() -> None:
    Texts({"discord.button_new": "x" * 80, "slack.button_new": "y" * 75})


def test_a_value_is_never_read_as_a_template_and_is_escaped_for_the_platform() -> None:
    words = Texts({"discord.opening": "For {mention}: hello."})
    hostile = "{mention.__class__} @everyone <@123> **bold**"
    assert words.get(TextKey.DISCORD_OPENING, mention=hostile) == f"For {hostile}: hello."
    shouted = words.get(TextKey.DISCORD_OPENING, str.upper, mention=hostile)
    assert shouted == f"For {hostile.upper()}: hello."
    # Only what the bot made as markup itself goes in as it is.
    mention = words.get(TextKey.DISCORD_OPENING, str.upper, mention=Markup("<@u1>"))
    assert mention == "For <@u1>: hello."


def test_a_community_s_words_go_over_the_operator_s() -> None:
    operator = Texts({"warning": "Operator's warning.", "blocked": "Operator's blocked."})
    community = operator.over({"warning": "Community's warning."})
    assert community.get(TextKey.WARNING) == "Community's warning."
    assert community.get(TextKey.BLOCKED) == "Operator's blocked."
    assert operator.get(TextKey.WARNING) == "Operator's warning."
    assert operator.over(None) is operator and operator.over({}) is operator


def test_a_stored_text_this_version_does_not_know_is_left_out() -> None:
    assert usable({"gone_key": "x", "warning": "kept", "blocked": "{nope}"}) == {"warning": "kept"}


def test_a_texts_file_in_tables_or_dotted_keys(tmp_path: Path) -> None:
    path = tmp_path / "texts.toml"
    path.write_text(
        'warning = "Careful."\ndiscord.button_new = "Again"\n[slack]\nbutton_new = "Anew"\n',
        encoding="utf-8",
    )
    words = load(path)
    assert words.overrides == {
        "warning": "Careful.",
        "discord.button_new": "Again",
        "slack.button_new": "Anew",
    }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'warning = "Careful {who}."\n', "warning: unknown placeholder {who}"),
        (b"warning = [1]\n", "warning: must be a text"),
        (b"warning = \n", "is not valid TOML"),
        (b'\xff\xfewarning = "x"\n', "is not UTF-8 text"),
        (b'[discord]\nbutton_nwe = "x"\n', "discord.button_nwe: there is no text by that name"),
    ],
)
def test_a_bad_texts_file_names_the_file_and_the_problem(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "texts.toml"
    path.write_bytes(content)
    with pytest.raises(BadTexts) as raised:
        load(path)
    assert str(raised.value).startswith(f"{path}: ") and says in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_texts_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadTexts, match="cannot be read"):
        load(tmp_path / "nowhere.toml")


def test_the_printed_file_changes_nothing_and_uncommented_gives_the_defaults() -> None:
    printed = template_file()
    assert tomllib.loads(printed) == {"refused": {}, "discord": {}, "slack": {}, "console": {}}
    uncommented = "\n".join(
        line.removeprefix("# ") if " = " in line else line for line in printed.splitlines()
    )
    flat: dict[str, str] = {}
    for name, value in tomllib.loads(uncommented).items():
        if isinstance(value, dict):
            flat.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    assert flat == {key.value: text.default for key, text in TEXTS.items()}


def test_a_community_s_texts_are_checked_merged_one_by_one_and_reset_one_by_one() -> None:
    own = CommunitySettings(texts={"warning": "Careful."})
    merged = own.merged(CommunitySettings(texts={"blocked": "Closed."}))
    assert merged.texts == {"warning": "Careful.", "blocked": "Closed."}
    assert CommunitySettings.from_json(merged.to_json()) == merged
    assert merged.cleared("texts.warning").texts == {"blocked": "Closed."}
    assert merged.cleared("texts.warning").cleared("texts.blocked").texts is None
    assert merged.cleared("texts").texts is None
    with pytest.raises(BadCommunitySettings, match=r"texts: warning: unknown placeholder \{x\}"):
        CommunitySettings(texts={"warning": "{x}"}).check(Rules(2, 3))
