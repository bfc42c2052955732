"""The escalation ladder: redirect -> warn -> end, as a pure function.

`transition(state, signal, rules, speaker)` does no I/O and never raises for any state and
signal; the engine turns its effects into stored events and notices.

A shared place (a thread others can write in) holds one ladder per participant: the
starter's is the conversation's own, and its end ends the conversation; anyone else's end
only shuts that person out of it (DESIGN.md rule 8). `speaker` says whose ladder `state` is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from bot.conversation import Actor, ConcernKind, EndReason, LadderState


@dataclass(frozen=True, slots=True)
class Rules:
    """The operator's thresholds (DESIGN.md rules 2 and 3)."""

    redirects_before_warning: int = 2
    redirects_before_end: int = 3
    # Alert-only mode (DESIGN.md rule 9): where the ladder would end, it says so instead.
    alert_only: bool = False


# --- signals: what happened ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A person wrote in the conversation."""


@dataclass(frozen=True, slots=True)
class Concern:
    """The model called `note_concern`."""

    kind: ConcernKind


@dataclass(frozen=True, slots=True)
class Refusal:
    """The API refused the turn (`stop_reason == "refusal"`); counts as a redirect."""


@dataclass(frozen=True, slots=True)
class EndRequest:
    """The model called `end_conversation` (`by` MODEL), or the person confirmed an end
    (`by` USER, reason USER_REQUESTED). The model's word alone never ends a conversation
    outside the ladder: its `user_requested` call is only a proposal the person confirms."""

    reason: EndReason
    by: Actor = Actor.MODEL


@dataclass(frozen=True, slots=True)
class KeepGoing:
    """The person answered an end confirmation with "keep talking"."""


@dataclass(frozen=True, slots=True)
class Reopen:
    """A moderator reopened the conversation."""


Signal = UserMessage | Concern | Refusal | EndRequest | KeepGoing | Reopen


@dataclass(frozen=True, slots=True)
class Speaker:
    """Whose ladder a transition applies to, in a place others can write in too."""

    # The person who started the conversation: their end is the conversation's.
    starter: bool = True
    # Someone else in the conversation was flagged at risk: the model may not end it.
    others_at_risk: bool = False


STARTER = Speaker()


# --- effects: what must follow -----------------------------------------------------------


class DeclineWhy(StrEnum):
    """Why an end was declined; the model is told in the tool result."""

    NOT_WARNED = "not_warned"
    TOO_FEW_REDIRECTS = "too_few_redirects"
    CRISIS = "crisis"


@dataclass(frozen=True, slots=True)
class Redirected:
    count: int


@dataclass(frozen=True, slots=True)
class Warned:
    """The warning is due: continuing will end the conversation."""


@dataclass(frozen=True, slots=True)
class CrisisFlagged:
    """The person may be at risk: show the crisis resources; the model can no longer end it."""


@dataclass(frozen=True, slots=True)
class Ended:
    reason: EndReason
    by: Actor
    crisis: bool


@dataclass(frozen=True, slots=True)
class ShutOut:
    """Someone other than the starter earned the end: only they are shut out; the
    starter's conversation goes on."""

    reason: EndReason


@dataclass(frozen=True, slots=True)
class WouldEnd:
    """Alert-only mode: the ladder would end here (or shut someone out), but the
    conversation goes on; the moderators are alerted and it is on the record."""

    reason: EndReason


@dataclass(frozen=True, slots=True)
class Left:
    """Someone other than the starter asked to end: they leave, on the record; the
    conversation goes on (only its starter can end it)."""


@dataclass(frozen=True, slots=True)
class EndDeclined:
    why: DeclineWhy


@dataclass(frozen=True, slots=True)
class EndProposed:
    """The model asked to end on the person's behalf: show them the end confirmation."""


@dataclass(frozen=True, slots=True)
class ProposalLapsed:
    """A proposed end was not confirmed: the person wrote on, or chose to keep talking."""


@dataclass(frozen=True, slots=True)
class Blocked:
    """A message reached an ended conversation: no model call."""


@dataclass(frozen=True, slots=True)
class Reopened:
    """A moderator made the conversation active again."""


Effect = (
    Redirected
    | Warned
    | CrisisFlagged
    | Ended
    | ShutOut
    | WouldEnd
    | Left
    | EndDeclined
    | EndProposed
    | ProposalLapsed
    | Blocked
    | Reopened
)

_REDIRECT_KINDS = frozenset({ConcernKind.HARMFUL_REQUEST, ConcernKind.ABUSE})


def transition(
    state: LadderState, signal: Signal, rules: Rules, speaker: Speaker = STARTER
) -> tuple[LadderState, tuple[Effect, ...]]:
    """Apply one signal to one person's ladder. Ended (for someone other than the starter:
    shut out) is absorbing until a `Reopen`."""
    if state.ended:
        if isinstance(signal, Reopen):
            return LadderState(
                redirects=state.redirects, warned=state.warned, crisis=state.crisis
            ), (Reopened(),)
        if isinstance(signal, UserMessage):
            return state, (Blocked(),)
        return state, ()
    match signal:
        case UserMessage() | KeepGoing() if state.end_proposed:
            return replace(state, end_proposed=False), (ProposalLapsed(),)
        case UserMessage() | KeepGoing() | Reopen():
            return state, ()
        case Refusal():
            return _redirect(state, rules)
        case Concern(kind) if kind in _REDIRECT_KINDS:
            return _redirect(state, rules)
        case Concern():
            if state.crisis:
                return state, ()
            return replace(state, crisis=True), (CrisisFlagged(),)
        case EndRequest(reason, by) if not speaker.starter:
            return _shut_out(state, reason, rules)
        case EndRequest(reason, by):
            return _end(state, reason, by, rules, speaker.others_at_risk)


def _redirect(state: LadderState, rules: Rules) -> tuple[LadderState, tuple[Effect, ...]]:
    count = state.redirects + 1
    if not state.warned and count >= rules.redirects_before_warning:
        return replace(state, redirects=count, warned=True), (Redirected(count), Warned())
    return replace(state, redirects=count), (Redirected(count),)


def _end(
    state: LadderState, reason: EndReason, by: Actor, rules: Rules, others_at_risk: bool
) -> tuple[LadderState, tuple[Effect, ...]]:
    if reason is EndReason.USER_REQUESTED and by is not Actor.USER:
        if state.end_proposed:
            return state, ()
        return replace(state, end_proposed=True), (EndProposed(),)
    if reason is not EndReason.USER_REQUESTED:
        why = DeclineWhy.CRISIS if others_at_risk else _why_not(state, rules)
        if why is not None:
            return state, (EndDeclined(why),)
        if rules.alert_only:
            return state, (WouldEnd(reason),)
    ended = replace(state, ended=True, ended_by=by, ended_reason=reason, end_proposed=False)
    return ended, (Ended(reason, by, state.crisis),)


def _shut_out(
    state: LadderState, reason: EndReason, rules: Rules
) -> tuple[LadderState, tuple[Effect, ...]]:
    """An end earned by someone other than the starter. Their own request (in words or by
    the end command) makes them leave, with no confirmation: leaving closes nothing."""
    if reason is EndReason.USER_REQUESTED:
        return replace(state, end_proposed=False), (Left(),)
    why = _why_not(state, rules)
    if why is not None:
        return state, (EndDeclined(why),)
    if rules.alert_only:
        return state, (WouldEnd(reason),)
    shut = replace(state, ended=True, ended_by=Actor.MODEL, ended_reason=reason)
    return shut, (ShutOut(reason),)


def _why_not(state: LadderState, rules: Rules) -> DeclineWhy | None:
    if state.crisis:
        return DeclineWhy.CRISIS
    if not state.warned:
        return DeclineWhy.NOT_WARNED
    if state.redirects < rules.redirects_before_end:
        return DeclineWhy.TOO_FEW_REDIRECTS
    return None
