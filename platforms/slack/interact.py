"""What people type and click: `/quitbot`, the message shortcuts and the buttons, each
translated into one call of the core's flows; a refusal is shown to that person only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from functools import partial
from typing import Any

from bot.communities import EVERY_SETTING, TEXT_PREFIX, CommunitySettings
from bot.conversation import AuditEvent, Conversation, ConversationKey
from bot.flows import CommunityResult, Flows, Refusal, Result
from bot.review import Decision, ReviewItem, decided
from bot.texts import Markup, TextKey, Texts
from platforms.slack.place import Deps, SlackPlace, SlackPlaces
from platforms.slack.render import (
    MESSAGE_LIMIT,
    action_via,
    escape,
    how_to_start_again,
    parse_action_value,
    render_notice,
)
from platforms.slack.translate import (
    PLATFORM,
    Command,
    Place,
    key_from_link,
    parse_command,
    plain_text,
    split_key,
    thread_key,
)

MISTAKE = "This was a mistake"
Tell = Callable[..., Awaitable[None]]  # (text, blocks=None): to one person, privately


class Interactions:
    def __init__(self, deps: Deps, flows: Flows, places: SlackPlaces) -> None:
        self._deps, self._flows, self._places = deps, flows, places

    def _tell(self, body: dict[str, Any], thread_ts: str = "") -> Tell:
        """Privately to whoever typed or clicked: in the channel, or through the payload's
        response_url where the app is not a member (a command can run in any channel)."""
        channel = str(body.get("channel_id") or "") or _channel(body)
        user = str(body.get("user_id") or "") or _who(body)
        url = str(body.get("response_url") or "")
        return partial(self._deps.ephemeral, channel, user, thread_ts=thread_ts, response_url=url)

    async def command(self, payload: dict[str, Any]) -> None:
        """One `/quitbot` invocation, already acknowledged; every answer is ephemeral."""
        command, user = parse_command(str(payload.get("text") or "")), str(payload.get("user_id"))
        tell, team = self._tell(payload), str(payload.get("team_id") or "")
        target: ConversationKey | str = key_from_link(command.target) or command.target
        words = await self._words(payload)
        if command.verb == "end" and command.target:
            await self._ask_to_end(target, user, tell, words)
        elif command.verb in {"reopen", "status", "audit", "review", "settings"}:
            await tell(await self._moderate(command, target, user, team, words))
        else:
            key = TextKey.SLACK_NO_TARGET if command.verb == "end" else TextKey.SLACK_HELP
            await tell(words.get(key))

    async def _moderate(
        self, command: Command, target: ConversationKey | str, user: str, team: str, words: Texts
    ) -> str:
        """A moderator's command; `review` and `settings` are about this workspace only."""
        moderator, flows, verb = await self._is_moderator(user), self._flows, command.verb
        link, decision, note = [*command.note.split(maxsplit=2), "", "", ""][:3]
        decision = decision.lower()
        if verb == "settings" and command.target == "reset":
            return await self._reset_settings(command.note.strip(), user, team, moderator, words)
        if verb == "settings" and command.target in {"", "set"}:
            return await self._settings(command.note, user, team, moderator, words)
        if verb == "review" and not command.target:
            queue = await flows.review_queue(is_moderator=moderator, community=team)
            return queue.said(words) or await self._queue_text(queue.items)
        result: Result
        if verb == "review" and command.target == "resolve" and decision in set(Decision):
            target = key_from_link(link) or link.strip("<>").split("|")[0]
            result = await flows.resolve_review(
                target, user, Decision(decision), note, is_moderator=moderator, community=team
            )
        elif verb == "reopen":
            result = await flows.reopen(target, user, command.note, is_moderator=moderator)
        elif verb in {"status", "audit"}:
            result = await getattr(flows, verb)(target, is_moderator=moderator)
        else:
            return words.get(TextKey.SLACK_HELP)
        found = result.conversation
        if found is None or not result.ok:
            return result.said(words)
        if verb == "status":
            return status_text(found, await self._deps.permalink(*split_key(found.key)))
        if verb == "audit":
            return audit_text(found, list(result.events))
        done = decided(Decision(decision), found) if verb == "review" else "Reopened"
        return f"{done} `{found.id}`. {result.problem}".strip()

    async def _settings(
        self, typed: str, user: str, team: str, moderator: bool, words: Texts
    ) -> str:
        """Show this workspace's settings, or `set <name> <value>` one of them."""
        if not typed:
            own = await self._flows.community_settings(team, is_moderator=moderator)
            return settings_text(own, words)
        name, _, value = typed.partition(" ")
        number, value = name.startswith("redirects_"), value.strip()
        if name == "texts" or name.startswith(TEXT_PREFIX):
            key = name.removeprefix(TEXT_PREFIX)
            # As the person typed it: Slack sends &, < and > as entities.
            return await self._set_text(key, plain_text(value), user, team, moderator, words)
        if name not in {f.name for f in fields(CommunitySettings)}:
            return f"There is no setting `{escape(name)}`; `/quitbot settings` lists them."
        if (number and not value.isdigit()) or not value:
            return f"`{name}` takes {'a whole number' if number else 'some text'}."
        given: dict[str, Any] = {name: int(value) if number else value}
        saved = self._flows.set_community_settings(
            team, CommunitySettings(**given), user, is_moderator=moderator
        )
        return settings_text(await saved, words, "Saved. ")

    async def _set_text(
        self, key: str, value: str, user: str, team: str, moderator: bool, words: Texts
    ) -> str:
        """`set texts.KEY words`: this workspace's own words for one text (`quitbot texts`
        lists the keys); checked like the operator's before it is saved."""
        if key == "texts" or not value:
            return "Name one text and give its words: `/quitbot settings set texts.KEY words`."
        own = CommunitySettings(texts={key: value})
        saved = self._flows.set_community_settings(team, own, user, is_moderator=moderator)
        return settings_text(await saved, words, "Saved. ")

    async def _reset_settings(
        self, name: str, user: str, team: str, moderator: bool, words: Texts
    ) -> str:
        """`reset <name>`: one of this workspace's settings back to the default; `reset all`."""
        if not name:
            every = f"`{EVERY_SETTING}`"
            return f"Which one? `/quitbot settings reset &lt;name&gt;`, or {every} for every one."
        reset = self._flows.reset_community_settings(
            team, None if name == EVERY_SETTING else name, user, is_moderator=moderator
        )
        return settings_text(await reset, words, "Reset. ")

    async def _queue_text(self, items: Sequence[ReviewItem]) -> str:
        """The queue, oldest first, as one message within Slack's advised length."""
        text = "Nothing awaits review in this workspace." if not items else "*Review queue*"
        for shown, item in enumerate(items):
            found = item.conversation
            said = "; ".join(f"<@{f.user_id}>: {_clip(f.text)}" for f in item.feedback)
            choices = "readmit|uphold" if item.shut_out_user_id else "reopen|uphold"
            lines = [
                status_text(found, await self._deps.permalink(*split_key(found.key))),
                *_shut_out_line(item),
                f"The model's reason: {_clip(item.stated_reason) or '(none given)'}",
                f"Feedback: {said or '(none)'}",
                *(f"> {m.role}: {_clip(m.text)}" for m in item.last_messages[-2:]),
                f"`/quitbot review resolve {found.id} {choices} [note]`",
            ]
            if len(text) + sum(len(line) + 1 for line in lines) > MESSAGE_LIMIT - 60:
                return text + f"\n…and {len(items) - shown} more: decide these first."
            text += "\n\n" + "\n".join(lines)
        return text

    async def _ask_to_end(
        self,
        target: ConversationKey | str,
        user: str,
        tell: Tell,
        words: Texts,
        via: str = "command",
    ) -> None:
        key = target if isinstance(target, ConversationKey) else await self._key_of(target)
        result = (
            await self._flows.ask_to_end(key, user) if key else Result(refusal=Refusal.NOT_FOUND)
        )
        if result.conversation is None or not result.ok:
            await tell(result.said(words))
            return
        for notice in result.notices:
            kind = self._places.kind(result.conversation.key)
            shown = render_notice(notice, kind, self._deps.bot_user_id, result.conversation.id, via)
            await tell(*shown)

    async def end_shortcut(self, body: dict[str, Any]) -> None:
        """ "End this conversation", a message shortcut: it works inside a thread, where no
        slash command runs. Its message names the thread (its `thread_ts`, or its own `ts`)."""
        user, channel, message = _who(body), _channel(body), body.get("message") or {}
        thread_ts = str(message.get("thread_ts") or message.get("ts") or "")
        key, tell = thread_key(channel, thread_ts), self._tell(body, thread_ts)
        await self._ask_to_end(key, user, tell, await self._words(body), via="shortcut")

    async def branch(self, body: dict[str, Any]) -> None:
        """ "Branch from here": a new thread carrying the history up to the chosen message."""
        user, channel, message = _who(body), _channel(body), body.get("message") or {}
        ts = str(message.get("ts") or body.get("message_ts") or "")
        source = thread_key(channel, str(message.get("thread_ts") or ts))
        link, words = await self._deps.permalink(channel, ts), await self._words(body)
        person = Markup(f"<@{user}>")
        if link:  # Slack's own address for the message
            intro = words.get(TextKey.SLACK_BRANCHED, escape, person=person, link=Markup(link))
        else:
            intro = words.get(TextKey.SLACK_BRANCHED_UNLINKED, escape, person=person)
        kind = Place.CHANNEL if self._places.kind(source) is Place.CHANNEL else Place.DM
        opener = partial(self._open, channel, intro)
        result = await self._flows.branch(source, user, partial(opener, kind), upto_message_id=ts)
        if not result.ok:
            await self._tell(body)(result.said(words))

    async def confirm_end(self, body: dict[str, Any]) -> None:
        user, key = _who(body), await self._key_of(_value(body)[0])
        if key is not None:
            place = self._places.place(key, user)
            # The end command's confirmation is ephemeral; one in the thread is the model's
            # proposal, which must still be open.
            proposal = not _on_ephemeral(body)
            actions = body.get("actions") or [{}]
            via = action_via(str(actions[0].get("value") or ""))
            result = await self._flows.confirm_end(key, user, place, proposal=proposal, via=via)
            if result.ok:
                await self._answered(body, (await self._words(body)).get(TextKey.SLACK_ENDED))
            else:
                await self._refused(body, result, place.thread_ts)

    async def keep_going(self, body: dict[str, Any]) -> None:
        user, key = _who(body), await self._key_of(_value(body)[0])
        if key is not None:
            result = await self._flows.keep_going(key, user)
            if not result.ok:
                await self._refused(body, result, split_key(key)[1])
            else:
                kept_on = (await self._words(body)).get(TextKey.KEEP_GOING)
                if not await self._answered(body, kept_on):
                    await self._tell(body, split_key(key)[1])(kept_on)

    async def _refused(self, body: dict[str, Any], result: Result, thread_ts: str) -> None:
        """A refused click: a confirmation nobody can answer any more is withdrawn (its buttons
        would stay live), and the person who clicked is told why."""
        words = await self._words(body)
        refused = result.said(words)
        stale = {Refusal.NOT_ASKED: words.get(TextKey.END_LAPSED), Refusal.ALREADY_ENDED: refused}
        withdrawn_as = stale.get(result.refusal) if result.refusal else None
        withdrawn = withdrawn_as is not None and await self._answered(body, withdrawn_as)
        if withdrawn and _on_ephemeral(body) and withdrawn_as == refused:
            return  # the confirmation, shown to them alone, now says why
        await self._tell(body, thread_ts)(refused)

    async def _answered(self, body: dict[str, Any], text: str) -> bool:
        """The clicked confirmation becomes `text`, without its buttons: no stale click later.
        An ephemeral one only through the click's response_url: chat.update cannot edit an
        ephemeral message (https://docs.slack.dev/messaging/modifying-messages). Whether it
        was replaced."""
        container = body.get("container") or {}
        if _on_ephemeral(body):
            url = str(body.get("response_url") or "")
            return await self._deps.respond(url, text, replace=True)
        if not container.get("message_ts"):
            return False
        ts, channel = container["message_ts"], _channel(body)
        edit = {"channel": channel, "ts": ts, "text": text, "blocks": []}
        return bool((await self._deps.attempt("chat_update", **edit))[0])

    async def start_new(self, body: dict[str, Any]) -> None:
        """ "Start a new conversation": a fresh thread (the assistant pane makes its own)."""
        user, channel, (_, kind) = _who(body), _channel(body), _value(body)
        words = await self._words(body)
        if kind is Place.ASSISTANT:
            await self._tell(body)(how_to_start_again(kind, "", words))
            return
        if kind is Place.DM:
            intro = words.get(TextKey.SLACK_NEW_DM)
        else:
            intro = words.get(TextKey.SLACK_NEW_CHANNEL, escape, person=Markup(f"<@{user}>"))
        opener = partial(self._open, channel, intro, kind)
        result = await self._flows.start_new(PLATFORM, user, opener, community=_team(body))
        if not result.ok:
            await self._tell(body)(result.said(words))

    async def mistake(self, body: dict[str, Any]) -> None:
        """ "This was a mistake": the person's feedback, on the record and in the mod-log."""
        user, (conversation_id, _) = _who(body), _value(body)
        result = await self._flows.feedback(conversation_id, user, MISTAKE)
        thread_ts = str((body.get("container") or {}).get("thread_ts") or "")
        words = await self._words(body)
        await self._tell(body, thread_ts)(result.said(words) or words.get(TextKey.FEEDBACK_THANKS))

    async def _words(self, body: dict[str, Any]) -> Texts:
        """The words in force in the workspace a command or click came from."""
        return await self._flows.engine.words(PLATFORM, _team(body))

    async def _open(
        self, channel: str, text: str, kind: Place
    ) -> tuple[ConversationKey, SlackPlace] | None:
        """A new thread for a conversation: a first message of the app's own in `channel`."""
        data, _ = await self._deps.attempt("chat_postMessage", channel=channel, text=text)
        if not data:
            return None
        key = thread_key(channel, str(data["ts"]))
        self._places.remember(key, kind)
        return key, self._places.place(key)

    async def _key_of(self, conversation_id: str) -> ConversationKey | None:
        conversation = await self._flows.engine.get(conversation_id) if conversation_id else None
        return conversation.key if conversation is not None else None

    async def _is_moderator(self, user_id: str) -> bool:
        """A configured admin id, or a workspace admin or owner (users.info)."""
        if user_id in self._deps.settings.slack.admin_user_ids:
            return True
        user = (await self._deps.attempt("users_info", user=user_id))[0].get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


def status_text(conversation: Conversation, link: str) -> str:
    ladder, thread = conversation.ladder, f"<{link}|thread>" if link else "thread"
    lines = [
        f"*Conversation* `{conversation.id}` ({thread}), started by <@{conversation.user_id}>",
        f"State: *{conversation.state}*; redirects: {ladder.redirects}; "
        f"warned: {'yes' if ladder.warned else 'no'}; crisis: {'yes' if ladder.crisis else 'no'}",
    ]
    if ladder.ended:
        lines.append(f"Ended by {ladder.ended_by}: {ladder.ended_reason}")
    if conversation.branched_from:
        lines.append(f"Branched from `{conversation.branched_from}`")
    return "\n".join(lines)


def audit_text(conversation: Conversation, events: list[AuditEvent]) -> str:
    if not events:
        return f"No events recorded for `{conversation.id}`."
    shown = events[-30:]  # the latest: a Slack message should stay readable
    lines = [f"*Audit trail* of `{conversation.id}` (last {len(shown)} of {len(events)}):"]
    for event in shown:
        detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v not in ("", None))
        when = event.at.strftime("%Y-%m-%d %H:%M:%S")
        said = f": {escape(detail)}" if detail else ""
        lines.append(f"• {when} *{event.kind}* by {event.actor}{said}")
    return "\n".join(lines)


def settings_text(result: CommunityResult, words: Texts, done: str = "") -> str:
    if result.settings is None:
        return result.said(words)
    own = {f.name: getattr(result.settings, f.name) for f in fields(result.settings)}
    lines = [f"{done}*This workspace's settings* (unset: the process-wide default):"]
    lines += [
        f"• `{name}`: {_clip(str(v)) if v is not None else '(unset)'}" for name, v in own.items()
    ]
    return "\n".join(lines)


def _clip(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return escape(line if len(line) <= limit else line[: limit - 1] + "…")


def _team(body: dict[str, Any]) -> str:
    """The workspace a command (`team_id`) or a click (`team.id`) came from."""
    return str(body.get("team_id") or (body.get("team") or {}).get("id") or "")


def _who(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _channel(body: dict[str, Any]) -> str:
    channel = (body.get("channel") or {}).get("id")
    return str(channel or (body.get("container") or {}).get("channel_id") or "")


def _on_ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral"))


def _value(body: dict[str, Any]) -> tuple[str, Place]:
    actions = body.get("actions") or [{}]
    return parse_action_value(str(actions[0].get("value") or ""))


def _shut_out_line(item: ReviewItem) -> list[str]:
    """Whose shut-out the item is about (none for the starter's end)."""
    if item.shut_out_user_id is None:
        return []
    theirs = item.participants.get(item.shut_out_user_id)
    reason = theirs.ended_reason.value if theirs and theirs.ended_reason else "?"
    return [f"*Shut out:* <@{item.shut_out_user_id}> ({reason})"]
