"""The escalation ladder, exhaustively: pure, no I/O."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.conversation import Actor, ConcernKind, EndReason, LadderState
from bot.policy import (
    Blocked,
    Concern,
    CrisisFlagged,
    DeclineWhy,
    EndDeclined,
    Ended,
    EndProposed,
    EndRequest,
    KeepGoing,
    Left,
    ProposalLapsed,
    Redirected,
    Refusal,
    Reopen,
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

RULES = Rules(redirects_before_warning=2, redirects_before_end=3)
SPEAKERS = [Speaker(starter, at_risk) for starter in (True, False) for at_risk in (False, True)]
OTHER = Speaker(starter=False)
MODEL_REASONS = [EndReason.PERSISTENT_HARMFUL_REQUESTS, EndReason.PERSISTENT_ABUSE]

signals = st.one_of(
    st.just(UserMessage()),
    st.just(Refusal()),
    st.just(Reopen()),
    st.just(KeepGoing()),
    st.sampled_from(list(ConcernKind)).map(Concern),
    st.builds(EndRequest, st.sampled_from(list(EndReason)), st.sampled_from(list(Actor))),
)
rules = st.builds(
    lambda warn, extra: Rules(warn, warn + extra),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=4),
)


def run(seq: list[Signal], rules: Rules = RULES) -> list[tuple[LadderState, tuple[object, ...]]]:
    state = LadderState()
    trace = []
    for signal in seq:
        state, effects = transition(state, signal, rules)
        trace.append((state, effects))
    return trace


def test_redirects_count_and_warning_comes_at_the_threshold() -> None:
    trace = run([Concern(ConcernKind.HARMFUL_REQUEST), Refusal(), Concern(ConcernKind.ABUSE)])
    assert [t[1] for t in trace] == [
        (Redirected(1),),
        (Redirected(2), Warned()),
        (Redirected(3),),
    ]
    assert trace[-1][0] == LadderState(redirects=3, warned=True)


def test_end_is_declined_until_warned_and_enough_redirects() -> None:
    end = EndRequest(EndReason.PERSISTENT_ABUSE)
    state = LadderState()
    assert transition(state, end, RULES) == (state, (EndDeclined(DeclineWhy.NOT_WARNED),))
    warned_early = LadderState(redirects=1, warned=True)
    assert transition(warned_early, end, RULES)[1] == (EndDeclined(DeclineWhy.TOO_FEW_REDIRECTS),)
    ready = LadderState(redirects=3, warned=True)
    ended, effects = transition(ready, end, RULES)
    assert effects == (Ended(EndReason.PERSISTENT_ABUSE, Actor.MODEL, crisis=False),)
    assert ended.ended and ended.ended_by is Actor.MODEL
    assert ended.ended_reason is EndReason.PERSISTENT_ABUSE


def test_user_request_ends_at_once_even_in_crisis() -> None:
    crisis = LadderState(crisis=True)
    state, effects = transition(crisis, EndRequest(EndReason.USER_REQUESTED, Actor.USER), RULES)
    assert state.ended
    assert effects == (Ended(EndReason.USER_REQUESTED, Actor.USER, crisis=True),)


def test_the_models_user_requested_end_is_only_a_proposal() -> None:
    """The model's word alone never skips the ladder: the person must confirm."""
    proposal = EndRequest(EndReason.USER_REQUESTED, Actor.MODEL)
    state, effects = transition(LadderState(), proposal, RULES)
    assert effects == (EndProposed(),) and not state.ended and state.end_proposed
    assert transition(state, proposal, RULES) == (state, ())  # asked once per proposal
    confirmed = EndRequest(EndReason.USER_REQUESTED, Actor.USER)
    ended, effects = transition(state, confirmed, RULES)
    assert effects == (Ended(EndReason.USER_REQUESTED, Actor.USER, crisis=False),)
    assert ended.ended and not ended.end_proposed


@pytest.mark.parametrize("signal", [UserMessage(), KeepGoing()])
def test_a_proposal_lapses_when_the_person_writes_on_or_keeps_talking(signal: Signal) -> None:
    proposed = LadderState(redirects=1, end_proposed=True)
    state, effects = transition(proposed, signal, RULES)
    assert effects == (ProposalLapsed(),)
    assert state == LadderState(redirects=1)
    assert transition(state, signal, RULES) == (state, ())


def test_a_proposal_in_crisis_is_still_the_persons_choice() -> None:
    crisis = LadderState(crisis=True)
    state, effects = transition(crisis, EndRequest(EndReason.USER_REQUESTED, Actor.MODEL), RULES)
    assert effects == (EndProposed(),)
    _, effects = transition(state, EndRequest(EndReason.USER_REQUESTED, Actor.USER), RULES)
    assert effects == (Ended(EndReason.USER_REQUESTED, Actor.USER, crisis=True),)


def test_crisis_flag_blocks_model_ending_and_is_shown_once() -> None:
    trace = run(
        [
            Concern(ConcernKind.SELF_HARM_RISK),
            Concern(ConcernKind.HARM_TO_OTHERS_RISK),
            *[Refusal()] * 5,
            EndRequest(EndReason.PERSISTENT_HARMFUL_REQUESTS),
        ]
    )
    assert trace[0][1] == (CrisisFlagged(),)
    assert trace[1][1] == ()
    assert trace[-1][1] == (EndDeclined(DeclineWhy.CRISIS),)
    assert not trace[-1][0].ended


def test_ended_blocks_messages_ignores_everything_but_reopen() -> None:
    ended = LadderState(
        redirects=3,
        warned=True,
        ended=True,
        ended_by=Actor.MODEL,
        ended_reason=EndReason.PERSISTENT_ABUSE,
    )
    assert transition(ended, UserMessage(), RULES) == (ended, (Blocked(),))
    for signal in [Refusal(), Concern(ConcernKind.ABUSE), EndRequest(EndReason.USER_REQUESTED)]:
        assert transition(ended, signal, RULES) == (ended, ())
    reopened, effects = transition(ended, Reopen(), RULES)
    assert effects == (Reopened(),)
    assert reopened == LadderState(redirects=3, warned=True)


def test_reopen_of_active_conversation_does_nothing() -> None:
    state = LadderState(redirects=1)
    assert transition(state, Reopen(), RULES) == (state, ())


@pytest.mark.parametrize(
    ("state", "signal"),
    list(
        itertools.product(
            [
                LadderState(redirects=r, warned=w, crisis=c, ended=e, end_proposed=p)
                for r, w, c, e, p in itertools.product(range(5), *[[False, True]] * 4)
            ],
            [
                UserMessage(),
                Refusal(),
                Reopen(),
                KeepGoing(),
                *map(Concern, ConcernKind),
                *(EndRequest(r, a) for r in EndReason for a in Actor),
            ],
        )
    ),
)
def test_transition_is_total(state: LadderState, signal: Signal) -> None:
    for speaker in SPEAKERS:
        new_state, effects = transition(state, signal, RULES, speaker)
        assert isinstance(new_state, LadderState)
        assert isinstance(effects, tuple)


@settings(max_examples=400)
@given(st.lists(signals, max_size=40), rules)
def test_properties_over_any_sequence(seq: list[Signal], rules: Rules) -> None:
    state = LadderState()
    for signal in seq:
        before = state
        state, effects = transition(state, signal, rules)
        ends = [e for e in effects if isinstance(e, Ended)]
        if ends and ends[0].by is not Actor.USER:
            # the model alone only ends through the ladder
            assert ends[0].reason is not EndReason.USER_REQUESTED
        if ends and ends[0].reason is not EndReason.USER_REQUESTED:
            # never before the warning, never with too few redirects, never in crisis
            assert before.warned and not before.crisis
            assert before.redirects >= rules.redirects_before_end
        if ends:
            assert not before.ended and state.ended
        if before.ended and not isinstance(signal, Reopen):
            assert state == before  # ended is absorbing
        if isinstance(signal, UserMessage) and before.ended:
            assert effects == (Blocked(),)
        assert state.redirects >= before.redirects or isinstance(signal, Reopen)
        if before.crisis:
            assert state.crisis  # the flag is never lost
        if any(isinstance(e, Warned) for e in effects):
            assert not before.warned and state.redirects >= rules.redirects_before_warning
        if state.redirects >= rules.redirects_before_warning:
            assert state.warned
        if state.ended:
            assert not state.end_proposed  # nothing left to confirm
        if isinstance(signal, UserMessage | KeepGoing) and not before.ended:
            assert not state.end_proposed  # writing on lets a proposal lapse


@given(st.lists(signals, max_size=40))
def test_effects_match_state_changes(seq: list[Signal]) -> None:
    state = LadderState()
    for signal in seq:
        before = state
        state, effects = transition(state, signal, RULES)
        assert (Redirected(state.redirects) in effects) == (state.redirects > before.redirects)
        assert (CrisisFlagged() in effects) == (state.crisis and not before.crisis)
        assert (Reopened() in effects) == (before.ended and not state.ended)
        assert (EndProposed() in effects) == (state.end_proposed and not before.end_proposed)
        lapsed = before.end_proposed and not state.end_proposed and not state.ended
        assert (ProposalLapsed() in effects) == (lapsed and not isinstance(signal, Reopen))


# --- a shared place: someone other than the starter (DESIGN.md rule 8) ---------------------


def climb(speaker: Speaker, rules: Rules = RULES) -> LadderState:
    """A ladder warned with enough redirects to be ended."""
    state = LadderState()
    for _ in range(rules.redirects_before_end):
        state, _effects = transition(state, Concern(ConcernKind.ABUSE), rules, speaker)
    return state


@pytest.mark.parametrize("reason", MODEL_REASONS)
def test_someone_else_earning_the_end_is_only_shut_out(reason: EndReason) -> None:
    earned = climb(OTHER)
    assert earned.warned and earned.redirects == 3
    state, effects = transition(earned, EndRequest(reason), RULES, OTHER)
    assert effects == (ShutOut(reason),)
    assert state.ended and state.ended_reason is reason and state.ended_by is Actor.MODEL
    state, effects = transition(state, UserMessage(), RULES, OTHER)
    assert effects == (Blocked(),)  # their later messages never reach the model
    state, effects = transition(state, Reopen(), RULES, OTHER)
    assert effects == (Reopened(),) and not state.ended


def test_someone_else_is_declined_like_anyone_before_the_ladder_is_climbed() -> None:
    reason = EndReason.PERSISTENT_ABUSE
    _, effects = transition(LadderState(), EndRequest(reason), RULES, OTHER)
    assert effects == (EndDeclined(DeclineWhy.NOT_WARNED),)
    at_risk = replace(climb(OTHER), crisis=True)
    _, effects = transition(at_risk, EndRequest(reason), RULES, OTHER)
    assert effects == (EndDeclined(DeclineWhy.CRISIS),)


@pytest.mark.parametrize("by", [Actor.USER, Actor.MODEL])
def test_someone_else_asking_to_end_just_leaves(by: Actor) -> None:
    state, effects = transition(
        LadderState(), EndRequest(EndReason.USER_REQUESTED, by), RULES, OTHER
    )
    assert effects == (Left(),)
    assert state == LadderState()  # nothing to confirm, nothing closed


def test_the_starter_cannot_be_ended_by_the_model_while_anyone_is_at_risk() -> None:
    at_risk = Speaker(starter=True, others_at_risk=True)
    earned = climb(at_risk)
    state, effects = transition(earned, EndRequest(EndReason.PERSISTENT_ABUSE), RULES, at_risk)
    assert effects == (EndDeclined(DeclineWhy.CRISIS),) and not state.ended
    # ...but their own confirmed end is still their choice
    mine = EndRequest(EndReason.USER_REQUESTED, Actor.USER)
    state, effects = transition(earned, mine, RULES, at_risk)
    assert state.ended and effects == (Ended(EndReason.USER_REQUESTED, Actor.USER, False),)


speakers = st.builds(Speaker, st.booleans(), st.booleans())


@settings(max_examples=400)
@given(st.lists(st.tuples(signals, speakers), max_size=40), rules)
def test_only_the_starter_ends_the_conversation(
    seq: list[tuple[Signal, Speaker]], rules: Rules
) -> None:
    """Whatever anyone else does, their ladder never ends the conversation or asks the
    starter to confirm anything; the starter's never shuts anyone out."""
    for speaker_is_starter in (True, False):
        state = LadderState()
        for signal, speaker in seq:
            speaker = replace(speaker, starter=speaker_is_starter)
            before = state
            state, effects = transition(state, signal, rules, speaker)
            kinds = {type(e) for e in effects}
            if speaker.starter:
                assert not kinds & {ShutOut, Left}
                if Ended in kinds and before.ended_reason is None and speaker.others_at_risk:
                    assert state.ended_reason is EndReason.USER_REQUESTED
            else:
                assert not kinds & {Ended, EndProposed}
                if ShutOut in kinds:
                    assert before.warned and not before.crisis
                    assert before.redirects >= rules.redirects_before_end


# --- alert-only mode (DESIGN.md rule 9) ----------------------------------------------------

ALERT = Rules(redirects_before_warning=2, redirects_before_end=3, alert_only=True)


@pytest.mark.parametrize("speaker", SPEAKERS)
@pytest.mark.parametrize("reason", MODEL_REASONS)
def test_alert_only_says_where_it_would_end_and_ends_nothing(
    speaker: Speaker, reason: EndReason
) -> None:
    earned = climb(speaker, ALERT)
    assert earned.warned  # the ladder runs exactly as in end mode
    state, effects = transition(earned, EndRequest(reason), ALERT, speaker)
    if speaker.starter and speaker.others_at_risk:
        assert effects == (EndDeclined(DeclineWhy.CRISIS),)
    else:
        assert effects == (WouldEnd(reason),)
    assert state == earned and not state.ended


def test_alert_only_declines_as_end_mode_does_and_leaves_the_persons_own_end_alone() -> None:
    _, effects = transition(LadderState(), EndRequest(EndReason.PERSISTENT_ABUSE), ALERT)
    assert effects == (EndDeclined(DeclineWhy.NOT_WARNED),)
    mine = EndRequest(EndReason.USER_REQUESTED, Actor.USER)
    state, effects = transition(LadderState(), mine, ALERT)
    assert state.ended and effects == (Ended(EndReason.USER_REQUESTED, Actor.USER, False),)


@settings(max_examples=300)
@given(st.lists(st.tuples(signals, speakers), max_size=40), rules)
def test_alert_only_never_ends_or_shuts_out_but_by_the_persons_own_request(
    seq: list[tuple[Signal, Speaker]], rules: Rules
) -> None:
    alert = replace(rules, alert_only=True)
    state, same = LadderState(), LadderState()
    for signal, speaker in seq:
        state, effects = transition(state, signal, alert, speaker)
        same, expected = transition(same, signal, rules, speaker)
        kinds = {type(e) for e in effects}
        assert ShutOut not in kinds
        for effect in effects:
            if isinstance(effect, Ended):
                assert effect.reason is EndReason.USER_REQUESTED
        # Where end mode ends or shuts out by the ladder, alert mode says WouldEnd instead.
        ladder_ends = [e for e in expected if isinstance(e, ShutOut | Ended)]
        ladder_ends = [e for e in ladder_ends if e.reason is not EndReason.USER_REQUESTED]
        assert bool(ladder_ends) == (WouldEnd in kinds)
        if ladder_ends:
            same = state  # end mode has ended; carry on from where alert mode stands
