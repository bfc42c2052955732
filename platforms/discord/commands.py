"""/chat, /new, /end, the "Branch from here" message command, and /quitbot for moderators."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.communities import ENFORCEMENTS, EVERY_SETTING, SETTING_NAMES, CommunitySettings
from bot.conversation import ConversationKey, Inbound
from bot.flows import CommunityResult, Flows, Refusal, Result, refusal_text
from bot.review import Decision, decided
from bot.texts import DEFAULT_TEXTS, Markup, TextKey, Texts
from platforms.discord import render, translate
from platforms.discord.errors import command_failed, words_at
from platforms.discord.places import Discord, DiscordPlace, answer
from platforms.discord.reply import NO_MENTIONS

NO_THREAD = "Run this inside a conversation's thread, or name one with the `thread` option."
ThreadOption = app_commands.AppCommandThread | None
Threshold = app_commands.Range[int, 1, 100] | None
RESETTABLE = [app_commands.Choice(name=n, value=n) for n in (*SETTING_NAMES, EVERY_SETTING)]
ENFORCEMENT_CHOICES = [app_commands.Choice(name=n, value=n) for n in ENFORCEMENTS]


class ChatCommands(commands.Cog, name="quitbot.chat"):
    """The commands for everyone; `branch` is registered as a message command by the bot."""

    def __init__(self, discord_: Discord, flows: Flows) -> None:
        self.d, self.flows = discord_, flows

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await command_failed(interaction, error, await words_at(self.flows, interaction))

    @app_commands.command(name="chat", description="Talk to the assistant: opens a thread here")
    @app_commands.describe(prompt="What you want to say")
    async def chat(
        self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 4000]
    ) -> None:
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return
        if translate.holds_no_threads(channel):
            words = await self.flows.engine.words(
                translate.PLATFORM, translate.community_of(channel)
            )
            await answer(interaction, words.get(TextKey.DISCORD_NO_THREADS_HERE))
            return
        response = await interaction.response.send_message(
            **render.echo(interaction.user.display_name, prompt), allowed_mentions=NO_MENTIONS
        )
        message = response.resource
        place: discord.abc.Messageable = channel
        if isinstance(channel, discord.TextChannel) and isinstance(message, discord.Message):
            words = await words_at(self.flows, channel) if not prompt.split() else DEFAULT_TEXTS
            name = translate.thread_name(prompt, interaction.user.display_name, words)
            thread = await self.d.thread_from(message, name)
            if thread is None:
                return
            place = thread
        shown = str(message.id) if isinstance(message, discord.Message) else ""
        event = translate.interaction_event_id(interaction.id)
        key = translate.key_for(place)  # type: ignore[arg-type]
        user_id, community = str(interaction.user.id), translate.community_of(interaction)
        inbound = Inbound(key, event, user_id, prompt, shown, community=community)
        if await self.flows.receive(inbound):  # kept first: a crash now loses nothing
            await self.flows.converse(inbound, DiscordPlace(self.d, place, interaction))

    @app_commands.command(name="new", description="Start a fresh conversation")
    async def new(self, interaction: discord.Interaction) -> None:
        await start_new(self.d, self.flows, interaction)

    @app_commands.command(name="end", description="End this conversation (asks to confirm)")
    async def end(self, interaction: discord.Interaction) -> None:
        if interaction.channel is None:
            return
        key = translate.key_for(interaction.channel)
        result = await self.flows.ask_to_end(key, str(interaction.user.id))
        if result.ok:
            await answer(interaction, render.notice(result.notices[0], in_dm=False))
        else:
            await answer(interaction, result.said(await words_at(self.flows, interaction)))

    async def branch(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """A new conversation carrying the history up to `message` (included).

        Opening a thread and writing the record can outlast Discord's 3-second deadline
        for answering, so the interaction is deferred first and answered by follow-up.
        """
        channel, user = interaction.channel, interaction.user
        if channel is None:
            return
        in_dm = translate.is_dm(channel)
        await interaction.response.defer(ephemeral=not in_dm, thinking=True)
        words = await words_at(self.flows, channel)
        branch = words.get(TextKey.DISCORD_BRANCH_THREAD_NAME, channel=getattr(channel, "name", ""))
        name = translate.thread_name(branch, user.name, words)
        open_place = self.d.opener(channel, name, interaction, in_dm=in_dm, words=words)
        result = await self.flows.branch(
            translate.key_for(channel), str(user.id), open_place, upto_message_id=str(message.id)
        )
        await _opened(interaction, result, TextKey.DISCORD_BRANCHED_IN, words, in_dm=in_dm)


async def start_new(
    d: Discord, flows: Flows, interaction: discord.Interaction, origin: int | None = None
) -> None:
    """/new and "Start a new conversation": a fresh thread (in `origin`, the channel an
    ended server conversation started from, when given), or a clean slate in a DM.

    Opening a thread and writing the record can outlast Discord's 3-second deadline for
    answering, so the interaction is deferred first and answered by follow-up.
    """
    channel, user = interaction.channel, interaction.user
    in_dm = origin is None and translate.is_dm(channel)
    await interaction.response.defer(ephemeral=not in_dm, thinking=True)
    parent = await d.channel(origin) if origin is not None else channel
    community = "" if in_dm else translate.community_of(parent)
    words = await flows.engine.words(translate.PLATFORM, community)
    if translate.holds_no_threads(parent):
        await answer(interaction, words.get(TextKey.DISCORD_NO_THREADS_HERE))
        return
    name = translate.thread_name("", user.display_name, words)
    open_place = d.opener(parent, name, interaction, in_dm=in_dm, words=words)
    result = await flows.start_new(
        translate.PLATFORM, str(user.id), open_place, community=community
    )
    await _opened(interaction, result, TextKey.DISCORD_STARTED_IN, words, in_dm=in_dm)


async def _opened(
    interaction: discord.Interaction, result: Result, where: TextKey, words: Texts, *, in_dm: bool
) -> None:
    """Answer a deferred start or branch in `words`: why not, or `where` it is (in a DM the
    notice answered)."""
    if not result.ok or result.conversation is None:
        await answer(interaction, result.said(words))
    elif not in_dm:
        thread = Markup(f"<#{result.conversation.key.place}>")
        await answer(interaction, words.get(where, render.escape, thread=thread))


@app_commands.guild_only()
class Moderation(
    commands.GroupCog,
    # The group's own name: discord.py's remove_cog takes a group cog's command off the
    # tree by the cog's name (discord/ext/commands/bot.py, remove_cog), not the group's.
    name="quitbot",
    group_name="quitbot",
    group_description="Moderator tools",
):
    """/quitbot reopen | status | audit | review | review-resolve | settings | settings-set |
    settings-reset: moderators' tools, all answered privately; review and settings are the
    server's own."""

    def __init__(self, discord_: Discord, flows: Flows) -> None:
        self.d, self.flows = discord_, flows
        super().__init__()

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await command_failed(interaction, error, await words_at(self.flows, interaction))

    @app_commands.command(description="Reopen an ended conversation and unlock its thread")
    @app_commands.describe(thread="The conversation's thread (default: this one)", note="Why")
    async def reopen(
        self, interaction: discord.Interaction, thread: ThreadOption = None, note: str = ""
    ) -> None:
        key = await self._target(interaction, thread)
        if key is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)  # unlocking is slow
        result = await self.flows.reopen(
            key, str(interaction.user.id), note, is_moderator=True, place=self.d.place(key)
        )
        refused = result.said(await words_at(self.flows, interaction))
        await answer(interaction, refused or f"Reopened <#{key.place}>. {result.problem}".strip())

    @app_commands.command(description="Show a conversation's state")
    @app_commands.describe(thread="The conversation's thread (default: this one)")
    async def status(self, interaction: discord.Interaction, thread: ThreadOption = None) -> None:
        key = await self._target(interaction, thread)
        if key is not None:
            result = await self.flows.status(key, is_moderator=True)
            shown = result.conversation if result.ok else None
            refused = result.said(await words_at(self.flows, interaction)) if not shown else ""
            await answer(interaction, render.status(shown) if shown else refused)

    @app_commands.command(description="Show a conversation's audit trail")
    @app_commands.describe(thread="The conversation's thread (default: this one)")
    async def audit(self, interaction: discord.Interaction, thread: ThreadOption = None) -> None:
        key = await self._target(interaction, thread)
        if key is not None:
            result = await self.flows.audit(key, is_moderator=True)
            if result.ok:
                await answer(interaction, render.audit(result.events))
            else:
                await answer(interaction, result.said(await words_at(self.flows, interaction)))

    @app_commands.command(
        description="List conversations whose end, or someone's shut-out, was called a mistake"
    )
    async def review(self, interaction: discord.Interaction) -> None:
        queue = await self.flows.review_queue(
            is_moderator=self._is_moderator(interaction),
            community=translate.community_of(interaction),
        )
        if queue.ok:
            await answer(interaction, render.review_queue(queue.items, interaction.guild_id))
        else:
            await answer(interaction, queue.said(await words_at(self.flows, interaction)))

    @app_commands.command(
        name="review-resolve", description="Decide on a conversation in the review queue"
    )
    @app_commands.describe(
        conversation="The conversation's id (from /quitbot review), or its thread",
        decision="reopen: the end was a mistake; readmit: the shut-out was; uphold: it stands",
        note="Why (kept on the record)",
    )
    async def review_resolve(
        self,
        interaction: discord.Interaction,
        conversation: str,
        decision: Literal["reopen", "readmit", "uphold"],
        note: str = "",
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # unlocking is slow
        result = await self.flows.resolve_review(
            translate.conversation_target(conversation),
            str(interaction.user.id),
            Decision(decision),
            note,
            is_moderator=self._is_moderator(interaction),
            community=translate.community_of(interaction),
        )
        if not result.ok or result.conversation is None:
            await answer(interaction, result.said(await words_at(self.flows, interaction)))
            return
        done = decided(Decision(decision), result.conversation)
        where = render.place_link(result.conversation, interaction.guild_id)
        await answer(
            interaction, f"{done} `{result.conversation.id}` ({where}). {result.problem}".strip()
        )

    @app_commands.command(description="Show this server's own settings")
    async def settings(self, interaction: discord.Interaction) -> None:
        await self._settings(interaction, None)

    @app_commands.command(name="settings-set", description="Change this server's own settings")
    @app_commands.describe(
        redirects_before_warning="Redirected messages before the warning",
        redirects_before_end="Redirected messages before I may end a conversation",
        crisis_message="What I show someone who may be in crisis",
        system_prompt_extra="Extra instructions for me in this server",
        enforcement="end: I may end conversations; alert: I only alert the moderators",
    )
    @app_commands.choices(enforcement=ENFORCEMENT_CHOICES)
    async def settings_set(
        self,
        interaction: discord.Interaction,
        redirects_before_warning: Threshold = None,
        redirects_before_end: Threshold = None,
        crisis_message: app_commands.Range[str, 1, 1500] | None = None,
        system_prompt_extra: app_commands.Range[str, 1, 4000] | None = None,
        enforcement: str | None = None,
    ) -> None:
        changes = CommunitySettings(
            redirects_before_warning,
            redirects_before_end,
            crisis_message,
            system_prompt_extra,
            enforcement,
        )
        await self._settings(interaction, changes if changes != CommunitySettings() else None)

    @app_commands.command(
        name="settings-reset", description="Put one of this server's settings, or all, back"
    )
    @app_commands.describe(setting="The setting to use the bot's default for again, or all")
    @app_commands.choices(setting=RESETTABLE)
    async def settings_reset(self, interaction: discord.Interaction, setting: str) -> None:
        # Discord offers only the choices, but a stale command registration may send any
        # name: the core refuses one that is no setting's.
        result = await self.flows.reset_community_settings(
            translate.community_of(interaction),
            None if setting == EVERY_SETTING else setting,
            str(interaction.user.id),
            is_moderator=self._is_moderator(interaction),
        )
        await _show_settings(interaction, result, await words_at(self.flows, interaction))

    async def _settings(
        self, interaction: discord.Interaction, changes: CommunitySettings | None
    ) -> None:
        """Show the server's own settings, once `changes` (if any) are made; or why not."""
        community, moderates = translate.community_of(interaction), self._is_moderator(interaction)
        result = await (
            self.flows.community_settings(community, is_moderator=moderates)
            if changes is None
            else self.flows.set_community_settings(
                community, changes, str(interaction.user.id), is_moderator=moderates
            )
        )
        await _show_settings(interaction, result, await words_at(self.flows, interaction))

    async def _target(
        self, interaction: discord.Interaction, thread: ThreadOption
    ) -> ConversationKey | None:
        """The thread the command acts on (the option, or the thread it runs in), for a
        moderator; None once the person was told why not."""
        channel = interaction.channel
        here = channel.id if isinstance(channel, discord.Thread) else None
        thread_id = thread.id if thread is not None else here
        if not self._is_moderator(interaction):
            words = await words_at(self.flows, interaction)
            await answer(interaction, refusal_text(Refusal.NOT_MODERATOR, words))
        elif thread_id is None:
            await answer(interaction, NO_THREAD)
        else:
            return translate.thread_key(thread_id)
        return None

    def _is_moderator(self, interaction: discord.Interaction) -> bool:
        """Manage Threads in the channel, or the configured moderator role."""
        permissions = interaction.permissions
        if permissions.manage_threads or permissions.administrator:
            return True
        role_id = self.d.settings.moderator_role_id
        user = interaction.user
        return (
            role_id is not None
            and isinstance(user, discord.Member)
            and any(role.id == role_id for role in user.roles)
        )


async def _show_settings(
    interaction: discord.Interaction, result: CommunityResult, words: Texts
) -> None:
    """The server's own settings as a flow returned them, or why not, to the moderator."""
    shown = render.community_settings(result.settings) if result.settings else result.said(words)
    await answer(interaction, shown)
