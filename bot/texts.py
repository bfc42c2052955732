"""The words the bot shows people, each under a stable key, and the operator's own words.

Every notice and button text has a `TextKey`, a default (the bot's own words) and the named
placeholders its template may use. An operator overrides any of them process-wide (a TOML
file, `QUITBOT_TEXTS`) and a community's moderators per community; both are checked before
they are used (`check`): an unknown key or placeholder, positional `{}`, attribute or index
access (`{x.y}`, `{x[0]}`), malformed braces, an empty text or a label over the platform's
limit is refused with the key and the problem. This is also where translations plug in.
"""

from __future__ import annotations

import json
import logging
import string
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)


class TextKey(StrEnum):
    """A text's stable name: what an override file or a community names it by."""

    DECLINE = "decline"
    WARNING = "warning"
    WARNING_PARTICIPANT = "warning_participant"
    WARNING_ALERT = "warning_alert"
    MODEL_UNAVAILABLE = "model_unavailable"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LIMIT = "limit"
    TOO_LONG = "too_long"
    CUT_SHORT = "cut_short"
    END_USER_REQUESTED = "end_user_requested"
    END_PERSISTENT_HARMFUL_REQUESTS = "end_persistent_harmful_requests"
    END_PERSISTENT_ABUSE = "end_persistent_abuse"
    BLOCKED = "blocked"
    BLOCKED_SHUT_OUT = "blocked_shut_out"
    SHUT_OUT_USER_REQUESTED = "shut_out_user_requested"
    SHUT_OUT_PERSISTENT_HARMFUL_REQUESTS = "shut_out_persistent_harmful_requests"
    SHUT_OUT_PERSISTENT_ABUSE = "shut_out_persistent_abuse"
    LEFT = "left"
    CONFIRM_END = "confirm_end"
    KEEP_GOING = "keep_going"
    END_LAPSED = "end_lapsed"
    AFTER_END = "after_end"
    STARTED = "started"
    BRANCHED = "branched"
    REOPENED = "reopened"
    FEEDBACK_THANKS = "feedback_thanks"
    REFUSED_NOT_FOUND = "refused.not_found"
    REFUSED_NOT_STARTER = "refused.not_starter"
    REFUSED_ALREADY_ENDED = "refused.already_ended"
    REFUSED_NOT_ASKED = "refused.not_asked"
    REFUSED_NOT_ENDED = "refused.not_ended"
    REFUSED_NOT_A_MESSAGE = "refused.not_a_message"
    REFUSED_NO_PLACE = "refused.no_place"
    REFUSED_NOT_MODERATOR = "refused.not_moderator"
    REFUSED_BAD_SETTINGS = "refused.bad_settings"
    REFUSED_UNKNOWN_SETTING = "refused.unknown_setting"
    REFUSED_NOT_CONCERNED = "refused.not_concerned"
    REFUSED_NOT_FLAGGED = "refused.not_flagged"
    DISCORD_WARNING_TITLE = "discord.warning_title"
    DISCORD_CRISIS_TITLE = "discord.crisis_title"
    DISCORD_END_TITLE = "discord.end_title"
    DISCORD_START_AGAIN_SERVER = "discord.start_again_server"
    DISCORD_START_AGAIN_DM = "discord.start_again_dm"
    DISCORD_NO_THREADS_HERE = "discord.no_threads_here"
    DISCORD_OPENING = "discord.opening"
    DISCORD_BUTTON_NEW = "discord.button_new"
    DISCORD_BUTTON_MISTAKE = "discord.button_mistake"
    DISCORD_BUTTON_END = "discord.button_end"
    DISCORD_BUTTON_KEEP = "discord.button_keep"
    DISCORD_FEEDBACK_TITLE = "discord.feedback_title"
    DISCORD_FEEDBACK_LABEL = "discord.feedback_label"
    DISCORD_ENDED_HERE = "discord.ended_here"
    DISCORD_STARTED_IN = "discord.started_in"
    DISCORD_BRANCHED_IN = "discord.branched_in"
    DISCORD_COMMAND_GONE = "discord.command_gone"
    DISCORD_COMMAND_FAILED = "discord.command_failed"
    DISCORD_COMMAND_REFUSED = "discord.command_refused"
    DISCORD_THREAD_NAME = "discord.thread_name"
    DISCORD_BRANCH_THREAD_NAME = "discord.branch_thread_name"
    DISCORD_OFFER_POST_NAME = "discord.offer_post_name"
    DISCORD_OFFER_POST_UNNAMED = "discord.offer_post_unnamed"
    SLACK_WARNING_TITLE = "slack.warning_title"
    SLACK_END_TITLE = "slack.end_title"
    SLACK_START_AGAIN_ASSISTANT = "slack.start_again_assistant"
    SLACK_START_AGAIN_DM = "slack.start_again_dm"
    SLACK_START_AGAIN_CHANNEL = "slack.start_again_channel"
    SLACK_BUTTON_NEW = "slack.button_new"
    SLACK_BUTTON_MISTAKE = "slack.button_mistake"
    SLACK_BUTTON_END = "slack.button_end"
    SLACK_BUTTON_KEEP = "slack.button_keep"
    SLACK_ENDED = "slack.ended"
    SLACK_NO_TARGET = "slack.no_target"
    SLACK_HELP = "slack.help"
    SLACK_NEW_DM = "slack.new_dm"
    SLACK_NEW_CHANNEL = "slack.new_channel"
    SLACK_ENDED_TITLE = "slack.ended_title"
    SLACK_GREETING = "slack.greeting"
    SLACK_PROMPT_1_TITLE = "slack.prompt_1_title"
    SLACK_PROMPT_1 = "slack.prompt_1"
    SLACK_PROMPT_2_TITLE = "slack.prompt_2_title"
    SLACK_PROMPT_2 = "slack.prompt_2"
    SLACK_PROMPT_3_TITLE = "slack.prompt_3_title"
    SLACK_PROMPT_3 = "slack.prompt_3"
    SLACK_BRANCHED = "slack.branched"
    SLACK_BRANCHED_UNLINKED = "slack.branched_unlinked"
    CONSOLE_BANNER = "console.banner"
    CONSOLE_HELP = "console.help"
    CONSOLE_UNKNOWN_COMMAND = "console.unknown_command"
    CONSOLE_START_AGAIN = "console.start_again"
    CONSOLE_ASK_END = "console.ask_end"
    CONSOLE_CONFIRM_HINT = "console.confirm_hint"
    CONSOLE_NOTHING_TO_END = "console.nothing_to_end"


# Platform limits a text must fit, with their sources.
# Discord: a button's label is at most 80 characters (Discord Docs, "Components": Button),
# a modal's text input label at most 45 ("Components": Text Input); a modal title at most
# 45 and an embed title at most 256 (Discord Docs, "Interactions" and "Embed Limits").
DISCORD_BUTTON_LABEL = 80
DISCORD_MODAL_LABEL = 45
DISCORD_EMBED_TITLE = 256
# Slack: a button element's text is at most 75 characters (docs.slack.dev, Block Kit
# "Button element"); a header block's text at most 150 ("Header block").
SLACK_BUTTON_TEXT = 75
# Discord: a thread's name is 1-100 characters (Discord Docs, "Start Thread from Message");
# a name with a value in it is cut to fit as well.
DISCORD_THREAD_NAME = 100
SLACK_HEADER = 150
# Any other text: room, within Discord's 2,000 characters a message, for what the bot adds
# (how to start again, a mention).
LONGEST_TEXT = 1_500
# The formats a placeholder may take: thousands separators. A width or precision could make
# a moderator's text as long as they like (`{limit:>999999999}`).
_FORMATS = frozenset({"", ",", "_"})


class Markup(str):
    """A value the bot itself made as the platform's markup (a mention of the bot or of the
    person a message is for), inserted as it is; every other text value is escaped."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Text:
    """One text: the bot's own words, what it is for, and the placeholders it may use.

    `placeholders` maps each name to an example value of the kind inserted (used to try a
    template before it is accepted); `limit` is the platform's most characters, 0 for none.
    """

    default: str
    about: str
    placeholders: Mapping[str, object] = field(default_factory=dict)
    limit: int = 0


_KEPT_HARMFUL = "kept asking for harmful content after being redirected and warned"
_KEPT_ABUSIVE = "kept being abusive after being redirected and warned"
_SHUT_OUT_TAIL = (
    "It goes on for the person who started it. You can start a conversation of your own at "
    "any time."
)

TEXTS: Mapping[TextKey, Text] = MappingProxyType(
    {
        TextKey.DECLINE: Text(
            "I can't help with that. Is there something else I can do for you?",
            "the bot's own decline when the model refused to answer",
        ),
        TextKey.WARNING: Text(
            "Heads up: I've had to decline several requests in this conversation. If this "
            "continues, I will end the conversation. You're welcome to ask about something "
            "else.",
            "the warning that continuing will end the conversation",
        ),
        TextKey.WARNING_PARTICIPANT: Text(
            "Heads up: I've had to decline several of your requests in this conversation, "
            "which someone else started. If this continues, you will no longer be able to "
            "take part in it. You're welcome to ask about something else.",
            "the warning to someone who did not start the conversation (shown to them only)",
        ),
        TextKey.WARNING_ALERT: Text(
            "Heads up: I've had to decline several of your requests in this conversation. "
            "You're welcome to ask about something else.",
            "the warning in alert-only mode, where nothing is ended",
        ),
        TextKey.MODEL_UNAVAILABLE: Text(
            "I couldn't reach the model just now, so there is no reply yet. Your message is "
            "saved; please try again in a moment.",
            "the model could not be reached; the message is kept",
        ),
        TextKey.FAILED: Text(
            "Something went wrong on my side, so there is no reply yet. Please try again in "
            "a moment.",
            "handling a message failed unexpectedly",
        ),
        TextKey.INTERRUPTED: Text(
            "\n\n(This reply was interrupted. Please send your message again.)",
            "added to a reply cut off by a shutdown",
        ),
        TextKey.LIMIT: Text(
            "Several of your conversations have ended recently, so you can't start a new one "
            "right now. Please try again later.",
            "the operator's limit on ended conversations was reached (shown privately)",
        ),
        TextKey.TOO_LONG: Text(
            "That message is too long for me ({limit:,} characters at most). Nothing was sent.",
            "a message over the size limit (shown privately)",
            {"limit": 16_000},
        ),
        TextKey.CUT_SHORT: Text(
            "(My reply was cut short: it reached the longest reply I may give. Ask me to go "
            "on if you want the rest.)",
            "after a reply that reached the most tokens a reply may have",
        ),
        TextKey.END_USER_REQUESTED: Text(
            "This conversation has ended because you asked to end it.",
            "the final notice when the person asked to end it",
        ),
        TextKey.END_PERSISTENT_HARMFUL_REQUESTS: Text(
            f"This conversation has ended because it {_KEPT_HARMFUL}.",
            "the final notice after persistent harmful requests",
        ),
        TextKey.END_PERSISTENT_ABUSE: Text(
            f"This conversation has ended because it {_KEPT_ABUSIVE}.",
            "the final notice after persistent abuse",
        ),
        TextKey.BLOCKED: Text(
            "This conversation has ended, so I won't reply here.",
            "to someone writing in an ended conversation (shown privately)",
        ),
        TextKey.BLOCKED_SHUT_OUT: Text(
            "You can no longer take part in this conversation, so I won't reply to you "
            "here. You can start a conversation of your own at any time.",
            "to someone shut out of a conversation who writes in it (shown privately)",
        ),
        TextKey.SHUT_OUT_USER_REQUESTED: Text(
            f"You can no longer take part in this conversation because you asked to leave "
            f"it. {_SHUT_OUT_TAIL}",
            "to someone other than the starter who asked to leave (shown privately)",
        ),
        TextKey.SHUT_OUT_PERSISTENT_HARMFUL_REQUESTS: Text(
            f"You can no longer take part in this conversation because you {_KEPT_HARMFUL}. "
            f"{_SHUT_OUT_TAIL}",
            "to someone other than the starter, shut out after harmful requests (privately)",
        ),
        TextKey.SHUT_OUT_PERSISTENT_ABUSE: Text(
            f"You can no longer take part in this conversation because you {_KEPT_ABUSIVE}. "
            f"{_SHUT_OUT_TAIL}",
            "to someone other than the starter, shut out after abuse (privately)",
        ),
        TextKey.LEFT: Text(
            "You've left this conversation; it goes on for the person who started it. Only "
            "they can end it. You can start a conversation of your own at any time.",
            "to someone other than the starter who asked to end it (shown privately)",
        ),
        TextKey.CONFIRM_END: Text(
            "Do you want to end this conversation? Nobody will be able to continue it, and "
            "you can start a new one at once.",
            "asks the person who started it to confirm ending it",
        ),
        TextKey.KEEP_GOING: Text(
            "Okay, the conversation goes on.",
            "after the person chose to keep talking instead of ending",
        ),
        TextKey.END_LAPSED: Text(
            "The conversation went on, so ending it is no longer asked.",
            "replaces an end confirmation nobody answered",
        ),
        TextKey.AFTER_END: Text(
            "Your conversation has ended. You can start a new one at once, or tell the "
            "moderators if you think ending it was a mistake.",
            "to the starter after the end, privately, with the buttons to go on",
        ),
        TextKey.STARTED: Text(
            "This is your new conversation. What would you like to talk about?",
            "greets a new conversation",
        ),
        TextKey.BRANCHED: Text(
            "This conversation carries an earlier one up to the message you picked. Take it "
            "from there.",
            "greets a conversation branched from an ended one",
        ),
        TextKey.REOPENED: Text(
            "A moderator reopened this conversation. You can continue here.",
            "a moderator reopened the conversation",
        ),
        TextKey.FEEDBACK_THANKS: Text(
            "Thank you. Your feedback is on the record, and moderators can review it.",
            "after someone said an end was a mistake",
        ),
        # The replies to a refused command or click, each shown to the person who asked.
        TextKey.REFUSED_NOT_FOUND: Text(
            "There is no conversation with me there.",
            "refused: there is no conversation where the command or click came from",
        ),
        TextKey.REFUSED_NOT_STARTER: Text(
            "Only the person who started this conversation can decide whether it ends.",
            "refused: someone other than the starter answered an end confirmation",
        ),
        TextKey.REFUSED_ALREADY_ENDED: Text(
            "This conversation has already ended.",
            "refused: the conversation has already ended",
        ),
        TextKey.REFUSED_NOT_ASKED: Text(
            "That is no longer asked: the conversation went on after it, so nothing was ended.",
            "refused: an end confirmation clicked after the conversation went on",
        ),
        TextKey.REFUSED_NOT_ENDED: Text(
            "That conversation is active; there is nothing to reopen.",
            "refused: a moderator reopens a conversation that has not ended",
        ),
        TextKey.REFUSED_NOT_A_MESSAGE: Text(
            "Pick one of this conversation's messages (for a reply in several parts, its first).",
            "refused: a branch from a message that is not one of the conversation's",
        ),
        TextKey.REFUSED_NO_PLACE: Text(
            "I couldn't open a new conversation here.",
            "refused: the platform would not open a place for a new conversation",
        ),
        TextKey.REFUSED_NOT_MODERATOR: Text(
            "Only moderators can do that.",
            "refused: a moderators' command run by someone else",
        ),
        TextKey.REFUSED_BAD_SETTINGS: Text(
            "Those settings would let me end a conversation before warning.",
            "refused: a community's settings that would end before warning",
        ),
        TextKey.REFUSED_UNKNOWN_SETTING: Text(
            "There is no setting by that name.",
            "refused: a setting name that does not exist",
        ),
        TextKey.REFUSED_NOT_CONCERNED: Text(
            "Only the person whose conversation it was, or who was shut out of it, can say that.",
            "refused: someone else says an end was a mistake",
        ),
        TextKey.REFUSED_NOT_FLAGGED: Text(
            "Nobody has called that end a mistake since it was last decided; there is "
            "nothing to uphold.",
            "refused: a moderator upholds an end nobody called a mistake",
        ),
        TextKey.DISCORD_WARNING_TITLE: Text(
            "Warning", "Discord: the warning's embed title", limit=DISCORD_EMBED_TITLE
        ),
        TextKey.DISCORD_CRISIS_TITLE: Text(
            "You don't have to go through this alone",
            "Discord: the crisis resources' embed title",
            limit=DISCORD_EMBED_TITLE,
        ),
        TextKey.DISCORD_END_TITLE: Text(
            "This conversation has ended",
            "Discord: the final notice's embed title",
            limit=DISCORD_EMBED_TITLE,
        ),
        TextKey.DISCORD_START_AGAIN_SERVER: Text(
            "You can start a new conversation right away: mention me in a channel, or use "
            "`/chat` or `/new`.",
            "Discord: how to start again, in a server",
        ),
        TextKey.DISCORD_START_AGAIN_DM: Text(
            "You can start a new conversation right away with `/new`.",
            "Discord: how to start again, in a direct message",
        ),
        TextKey.DISCORD_NO_THREADS_HERE: Text(
            "I can't hold a conversation in a voice channel's chat: Discord has no threads "
            "there, and each conversation with me has a thread of its own. Mention me in a "
            "text channel (or use `/chat` there), or send me a direct message.",
            "Discord: asked for a conversation where no thread can be opened",
        ),
        TextKey.DISCORD_OPENING: Text(
            "A conversation with {mention}.",
            "Discord: the first message of a forum post opened for a conversation",
            {"mention": "<@1>"},
        ),
        TextKey.DISCORD_BUTTON_NEW: Text(
            "Start a new conversation",
            "Discord: the button that starts a new conversation",
            limit=DISCORD_BUTTON_LABEL,
        ),
        TextKey.DISCORD_BUTTON_MISTAKE: Text(
            "This was a mistake",
            "Discord: the button that says an end was a mistake",
            limit=DISCORD_BUTTON_LABEL,
        ),
        TextKey.DISCORD_BUTTON_END: Text(
            "End conversation",
            "Discord: the button that confirms the end",
            limit=DISCORD_BUTTON_LABEL,
        ),
        TextKey.DISCORD_BUTTON_KEEP: Text(
            "Keep talking",
            "Discord: the button that keeps the conversation going",
            limit=DISCORD_BUTTON_LABEL,
        ),
        TextKey.DISCORD_FEEDBACK_TITLE: Text(
            "This was a mistake",
            "Discord: the title of the form asking why an end was a mistake",
            limit=DISCORD_MODAL_LABEL,
        ),
        TextKey.DISCORD_FEEDBACK_LABEL: Text(
            "What went wrong? (optional)",
            "Discord: the label of that form's text field",
            limit=DISCORD_MODAL_LABEL,
        ),
        TextKey.DISCORD_ENDED_HERE: Text(
            "This conversation was ended by the person who started it.",
            "Discord: what the confirmed end confirmation becomes",
        ),
        TextKey.DISCORD_STARTED_IN: Text(
            "Your new conversation is in {thread}.",
            "Discord: where a conversation started with /new or the button is "
            "({thread} is a link to its thread)",
            {"thread": Markup("<#1>")},
        ),
        TextKey.DISCORD_BRANCHED_IN: Text(
            "Your branch is in {thread}.",
            "Discord: where a branch is ({thread} is a link to its thread)",
            {"thread": Markup("<#1>")},
        ),
        TextKey.DISCORD_COMMAND_GONE: Text(
            "This command is no longer available.",
            "Discord: a stale or unknown command (one Discord still shows after an update)",
        ),
        TextKey.DISCORD_COMMAND_FAILED: Text(
            "Something went wrong on my side. Please try again.",
            "Discord: a command failed in the bot's own code",
        ),
        TextKey.DISCORD_COMMAND_REFUSED: Text(
            "This command cannot be used like that here.",
            "Discord: a command refused before it ran (a failed check, unreadable options)",
        ),
        TextKey.DISCORD_THREAD_NAME: Text(
            "Conversation with {name}",
            "Discord: the name of a thread opened without words to name it after "
            "({name} is the person's display name)",
            {"name": "Alice"},
            limit=DISCORD_THREAD_NAME,
        ),
        TextKey.DISCORD_BRANCH_THREAD_NAME: Text(
            "Branch: {channel}",
            "Discord: the name of a branch's thread ({channel} is the name of the thread "
            "it branched from)",
            {"channel": "Conversation with Alice"},
            limit=DISCORD_THREAD_NAME,
        ),
        TextKey.DISCORD_OFFER_POST_NAME: Text(
            "Ended: {name}",
            "Discord: in a forum, the post that offers a way on to someone whose DMs are "
            "closed ({name} is the ended post's name)",
            {"name": "Conversation with Alice"},
            limit=DISCORD_THREAD_NAME,
        ),
        TextKey.DISCORD_OFFER_POST_UNNAMED: Text(
            "An ended conversation",
            "Discord: that post's name when the ended post's name is not known",
            limit=DISCORD_THREAD_NAME,
        ),
        TextKey.SLACK_WARNING_TITLE: Text(
            "Warning", "Slack: the warning's bold first line (plain text)"
        ),
        TextKey.SLACK_END_TITLE: Text(
            "Conversation ended", "Slack: the final notice's header", limit=SLACK_HEADER
        ),
        TextKey.SLACK_START_AGAIN_ASSISTANT: Text(
            "To start again, open a new chat with me from the assistant pane.",
            "Slack: how to start again, in the assistant pane",
        ),
        TextKey.SLACK_START_AGAIN_DM: Text(
            "To start again, send me a new message outside this thread.",
            "Slack: how to start again, in a direct message",
        ),
        TextKey.SLACK_START_AGAIN_CHANNEL: Text(
            "To start again, mention {bot} in a new message in the channel.",
            "Slack: how to start again, in a channel ({bot} is a mention of the bot)",
            {"bot": "<@U1>"},
        ),
        TextKey.SLACK_BUTTON_NEW: Text(
            "Start a new conversation",
            "Slack: the button that starts a new conversation",
            limit=SLACK_BUTTON_TEXT,
        ),
        TextKey.SLACK_BUTTON_MISTAKE: Text(
            "This was a mistake",
            "Slack: the button that says an end was a mistake",
            limit=SLACK_BUTTON_TEXT,
        ),
        TextKey.SLACK_BUTTON_END: Text(
            "End conversation", "Slack: the button that confirms the end", limit=SLACK_BUTTON_TEXT
        ),
        TextKey.SLACK_BUTTON_KEEP: Text(
            "Keep talking",
            "Slack: the button that keeps the conversation going",
            limit=SLACK_BUTTON_TEXT,
        ),
        TextKey.SLACK_ENDED: Text(
            "The conversation was ended.", "Slack: what the confirmed end confirmation becomes"
        ),
        # Slack's own words are mrkdwn: `&lt;` shows as <. Slack runs no slash command inside
        # a thread (bolt-python#873), so they never send anyone to run one there: in a thread
        # it is the message shortcut.
        TextKey.SLACK_NO_TARGET: Text(
            "Which conversation? In its thread, use *End this conversation* from a message's ⋮ "
            "menu; or add the thread's link here: `/quitbot end &lt;link&gt;`.",
            "Slack: /quitbot end without a conversation (mrkdwn)",
        ),
        TextKey.SLACK_HELP: Text(
            "To end your conversation, use *End this conversation* on any message in its "
            "thread (the message's ⋮ menu), or run */quitbot end &lt;thread link&gt;* in a "
            "channel; you will be asked to confirm.\n"
            "Moderators: */quitbot reopen|status|audit &lt;thread link or id&gt;* (reopen takes "
            "a note), */quitbot review* (ends called a mistake; *review resolve &lt;link or "
            "id&gt; reopen|readmit|uphold [note]* decides one), */quitbot settings* (*settings set "
            "&lt;name&gt; &lt;value&gt;*, *settings reset &lt;name&gt;|all*: this workspace's).",
            "Slack: /quitbot's help (mrkdwn)",
        ),
        TextKey.SLACK_NEW_DM: Text(
            "New conversation.",
            "Slack: the first message of a new conversation's thread, in a direct message",
        ),
        TextKey.SLACK_NEW_CHANNEL: Text(
            "New conversation with {person}.",
            "Slack: the first message of a new conversation's thread, in a channel "
            "({person} is a mention of who started it)",
            {"person": Markup("<@U1>")},
        ),
        # Slack documents no length for an assistant thread's title (assistant.threads.
        # setTitle names none); a guess: the pane shows about one line.
        TextKey.SLACK_ENDED_TITLE: Text(
            "Ended conversation",
            "Slack: an ended conversation's title in the assistant pane",
        ),
        TextKey.SLACK_GREETING: Text(
            "Hi! I'm quitbot, an assistant backed by Claude. What can I help you with?",
            "Slack: the greeting when someone opens a new chat in the assistant pane",
        ),
        # The pane's suggested prompts: a title shown, and the message it sends. Slack
        # takes up to four (docs.slack.dev, assistant.threads.setSuggestedPrompts) and
        # documents no length.
        TextKey.SLACK_PROMPT_1_TITLE: Text(
            "Explain something", "Slack: the assistant pane's first suggested prompt's title"
        ),
        TextKey.SLACK_PROMPT_1: Text(
            "Explain how public-key cryptography works, simply.",
            "Slack: what the first suggested prompt sends",
        ),
        TextKey.SLACK_PROMPT_2_TITLE: Text(
            "Help me write", "Slack: the second suggested prompt's title"
        ),
        TextKey.SLACK_PROMPT_2: Text(
            "Help me write a friendly reminder to my team about a deadline.",
            "Slack: what the second suggested prompt sends",
        ),
        TextKey.SLACK_PROMPT_3_TITLE: Text(
            "Brainstorm", "Slack: the third suggested prompt's title"
        ),
        TextKey.SLACK_PROMPT_3: Text(
            "Give me five ideas for a team offsite activity.",
            "Slack: what the third suggested prompt sends",
        ),
        TextKey.SLACK_BRANCHED: Text(
            "{person} branched a conversation from <{link}|this message>.",
            "Slack: a branch's first message (mrkdwn; {person} is a mention of who branched, "
            "{link} the address of the message picked)",
            {"person": Markup("<@U1>"), "link": Markup("https://example.slack.com/archives/C1/p1")},
        ),
        TextKey.SLACK_BRANCHED_UNLINKED: Text(
            "{person} branched a conversation from an earlier message.",
            "Slack: a branch's first message when Slack gave no link to the message picked",
            {"person": Markup("<@U1>")},
        ),
        TextKey.CONSOLE_BANNER: Text(
            "quitbot: talk to Claude.", "console: the first line of a chat in the terminal"
        ),
        TextKey.CONSOLE_HELP: Text(
            "Commands: /new (fresh conversation), /end (end this one), /quit (leave).",
            "console: the commands, after the first line and for /help",
        ),
        TextKey.CONSOLE_UNKNOWN_COMMAND: Text(
            "Unknown command {command}.",
            "console: a command it does not know ({command} is what was typed)",
            {"command": "/foo"},
        ),
        TextKey.CONSOLE_START_AGAIN: Text(
            "Type /new to start a new conversation.",
            "console: how to start again, after an end",
        ),
        TextKey.CONSOLE_ASK_END: Text(
            "End this conversation?", "console: /end asks the person to confirm"
        ),
        TextKey.CONSOLE_CONFIRM_HINT: Text(
            "Type yes to confirm.", "console: how to confirm an end"
        ),
        TextKey.CONSOLE_NOTHING_TO_END: Text(
            "There is no conversation to end yet.", "console: /end before any conversation"
        ),
    }
)

Escape = Callable[[str], str]


def _plain(value: str) -> str:
    return value


class BadTexts(ValueError):
    """An override that cannot be used; the message names the key and the problem."""


def problem(key: str, template: object) -> str:
    """What is wrong with `template` as the text for `key` ("" if nothing is)."""
    if key not in TextKey._value2member_map_:
        return f"{key}: there is no text by that name (`quitbot texts` lists them)"
    text = TEXTS[TextKey(key)]
    if not isinstance(template, str):
        return f"{key}: must be a text (a quoted string)"
    if not template.strip():
        return f"{key}: must not be empty"
    longest = text.limit or LONGEST_TEXT
    if len(template) > longest:
        return f"{key}: is {len(template)} characters; the platform allows at most {longest}"
    try:
        parsed = [(f, spec or "", conv) for _, f, spec, conv in string.Formatter().parse(template)]
    except ValueError as exc:
        return f"{key}: malformed braces ({exc}); write {{{{ and }}}} for a literal brace"
    allowed = ", ".join(f"{{{name}}}" for name in text.placeholders) or "none"
    for name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            return f"{key}: positional {{{name}}} is not allowed; name a placeholder ({allowed})"
        if "." in name or "[" in name:
            return f"{key}: {{{name}}} reaches into a value, which is not allowed ({allowed})"
        if name not in text.placeholders:
            return f"{key}: unknown placeholder {{{name}}} (this text has: {allowed})"
        if conversion:
            return f"{key}: a conversion (!{conversion}) is not allowed in {{{name}}}"
        if "{" in spec:
            return f"{key}: a placeholder inside a format is not allowed in {{{name}}}"
        if spec not in _FORMATS:
            return f"{key}: the format :{spec} is not allowed in {{{name}}} (only :, and :_)"
    try:
        template.format_map(text.placeholders)
    except (ValueError, TypeError) as exc:
        return f"{key}: a placeholder's format does not fit its value ({exc})"
    return ""


def check(overrides: Mapping[str, object]) -> None:
    """Raise BadTexts naming the first override that cannot be used."""
    for key, template in overrides.items():
        found = problem(key, template)
        if found:
            raise BadTexts(found)


def usable(overrides: Mapping[str, str] | None) -> dict[str, str]:
    """The overrides that can be used: stored ones are checked when saved, but a key this
    version no longer has must not stop a conversation (it is left out, and logged)."""
    kept = {}
    for key, template in (overrides or {}).items():
        found = problem(key, template)
        if found:
            log.warning("a community's text is left out: %s", found)
        else:
            kept[key] = template
    return kept


class Texts:
    """The words in force: the defaults with an operator's (and a community's) overrides."""

    __slots__ = ("_overrides",)

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        given = dict(overrides or {})
        check(given)
        self._overrides: Mapping[str, str] = MappingProxyType(given)

    @property
    def overrides(self) -> Mapping[str, str]:
        return self._overrides

    def get(self, key: TextKey, escape: Escape = _plain, **values: Any) -> str:
        """The text for `key` with its placeholders filled in; every text value is passed
        through `escape` (the platform's), so that it can never become markup there."""
        template = self._overrides.get(key.value) or TEXTS[key].default
        safe = {
            name: escape(v) if isinstance(v, str) and not isinstance(v, Markup) else v
            for name, v in values.items()
        }
        return template.format_map(safe)

    def over(self, overrides: Mapping[str, str] | None) -> Texts:
        """These texts with `overrides` on top (a community's over the operator's)."""
        if not overrides:
            return self
        return Texts({**self._overrides, **overrides})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Texts) and dict(self._overrides) == dict(other._overrides)

    def __hash__(self) -> int:
        return hash(frozenset(self._overrides.items()))

    def __repr__(self) -> str:
        return f"Texts({dict(self._overrides)!r})"


DEFAULT_TEXTS = Texts()


def load(path: Path) -> Texts:
    """The texts in a TOML file (`QUITBOT_TEXTS`); BadTexts names the file and the problem."""
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadTexts(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise BadTexts(f"{path}: is not UTF-8 text") from None
    try:
        return Texts(parse(content))
    except BadTexts as exc:
        raise BadTexts(f"{path}: {exc}") from None


def parse(content: str) -> dict[str, str]:
    """Overrides written as TOML (a texts file, the dashboard's field), each checked."""
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise BadTexts(f"is not valid TOML ({exc})") from None
    overrides = dict(_flat(data))
    check(overrides)
    return {key: str(template) for key, template in overrides.items()}


def to_toml(overrides: Mapping[str, str]) -> str:
    """Overrides as TOML that `parse` reads back, one per line."""
    return "".join(f"{key} = {_toml_string(template)}\n" for key, template in overrides.items())


def _flat(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    # `[discord]` with `button_new = ...` and a dotted `discord.button_new = ...` are one key.
    for name, value in table.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def template_file() -> str:
    """Every text with its default, what it is and its placeholders, as a TOML file to edit
    (every line commented out, so that the file as printed changes nothing)."""
    lines = [
        "# quitbot's texts: uncomment and change the ones you want, then point",
        "# QUITBOT_TEXTS at this file. Placeholders in braces are filled in by the bot;",
        "# write {{ and }} for a literal brace.",
    ]
    section = ""
    for key, text in TEXTS.items():
        table, _, name = key.value.rpartition(".")
        if table != section:
            lines += ["", f"[{table}]"]
            section = table
        placeholders = ", ".join(f"{{{p}}}" for p in text.placeholders) or "none"
        limit = f"; at most {text.limit} characters" if text.limit else ""
        lines += [
            "",
            f"# {text.about}. Placeholders: {placeholders}{limit}.",
            f"# {name} = {_toml_string(text.default)}",
        ]
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    # A TOML basic string escapes as JSON does (\n, \", \\, \uXXXX), so json's form is TOML.
    return json.dumps(value, ensure_ascii=False)
