"""The core's notices and records -> Discord messages: content, embeds and buttons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import discord

from bot.communities import CommunitySettings
from bot.conversation import AuditEvent, Conversation
from bot.notices import Notice, NoticeKind
from bot.ports import ModLogEntry, ModLogKind
from bot.review import ReviewItem
from bot.texts import DEFAULT_TEXTS, TEXTS, Markup, TextKey, Texts
from platforms.discord import translate

WARNING_COLOUR = discord.Colour(0xE67E22)
END_COLOUR = discord.Colour(0xE74C3C)
CRISIS_COLOUR = discord.Colour(0x3498DB)
MODLOG_COLOUR = discord.Colour(0x95A5A6)

# The defaults; what is shown comes from the notice's words (`bot.texts`).
START_AGAIN_IN_SERVER = TEXTS[TextKey.DISCORD_START_AGAIN_SERVER].default
START_AGAIN_IN_DM = TEXTS[TextKey.DISCORD_START_AGAIN_DM].default
_START_AGAIN = {True: TextKey.DISCORD_START_AGAIN_DM, False: TextKey.DISCORD_START_AGAIN_SERVER}
MESSAGE_LIMIT = 2000
EMBED_LIMIT = 4096  # an embed's description
END_TITLE = TEXTS[TextKey.DISCORD_END_TITLE].default
NO_THREADS_HERE = TEXTS[TextKey.DISCORD_NO_THREADS_HERE].default
# What the feedback on an end is recorded as (for moderators, in the operator's language).
MISTAKE = "This was a mistake"


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    custom_id: str
    style: discord.ButtonStyle = discord.ButtonStyle.secondary


@dataclass(frozen=True, slots=True)
class Rendered:
    """One Discord message to post."""

    content: str | None = None
    embed: discord.Embed | None = None
    buttons: tuple[Button, ...] = field(default=())

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for discord.py's send(); call inside the event loop."""
        sent: dict[str, Any] = {"content": self.content, "embed": self.embed}
        if self.buttons:
            sent["view"] = view(self.buttons)
        return sent

    def addressed(self, user_id: str) -> Rendered:
        """The same message, starting with a mention of the person it is for."""
        return replace(self, content=f"<@{user_id}> {self.content or ''}".strip())


def opening(user_id: str, texts: Texts = DEFAULT_TEXTS) -> Rendered:
    """The first message of a forum post opened for someone's conversation (a post cannot
    be opened without one); the greeting that follows is the conversation's."""
    return Rendered(texts.get(TextKey.DISCORD_OPENING, escape, mention=Markup(f"<@{user_id}>")))


def escape(value: str) -> str:
    """A value shown as written: no Markdown, and no mention (of anyone, or everyone)."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(value))


def echo(author: str, prompt: str) -> dict[str, Any]:
    """/chat's prompt (up to 4,000 characters) shown back within Discord's limits: content
    up to 2,000, else an embed (description up to 4,096; beyond either, 400 / 50035)."""
    shown = f"**{author}:** {prompt}"
    if len(shown) <= MESSAGE_LIMIT:
        return {"content": shown}
    description = prompt if len(prompt) <= EMBED_LIMIT else prompt[: EMBED_LIMIT - 1] + "…"
    return {"content": f"**{author}:**", "embed": discord.Embed(description=description)}


# The notices whose "Start a new conversation" button leads back to the channel the
# conversation started from (`origin`).
LEADS_BACK = frozenset({NoticeKind.BLOCKED, NoticeKind.AFTER_END})


def notice(
    item: Notice,
    *,
    in_dm: bool,
    conversation: Conversation | None = None,
    origin: int | None = None,
) -> Rendered:
    """How a notice looks on Discord. `origin` is the channel a conversation in a server
    started from, where "Start a new conversation" opens the next thread.

    The final notice (END) carries no buttons: it stays in a thread that is then locked,
    where Discord disables them. The starter gets them with AFTER_END, where they work.
    """
    words = item.words
    match item.kind:
        case NoticeKind.WARNING:
            title = words.get(TextKey.DISCORD_WARNING_TITLE)
            return Rendered(embed=_embed(title, item.text, WARNING_COLOUR))
        case NoticeKind.CRISIS:
            title = words.get(TextKey.DISCORD_CRISIS_TITLE)
            return Rendered(embed=_embed(title, item.text, CRISIS_COLOUR))
        case NoticeKind.END:
            parts = [item.text, words.get(_START_AGAIN[in_dm]), item.resources]
            title = words.get(TextKey.DISCORD_END_TITLE)
            return Rendered(embed=_embed(title, "\n\n".join(p for p in parts if p), END_COLOUR))
        case NoticeKind.BLOCKED:
            again = words.get(_START_AGAIN[in_dm])
            return Rendered(f"{item.text}\n{again}", buttons=(_new(origin, words),))
        case NoticeKind.CONFIRM_END:
            return Rendered(item.text, buttons=confirm_buttons(words))
        case NoticeKind.AFTER_END:
            buttons = [_new(origin, words)]
            if conversation is not None:
                label = words.get(TextKey.DISCORD_BUTTON_MISTAKE)
                buttons.append(Button(label, translate.mistake_id(conversation.id)))
            return Rendered(item.text, buttons=tuple(buttons))
        case NoticeKind.STARTED if conversation is not None and not in_dm:
            return Rendered(f"<@{conversation.user_id}>, {item.text}")
        case _:
            return Rendered(content=item.text)


def confirm_buttons(words: Texts) -> tuple[Button, ...]:
    return (
        Button(
            words.get(TextKey.DISCORD_BUTTON_END), translate.CONFIRM_END, discord.ButtonStyle.danger
        ),
        Button(words.get(TextKey.DISCORD_BUTTON_KEEP), translate.CANCEL_END),
    )


CONFIRM_BUTTONS = confirm_buttons(DEFAULT_TEXTS)


def _embed(title: str, description: str, colour: discord.Colour) -> discord.Embed:
    return discord.Embed(title=title, description=description[:EMBED_LIMIT], colour=colour)


def _new(origin: int | None, words: Texts) -> Button:
    label = words.get(TextKey.DISCORD_BUTTON_NEW)
    return Button(label, translate.new_id(origin), discord.ButtonStyle.primary)


def view(buttons: Sequence[Button]) -> discord.ui.View:
    """A view for these buttons; call inside the event loop (discord.py needs one).

    Our buttons are answered from `on_interaction` by custom id, which survives restarts,
    so the view is stopped before sending: discord.py then keeps no callback state for it.
    """
    built = discord.ui.View(timeout=None)
    for button in buttons:
        built.add_item(
            discord.ui.Button(label=button.label, custom_id=button.custom_id, style=button.style)
        )
    built.stop()
    return built


def feedback_form(conversation_id: str, words: Texts = DEFAULT_TEXTS) -> discord.ui.Modal:
    """Asks why an end was a mistake; answered by custom id in the cog, even after a restart."""
    title = words.get(TextKey.DISCORD_FEEDBACK_TITLE)
    form = discord.ui.Modal(
        title=title, custom_id=translate.feedback_modal_id(conversation_id), timeout=600
    )
    field: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label=words.get(TextKey.DISCORD_FEEDBACK_LABEL), custom_id=translate.FEEDBACK_FIELD,
        style=discord.TextStyle.paragraph, required=False, max_length=1000,
    )  # fmt: skip
    return form.add_item(field)


# --- moderators ----------------------------------------------------------------------------


def status(conversation: Conversation) -> str:
    ladder = conversation.ladder
    lines = [
        f"**Conversation** `{conversation.id}`: {conversation.state}",
        f"Started by <@{conversation.user_id}> <t:{int(conversation.created_at.timestamp())}:R>",
        f"Redirects: {ladder.redirects} · warned: {_yes(ladder.warned)} · "
        f"crisis flagged: {_yes(ladder.crisis)}",
    ]
    if ladder.ended:
        by = ladder.ended_by.value if ladder.ended_by else "unknown"
        why = ladder.ended_reason.value if ladder.ended_reason else "unknown"
        lines.append(f"Ended by {by}: {why}")
    if conversation.branched_from:
        lines.append(f"Branched from `{conversation.branched_from}`")
    return "\n".join(lines)


def audit(events: Sequence[AuditEvent], *, limit: int = MESSAGE_LIMIT) -> str:
    """The audit trail, newest last, trimmed from the front to fit one message."""
    if not events:
        return "No events on the record for this conversation."
    lines = [_event_line(event) for event in events]
    text = "\n".join(lines)
    while len(text) > limit and len(lines) > 1:
        lines = lines[1:]
        text = "…\n" + "\n".join(lines)
    return text[:limit]


def _event_line(event: AuditEvent) -> str:
    detail = ", ".join(f"{k}: {v}" for k, v in event.detail.items() if v not in ("", None))
    when = f"<t:{int(event.at.timestamp())}:f>"
    line = f"{when} **{event.kind}** by {event.actor.value}"
    return f"{line} ({detail})"[:300] if detail else line


def review_queue(items: Sequence[ReviewItem], guild_id: int | None) -> Rendered:
    """The review queue, longest-waiting first, in one embed (items that do not fit in
    its 4,096 characters are counted, not shown)."""
    if not items:
        return Rendered("Nothing to review: no one has called an end a mistake lately.")
    shown: list[str] = []
    for index, item in enumerate(items):
        entry = _review_item(item, guild_id)
        more = f"\n\n…and {len(items) - index - 1} more" if index + 1 < len(items) else ""
        if len("\n\n".join([*shown, entry])) + len(more) > EMBED_LIMIT:
            shown.append(f"…and {len(items) - index} more")
            break
        shown.append(entry)
    content = (
        f"**{len(items)} to review.** Decide with `/quitbot review-resolve` "
        "(`reopen` unlocks the thread and tells the person; `readmit` lets someone shut out "
        "take part again; `uphold` records only)."
    )
    return Rendered(content, embed=_embed("Review queue", "\n\n".join(shown), MODLOG_COLOUR))


def _review_item(item: ReviewItem, guild_id: int | None) -> str:
    conversation = item.conversation
    why = conversation.ladder.ended_reason.value if conversation.ladder.ended_reason else "?"
    what = f"ended: {why} · redirects: {item.redirects}"
    if item.shut_out_user_id is not None:
        theirs = item.participants.get(item.shut_out_user_id)
        reason = theirs.ended_reason.value if theirs and theirs.ended_reason else "?"
        what = f"<@{item.shut_out_user_id}> shut out: {reason}"
    lines = [
        f"**`{conversation.id}`** · {place_link(conversation, guild_id)}",
        f"Waiting since <t:{int(item.waiting_since.timestamp())}:R> · {what}",
    ]
    if item.stated_reason:
        lines.append(f"Model's reason: {_clip(item.stated_reason, 200)}")
    lines += [f"Feedback from <@{f.user_id}>: {_clip(f.text, 250)}" for f in item.feedback[-2:]]
    lines += [f"> **{m.role}:** {_clip(m.text, 120)}" for m in item.last_messages[-2:]]
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


def community_settings(own: CommunitySettings) -> str:
    """A server's own settings; unset ones use the bot's defaults."""
    lines = ["**This server's settings** (unset: the bot's default applies)"]
    for item in fields(own):
        value = getattr(own, item.name)
        lines.append(f"`{item.name}`: {'default' if value is None else _clip(str(value), 700)}")
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


_MODLOG_TITLES = {
    ModLogKind.ENDED: "Conversation ended",
    ModLogKind.REOPENED: "Conversation reopened",
    ModLogKind.FEEDBACK: "Feedback on an ended conversation",
    ModLogKind.SHUT_OUT: "Someone was shut out of a conversation (it goes on)",
    ModLogKind.WOULD_END: "Alert: I would have ended this (alert-only mode; nothing ended)",
}
_MODLOG_TEXT_LABELS = {
    ModLogKind.REOPENED: "Note",
    ModLogKind.SHUT_OUT: "Why",
    ModLogKind.WOULD_END: "Reason and the model's explanation",
}
_MODLOG_ACTOR_LABELS = {ModLogKind.SHUT_OUT: "Shut out", ModLogKind.WOULD_END: "Concerning"}


def modlog(entry: ModLogEntry, guild_id: int | None) -> discord.Embed:
    """A mod-log entry: what happened to which conversation, with a link to its place."""
    conversation = entry.conversation
    embed = discord.Embed(
        title=_MODLOG_TITLES[entry.kind],
        description=place_link(conversation, guild_id, entry.message_id),
        colour=MODLOG_COLOUR,
    )
    embed.add_field(name="Conversation", value=f"`{conversation.id}`", inline=True)
    embed.add_field(name="Started by", value=f"<@{conversation.user_id}>", inline=True)
    ladder = conversation.ladder
    actor = f"<@{entry.actor_id}>" if entry.actor_id else ""
    fields = {
        "Reason": ladder.ended_reason.value if ladder.ended_reason else "",
        "Ended by": ladder.ended_by.value if ladder.ended_by else "",
    } if entry.kind is ModLogKind.ENDED else {
        _MODLOG_ACTOR_LABELS.get(entry.kind, "By"): actor,
        _MODLOG_TEXT_LABELS.get(entry.kind, "Feedback"): entry.text,
    }  # fmt: skip
    for name, value in fields.items():
        if value:
            embed.add_field(name=name, value=value[:1024])
    return embed


def place_link(conversation: Conversation, guild_id: int | None, message_id: str = "") -> str:
    thread_id = translate.thread_id_of(conversation.key)
    if thread_id is None:
        return f"A direct message with <@{conversation.user_id}>"
    if guild_id is None:
        return f"<#{thread_id}>"
    link = f"https://discord.com/channels/{guild_id}/{thread_id}"
    return f"<#{thread_id}> · {link}/{message_id}" if message_id else f"<#{thread_id}> · {link}"
