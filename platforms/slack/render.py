"""The core's words -> Slack: Markdown as mrkdwn, long text split, notices as Block Kit. Pure."""

from __future__ import annotations

import re
from typing import Any

from bot.notices import Notice, NoticeKind
from bot.texts import DEFAULT_TEXTS, Markup, TextKey, Texts
from platforms.slack.translate import Place

# Slack shows up to 40,000 characters but advises 4,000; escaping can grow text a little.
MESSAGE_LIMIT = 3_500
# chat.appendStream takes up to 12,000 characters of Markdown at once.
STREAM_APPEND_LIMIT = 12_000
_SECTION_LIMIT = 3_000

NEW_CONVERSATION = "quitbot_new_conversation"
MISTAKE = "quitbot_mistake"
END_CONFIRM = "quitbot_end_confirm"
END_CANCEL = "quitbot_end_cancel"
BRANCH = "quitbot_branch"  # message shortcut callback ids (deploy/slack-manifest.yml)
END = "quitbot_end"

ENDED_REACTION = "no_entry_sign"

Blocks = list[dict[str, Any]]

# --- Markdown -> mrkdwn --------------------------------------------------------------------

_FENCE = re.compile(r"(```[\s\S]*?(?:```|$))")
_INLINE_CODE = re.compile(r"(`[^`\n]+`)")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.M)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$", re.M)
_BOLD_MARK = "\x01"


def escape(text: str) -> str:
    """Slack reads &, < and > as markup; these three must be escaped everywhere."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Claude's Markdown as Slack mrkdwn; an unclosed code fence (mid-stream) stays code."""
    parts = _FENCE.split(markdown)
    return "".join(_code_block(p) if p.startswith("```") else _prose(p) for p in parts)


def _code_block(block: str) -> str:
    # Slack ignores a language tag and would show it as the first line of code.
    body = block[3:]
    first, newline, rest = body.partition("\n")
    if newline and re.fullmatch(r"[\w+#.-]+", first.strip()):
        body = rest
    return "```" + escape(body)


def _prose(text: str) -> str:
    return "".join(
        escape(piece) if piece.startswith("`") else _inline(piece)
        for piece in _INLINE_CODE.split(text)
    )


def _inline(text: str) -> str:
    text = escape(text)
    text = _RULE.sub("──────────", text)
    text = _HEADING.sub(lambda m: _BOLD_MARK + _BOLD.sub(r"\2", m.group(1)) + _BOLD_MARK, text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    return text.replace(_BOLD_MARK, "*")


# --- mass mentions -------------------------------------------------------------------------

# Special mentions notify a whole channel or user group; plain "@here" text does not (Slack,
# "Formatting text for app surfaces": only the <!here> form is a mention). The model's text
# must never notify anyone, even when someone asks it to write one.
_MASS_MENTION = re.compile(
    r"<!(here|channel|everyone)(?:\|[^>\n]*)?>|<!subteam\^[^>\n|]*(?:\|([^>\n]*))?>"
)
_OPEN_TOKEN = re.compile(r"<[^>\n]{0,200}$")  # a `<` that may still become a mention


def _plain_mention(match: re.Match[str]) -> str:
    if match.group(1):
        return f"@{match.group(1)}"
    handle = (match.group(2) or "").lstrip("@")
    return f"@{handle or 'group'}"


def neutral(text: str, final: bool) -> str:
    """The model's Markdown as far as it can be shown now, with every special mention
    written as plain text that notifies nobody. Code spans and fences are left as written
    (Slack never reads a mention there); while a span is still open, text that could still
    become a mention waits, unless the reply is `final` (then an unclosed span is prose).
    Prefix-stable: a longer text never changes what a shorter one already showed."""
    shown: list[str] = []
    at = 0
    while at < len(text):
        fence = text.startswith("```", at)
        tick = "```" if fence else "`" if text[at] == "`" else ""
        if tick:
            end = text.find(tick, at + len(tick))
            if end != -1 and (fence or "\n" not in text[at:end]):
                shown.append(text[at : end + len(tick)])  # a closed span: left alone
                at = end + len(tick)
                continue
            if not final and "<!" in text[at:]:
                break  # unclosed: it may close (code) or not (prose); wait and see
        stop = _next_tick(text, at + len(tick)) if tick else _next_tick(text, at)
        prose = text[at:stop]
        if stop == len(text) and not final:
            cut = _OPEN_TOKEN.search(prose)
            if cut is not None:
                prose, stop = prose[: cut.start()], at + cut.start()
        shown.append(_MASS_MENTION.sub(_plain_mention, prose))
        if stop == at:
            break
        at = stop
    return "".join(shown)


def _next_tick(text: str, start: int) -> int:
    found = text.find("`", start)
    return len(text) if found == -1 else found


# --- splitting -----------------------------------------------------------------------------


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut Markdown into pieces of at most `limit` characters, at the cleanest break.

    Paragraphs, then lines, then words; a code block cut in two is closed and reopened so
    both pieces render as code.
    """
    if limit < 16:
        raise ValueError("limit too small to split cleanly")
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _cut_at(rest, limit - 4)  # room to close a code fence
        head, rest = rest[:cut], rest[cut:]
        if head.count("```") % 2:
            head = head.rstrip("\n") + "\n```"
            rest = "```\n" + rest.lstrip("\n")
        else:
            rest = rest.lstrip()
        pieces.append(head.rstrip())
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def _cut_at(text: str, limit: int) -> int:
    window = text[:limit]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > limit // 2:
            return at + len(separator)
    return limit


# --- notices -------------------------------------------------------------------------------

_ICONS = {
    NoticeKind.WARNING: ":warning:",
    NoticeKind.CRISIS: ":sos:",
    NoticeKind.END: ":no_entry_sign:",
    NoticeKind.BLOCKED: ":no_entry_sign:",
    NoticeKind.MODEL_UNAVAILABLE: ":hourglass:",
    NoticeKind.LIMIT: ":hourglass:",
    NoticeKind.TOO_LONG: ":scissors:",
    NoticeKind.CUT_SHORT: ":scissors:",
    NoticeKind.STARTED: ":wave:",
    NoticeKind.REOPENED: ":arrows_counterclockwise:",
    NoticeKind.SHUT_OUT: ":no_entry_sign:",
    NoticeKind.LEFT: ":wave:",
}


_START_AGAIN = {
    Place.ASSISTANT: TextKey.SLACK_START_AGAIN_ASSISTANT,
    Place.DM: TextKey.SLACK_START_AGAIN_DM,
}


def how_to_start_again(place: Place, bot_user_id: str, words: Texts = DEFAULT_TEXTS) -> str:
    """How to start again here, as mrkdwn (the operator's template is theirs to mark up)."""
    key = _START_AGAIN.get(place, TextKey.SLACK_START_AGAIN_CHANNEL)
    return words.get(key, escape, bot=Markup(f"<@{bot_user_id}>"))


def render_notice(
    notice: Notice, place: Place, bot_user_id: str, conversation_id: str = "", via: str = ""
) -> tuple[str, Blocks]:
    """A notice as (fallback text, blocks); the END notice gets its two buttons, the end
    confirmation its own, which carry `via` (how the person asked: for the record)."""
    match notice.kind:
        case NoticeKind.WARNING:
            return notice.text, _warning(notice.text, notice.words)
        case NoticeKind.END:
            return _end(notice, place, bot_user_id, conversation_id)
        case NoticeKind.CONFIRM_END:
            value = action_value(conversation_id, place, via)
            return notice.text, _confirm_end(notice.text, value, notice.words)
        case NoticeKind.BLOCKED:
            # mrkdwn: its mention is markup
            again = how_to_start_again(place, bot_user_id, notice.words)
            text = f"{notice.text} {again}"
            return text, [_section(f"{_ICONS[notice.kind]} {escape(notice.text)} {again}")]
        case _:
            icon = _ICONS.get(notice.kind, "")
            return notice.text, [_section(f"{icon} {escape(notice.text)}".strip())]


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn[:_SECTION_LIMIT]}}


def _context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}


def _warning(text: str, words: Texts) -> Blocks:
    # What continuing leads to is in the core's words (`text`): an end, being shut out of
    # someone else's conversation, or in alert-only mode nothing at all.
    title = escape(words.get(TextKey.SLACK_WARNING_TITLE))
    return [_section(f":warning: *{title}*\n{escape(text)}")]


def _end(
    notice: Notice, place: Place, bot_user_id: str, conversation_id: str
) -> tuple[str, Blocks]:
    """The final notice. Slack cannot lock a thread, so its buttons stay usable there."""
    words = notice.words
    again = how_to_start_again(place, bot_user_id, words)
    title = words.get(TextKey.SLACK_END_TITLE)
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        _section(escape(notice.text)),
    ]
    if notice.resources:
        blocks.append(_section(f":sos: {escape(notice.resources)}"))
    value = action_value(conversation_id, place)
    new = (words.get(TextKey.SLACK_BUTTON_NEW), NEW_CONVERSATION)
    mistake = (words.get(TextKey.SLACK_BUTTON_MISTAKE), MISTAKE)
    blocks += [_context(again), _actions("quitbot_end", value, new, mistake, style="primary")]
    text = " ".join(part for part in (notice.text, notice.resources, again) if part)
    return text, blocks


def _actions(block_id: str, value: str, *buttons: tuple[str, str], style: str) -> dict[str, Any]:
    """A row of buttons carrying one value; the first one has `style`."""
    elements = []
    for index, (label, action_id) in enumerate(buttons):
        button = {"type": "button", "text": {"type": "plain_text", "text": label}}
        elements.append({**button, "action_id": action_id, "value": value})
        if index == 0:
            elements[0]["style"] = style
    return {"type": "actions", "block_id": block_id, "elements": elements}


def action_value(conversation_id: str, place: Place, via: str = "") -> str:
    """A button's value: which conversation, where it lived (to say how to start again),
    and for an end confirmation how the person asked (`via`: command, shortcut)."""
    value = f"{conversation_id}|{place.value}"
    return f"{value}|{via}" if via else value


def action_via(value: str) -> str:
    """How the person asked to end, as `action_value` put it ("" if it did not)."""
    parts = value.split("|")
    return parts[2] if len(parts) > 2 and parts[2] in _VIAS else ""


_VIAS = frozenset({"command", "shortcut"})


def parse_action_value(value: str) -> tuple[str, Place]:
    conversation_id, _, place = value.partition("|")
    place = place.partition("|")[0]
    return conversation_id, Place(place) if place in Place._value2member_map_ else Place.CHANNEL


def _confirm_end(text: str, value: str, words: Texts) -> Blocks:
    """The end confirmation: for the end command (shown privately) and for the model's
    proposal (in the thread); the core lets only the person who started it confirm."""
    end = (words.get(TextKey.SLACK_BUTTON_END), END_CONFIRM)
    keep = (words.get(TextKey.SLACK_BUTTON_KEEP), END_CANCEL)
    return [
        _section(escape(text)),
        _actions("quitbot_end_confirm", value, end, keep, style="danger"),
    ]
