"""One assistant turn: the model call, the tool-use loop and the ladder, without storage."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.context import Context
from bot.conversation import Actor, AuditEvent, LadderState
from bot.notices import Notice, NoticeKind, end_text, say, shut_out_text
from bot.policy import (
    Blocked,
    Concern,
    CrisisFlagged,
    Effect,
    EndDeclined,
    Ended,
    EndProposed,
    EndRequest,
    Left,
    ProposalLapsed,
    Redirected,
    Refusal,
    Reopened,
    Rules,
    ShutOut,
    Signal,
    Speaker,
    UserMessage,
    Warned,
    WouldEnd,
    transition,
)
from bot.ports import Model, ModelReply, ModelUnavailable, ReplyStream
from bot.texts import DEFAULT_TEXTS, TextKey, Texts
from bot.tools import EndConversationCall, InvalidToolCall, NoteConcernCall, parse_tool_use
from bot.usertools import Tool, ToolContext, run_tool

log = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 5

_DECLINE_REASONS = {
    "not_warned": (
        "Declined: the conversation continues. The user has not been warned yet; ending is "
        "only allowed after a warning. Keep redirecting the user, politely."
    ),
    "too_few_redirects": (
        "Declined: the conversation continues. Too few requests have been redirected to end "
        "it yet. Keep redirecting the user, politely."
    ),
    "crisis": (
        "Declined: the conversation continues. This person may be at risk, so this "
        "conversation cannot be ended by you. Stay with them and point them to help."
    ),
}


@dataclass(slots=True)
class TurnResult:
    """What one turn produced, ready for one store commit."""

    ladder: LadderState
    text: str = ""
    api: list[dict[str, Any]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    refused: bool = False
    unavailable: bool = False
    interrupted: bool = False
    display_failed: bool = False  # the platform could not show (all of) the reply


@dataclass(slots=True)
class Turn:
    """Runs the tool-use loop for one user message against its author's ladder.

    In a shared place the author may not be the starter (`speaker`): what their ladder
    earns (a warning, crisis resources, being shut out) is theirs alone, so its notices go
    to them (`author`), not to the place.
    """

    model: Model
    rules: Rules
    crisis_message: str
    at: datetime
    message_id: str = ""
    speaker: Speaker = field(default_factory=Speaker)
    author: str = ""
    # The user tools this conversation may call, and what their handlers are told.
    tools: Mapping[str, Tool[Any]] = field(default_factory=dict)
    tool_context: ToolContext | None = None
    texts: Texts = DEFAULT_TEXTS  # the words in force in its community
    _parts: list[str] = field(default_factory=list)
    _new_round: bool = False
    _display_failed: bool = False
    result: TurnResult | None = None

    def interrupted(self) -> TurnResult | None:
        """What the turn had come to when it was cancelled (a shutdown mid-reply)."""
        if self.result is None:
            return None
        self.result.text = "".join(self._parts)
        self.result.interrupted = True
        return self.result

    async def run(
        self, ladder: LadderState, context: Sequence[dict[str, Any]], reply: ReplyStream
    ) -> TurnResult:
        result = self.result = TurnResult(ladder)
        stored = context if isinstance(context, Context) else Context(context)
        self._apply(result, UserMessage(), Actor.USER, via="wrote_on")

        async def on_text(delta: str) -> None:
            if self._new_round and self._parts:
                await self._emit(reply, "\n\n")  # a later round's text starts a paragraph
            self._new_round = False
            await self._emit(reply, delta)

        try:
            for _ in range(MAX_TOOL_ROUNDS):
                self._new_round = True
                answer = await self.model.reply(stored.plus(result.api), on_text)
                if answer.refused:
                    self._refused(result, answer)
                    break
                result.api.append({"role": "assistant", "content": answer.content})
                if answer.stop_reason == "max_tokens":
                    cut = say(self.texts, NoticeKind.CUT_SHORT, TextKey.CUT_SHORT)
                    result.notices.append(cut)
                if not answer.tool_uses:
                    break
                if await self._use_tools(result, answer) or answer.stop_reason != "tool_use":
                    break
            else:
                log.warning("turn stopped after %d tool rounds", MAX_TOOL_ROUNDS)
        except ModelUnavailable as exc:
            result.unavailable = True
            result.events.append(self._event("model_unavailable", Actor.BOT, error=str(exc)))
        except Exception as exc:
            # Whatever else a model client raises (a malformed stream, a transport bug), the
            # person still gets the "try again" notice and the turn is recorded.
            log.exception("the model call failed unexpectedly")
            result.unavailable = True
            error = f"{type(exc).__name__}: {exc}"
            result.events.append(self._event("model_unavailable", Actor.BOT, error=error))
        result.text = "".join(self._parts)
        return result

    async def _emit(self, reply: ReplyStream, text: str) -> None:
        self._parts.append(text)
        if self._display_failed:
            return
        try:
            await reply.text(text)
        except Exception:
            # The platform failing to show the reply must not lose the turn's record.
            log.exception("showing the reply failed; the turn goes on and is recorded")
            self._display_failed = True
            if self.result is not None:
                self.result.display_failed = True

    def _refused(self, result: TurnResult, answer: ModelReply) -> None:
        result.refused = True
        result.notices.append(say(self.texts, NoticeKind.DECLINE, TextKey.DECLINE))
        self._apply(result, Refusal(), Actor.MODEL, source="refusal", details=answer.stop_details)

    async def _use_tools(self, result: TurnResult, answer: ModelReply) -> bool:
        """Answer every tool_use; True when the conversation ended."""
        results: list[dict[str, Any]] = []
        ended = False
        for block in answer.tool_uses:
            if not ended and block.get("name") in self.tools:
                content, is_error = await self._user_tool(result, block)
                ended_now = False
            else:
                content, is_error, ended_now = self._use_tool(result, block, ended)
            ended = ended or ended_now
            item: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": block.get("id", ""),
                "content": content,
            }
            if is_error:
                item["is_error"] = True
            results.append(item)
        result.api.append({"role": "user", "content": results})
        return ended

    async def _user_tool(self, result: TurnResult, block: dict[str, Any]) -> tuple[str, bool]:
        """Run one of the user's tools; it never touches the ladder, whatever it returns."""
        chosen = self.tools[str(block.get("name"))]
        context = self.tool_context or ToolContext("", self.author, "", "")
        run = await run_tool(chosen, context, block.get("input"))
        detail: dict[str, Any] = {
            "tool": chosen.name,
            "ok": run.ok,
            "duration_ms": round(run.seconds * 1000),
        }
        if run.failure:
            detail["failure"] = run.failure
        result.events.append(self._event("tool_call", Actor.MODEL, **detail))
        return run.content, not run.ok

    def _use_tool(
        self, result: TurnResult, block: dict[str, Any], ended: bool
    ) -> tuple[str, bool, bool]:
        call = parse_tool_use(block)
        if ended:
            return "The conversation has already ended.", False, False
        match call:
            case NoteConcernCall(kind=kind, note=note):
                effects = self._apply(
                    result, Concern(kind), Actor.MODEL, kind=kind.value, note=note
                )
                return _concern_result(result.ladder, effects, self.speaker), False, False
            case EndConversationCall(reason=reason, explanation=explanation):
                effects = self._apply(
                    result, EndRequest(reason, Actor.MODEL), Actor.MODEL, explanation=explanation
                )
                if any(isinstance(e, Ended) for e in effects):
                    return "The conversation has ended. Say nothing more.", False, True
                if any(isinstance(e, ShutOut) for e in effects):
                    return _SHUT_OUT, False, True
                if any(isinstance(e, Left) for e in effects):
                    return _LEFT, False, False
                if any(isinstance(e, WouldEnd) for e in effects):
                    return _DECLINE_REASONS["too_few_redirects"], False, False
                declined = [e.why.value for e in effects if isinstance(e, EndDeclined)]
                if declined:
                    return _DECLINE_REASONS[declined[0]], False, False
                return _PROPOSED, False, False
            case InvalidToolCall(name=name, error=error):
                result.events.append(
                    self._event("invalid_tool_call", Actor.MODEL, tool=name, error=error)
                )
                return f"Invalid tool call: {error}", True, False
        raise AssertionError(f"unhandled tool call {call!r}")  # pragma: no cover

    def _apply(
        self, result: TurnResult, signal: Signal, actor: Actor, **detail: Any
    ) -> tuple[Effect, ...]:
        result.ladder, effects = transition(result.ladder, signal, self.rules, self.speaker)
        for effect in effects:
            self._record(result, effect, actor, detail)
        return effects

    def _record(
        self, result: TurnResult, effect: Effect, actor: Actor, detail: dict[str, Any]
    ) -> None:
        event, notice = effect_entry(
            effect, actor, self._detail(detail), self.crisis_message, self.at, self.texts
        )
        if not self.speaker.starter and notice is not None:
            notice = _to_participant(notice, self.author, self.texts)
        if notice is not None and notice.kind is NoticeKind.WOULD_END:
            notice = replace(notice, to=self.author)  # whom it would have ended for
        if notice is not None and notice.kind is NoticeKind.WARNING and self.rules.alert_only:
            notice = replace(notice, text=self.texts.get(TextKey.WARNING_ALERT))
        if not self.speaker.starter and event is not None:
            event.detail.setdefault("participant", self.author)
        if event is not None:
            result.events.append(event)
        if notice is not None:
            result.notices.append(notice)

    def _event(self, kind: str, actor: Actor, **detail: Any) -> AuditEvent:
        return AuditEvent(kind, self.at, actor, self._detail(detail))

    def _detail(self, detail: dict[str, Any]) -> dict[str, Any]:
        """Every event of a turn names the platform message that caused it."""
        if not self.message_id:
            return dict(detail)
        return {"message_id": self.message_id, **detail}


_PROPOSED = (
    "The bot is asking the person to confirm that they want to end the conversation; it "
    "ends only if they confirm. Do not ask them to confirm yourself. If they write on "
    "instead, the conversation simply continues."
)


_SHUT_OUT = (
    "This person did not start the conversation: they are now shut out of it and get no "
    "more replies here. The conversation goes on for the person who started it. Say "
    "nothing more to the one shut out."
)
_LEFT = (
    "This person did not start the conversation, so they cannot end it: they have left it "
    "instead, and it goes on for the person who started it."
)


def _concern_result(ladder: LadderState, effects: tuple[Effect, ...], speaker: Speaker) -> str:
    """Tell the model where the ladder stands, so it knows when ending is even possible."""
    if any(isinstance(e, CrisisFlagged) for e in effects):
        return "Noted. Crisis resources are being shown to the person. Stay with them."
    whose = "in this conversation" if speaker.starter else "from this person"
    parts = [f"Noted. Redirects so far {whose}: {ladder.redirects}."]
    if any(isinstance(e, Warned) for e in effects):
        if speaker.starter:
            parts.append("The bot has now warned the person that continuing will end it.")
        else:
            parts.append(
                "The bot has now warned this person (who did not start the conversation) "
                "that continuing will shut them out of it."
            )
    return " ".join(parts)


def _to_participant(notice: Notice, author: str, texts: Texts) -> Notice:
    """A notice of someone else's ladder goes to them alone, in words that fit them."""
    if notice.kind is NoticeKind.WARNING:
        warning = say(texts, NoticeKind.WARNING, TextKey.WARNING_PARTICIPANT)
        return replace(warning, to=author)
    if notice.kind is NoticeKind.CRISIS:
        return Notice(NoticeKind.CRISIS, notice.text, to=author, words=texts)
    return notice


def effect_entry(
    effect: Effect,
    actor: Actor,
    detail: dict[str, Any],
    crisis_message: str,
    at: datetime,
    texts: Texts = DEFAULT_TEXTS,
) -> tuple[AuditEvent | None, Notice | None]:
    """The audit event and the notice (either may be None) that one ladder effect calls for,
    in the words in force (`texts`)."""
    match effect:
        case Redirected(count):
            return AuditEvent("redirect", at, actor, {**detail, "redirects": count}), None
        case Warned():
            return (
                AuditEvent("warning", at, Actor.BOT, {}),
                say(texts, NoticeKind.WARNING, TextKey.WARNING),
            )
        case CrisisFlagged():
            return (
                AuditEvent("crisis_flagged", at, actor, dict(detail)),
                Notice(NoticeKind.CRISIS, crisis_message, words=texts),
            )
        case EndDeclined(why):
            return AuditEvent("end_declined", at, actor, {**detail, "why": why.value}), None
        case Ended(reason, by, crisis):
            resources = crisis_message if crisis else ""
            return (
                AuditEvent("end", at, by, {**detail, "reason": reason.value}),
                Notice(NoticeKind.END, end_text(reason, texts), resources, words=texts),
            )
        case EndProposed():
            return (
                AuditEvent("end_proposed", at, actor, dict(detail)),
                say(texts, NoticeKind.CONFIRM_END, TextKey.CONFIRM_END),
            )
        case ProposalLapsed():
            return (
                AuditEvent("end_proposal_lapsed", at, actor, dict(detail)),
                say(texts, NoticeKind.END_LAPSED, TextKey.END_LAPSED),
            )
        case ShutOut(reason):
            return (
                AuditEvent(
                    "participant_shut_out", at, Actor.MODEL, {**detail, "reason": reason.value}
                ),
                Notice(NoticeKind.SHUT_OUT, shut_out_text(reason, texts), words=texts),
            )
        case WouldEnd(reason):
            said = f"{reason.value}: {detail.get('explanation', '')}".rstrip(": ")
            return (
                AuditEvent("would_end", at, Actor.MODEL, {**detail, "reason": reason.value}),
                Notice(NoticeKind.WOULD_END, said, words=texts),
            )
        case Left():
            return (
                AuditEvent("participant_left", at, Actor.USER, dict(detail)),
                say(texts, NoticeKind.LEFT, TextKey.LEFT),
            )
        case Reopened():
            return AuditEvent("reopen", at, actor, dict(detail)), None
        case Blocked():
            return None, None
