"""The core's notices and records -> Discord messages: content, embeds and buttons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.conversation import AuditEvent, Conversation
from bot.notices import Notice, NoticeKind
from platforms.discord import translate

WARNING_COLOUR = discord.Colour(0xE67E22)
END_COLOUR = discord.Colour(0xE74C3C)
CRISIS_COLOUR = discord.Colour(0x3498DB)
MODLOG_COLOUR = discord.Colour(0x95A5A6)

START_AGAIN_IN_SERVER = (
    "You can start a new conversation right away: press **Start a new conversation**, "
    "mention me in a channel, or use `/chat`."
)
START_AGAIN_IN_DM = (
    "You can start a new conversation right away: press **Start a new conversation** or use `/new`."
)
MESSAGE_LIMIT = 2000
EMBED_LIMIT = 4096  # an embed's description


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


def echo(author: str, prompt: str) -> dict[str, Any]:
    """/chat's prompt shown back in the channel, within Discord's limits (message content
    up to 2,000 characters, embed description up to 4,096; beyond either, 400 / 50035).

    A prompt too long for the content goes in an embed; /chat takes at most 4,000
    characters, and the full prompt goes to the model whatever is shown.
    """
    shown = f"**{author}:** {prompt}"
    if len(shown) <= MESSAGE_LIMIT:
        return {"content": shown}
    description = prompt if len(prompt) <= EMBED_LIMIT else prompt[: EMBED_LIMIT - 1] + "…"
    return {"content": f"**{author}:**", "embed": discord.Embed(description=description)}


def start_again(in_dm: bool) -> str:
    return START_AGAIN_IN_DM if in_dm else START_AGAIN_IN_SERVER


def notice(item: Notice, *, in_dm: bool, conversation_id: str = "") -> Rendered:
    """How a notice looks on Discord; END and BLOCKED add how to start again here."""
    match item.kind:
        case NoticeKind.WARNING:
            embed = discord.Embed(title="Warning", description=item.text, colour=WARNING_COLOUR)
            return Rendered(embed=embed)
        case NoticeKind.CRISIS:
            embed = discord.Embed(
                title="You don't have to go through this alone",
                description=item.text,
                colour=CRISIS_COLOUR,
            )
            return Rendered(embed=embed)
        case NoticeKind.END:
            return _end(item, in_dm=in_dm, conversation_id=conversation_id)
        case NoticeKind.BLOCKED:
            return Rendered(
                content=f"{item.text}\n{start_again(in_dm)}",
                buttons=(_new_button(),),
            )
        case _:
            return Rendered(content=item.text)


def _end(item: Notice, *, in_dm: bool, conversation_id: str) -> Rendered:
    parts = [item.text, start_again(in_dm)]
    if item.resources:
        parts.append(item.resources)
    embed = discord.Embed(
        title="This conversation has ended",
        description="\n\n".join(parts),
        colour=END_COLOUR,
    )
    buttons = [_new_button()]
    if conversation_id:
        buttons.append(Button("This was a mistake", translate.mistake_id(conversation_id)))
    return Rendered(embed=embed, buttons=tuple(buttons))


def _new_button() -> Button:
    return Button(
        "Start a new conversation", translate.NEW_CONVERSATION, discord.ButtonStyle.primary
    )


def confirm_end() -> Rendered:
    return Rendered(
        content=(
            "End this conversation? Nobody will be able to continue it, and you can start a "
            "new one at once."
        ),
        buttons=(
            Button("End conversation", translate.CONFIRM_END, discord.ButtonStyle.danger),
            Button("Keep talking", translate.CANCEL_END),
        ),
    )


def view(buttons: Sequence[Button]) -> discord.ui.View | None:
    """A view for these buttons; call inside the event loop (discord.py needs one).

    Our buttons are answered from `on_interaction` by custom id, which survives restarts,
    so the view is stopped before sending: discord.py then keeps no callback state for it.
    """
    if not buttons:
        return None
    built = discord.ui.View(timeout=None)
    for button in buttons:
        built.add_item(
            discord.ui.Button(label=button.label, custom_id=button.custom_id, style=button.style)
        )
    built.stop()
    return built


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


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def modlog(title: str, conversation: Conversation, link: str, **fields: str) -> discord.Embed:
    """A mod-log entry: what happened to which conversation, with a link to its place."""
    embed = discord.Embed(title=title, description=link, colour=MODLOG_COLOUR)
    embed.add_field(name="Conversation", value=f"`{conversation.id}`", inline=True)
    embed.add_field(name="Started by", value=f"<@{conversation.user_id}>", inline=True)
    for name, value in fields.items():
        if value:
            embed.add_field(name=name.replace("_", " ").capitalize(), value=value[:1024])
    return embed
