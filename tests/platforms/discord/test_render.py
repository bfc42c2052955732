"""Notices and records rendered for Discord (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.communities import CommunitySettings
from bot.conversation import (
    Actor,
    AuditEvent,
    Conversation,
    ConversationKey,
    EndReason,
    LadderState,
)
from bot.notices import AFTER_END_TEXT, BLOCKED_TEXT, WARNING_TEXT, Notice, NoticeKind, end_text
from bot.review import Feedback, ReviewItem
from platforms.discord import render

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_warning_is_a_distinct_embed() -> None:
    shown = render.notice(Notice(NoticeKind.WARNING, WARNING_TEXT), in_dm=False)
    assert shown.content is None and shown.embed is not None
    assert shown.embed.title == "Warning" and shown.embed.colour == render.WARNING_COLOUR


def test_end_adds_how_to_start_again_and_resources_but_no_buttons() -> None:
    notice = Notice(NoticeKind.END, end_text(EndReason.USER_REQUESTED), resources="Call 988.")
    shown = render.notice(notice, in_dm=True)
    assert shown.embed is not None and shown.embed.description is not None
    assert "you asked" in shown.embed.description
    assert render.START_AGAIN_IN_DM in shown.embed.description
    assert shown.embed.description.endswith("Call 988.")
    assert shown.buttons == ()  # it stays in a thread about to be locked: they would be dead


def test_after_end_offers_a_new_conversation_where_it_began_and_feedback() -> None:
    conversation = Conversation(
        "c1", ConversationKey("discord", "42"), "7", LadderState(), NOW, NOW
    )
    shown = render.notice(
        Notice(NoticeKind.AFTER_END, AFTER_END_TEXT),
        in_dm=False,
        conversation=conversation,
        origin=99,
    )
    assert shown.content == AFTER_END_TEXT
    assert [b.custom_id for b in shown.buttons] == ["quitbot:new:99", "quitbot:mistake:c1"]


def test_blocked_says_how_to_start_again_in_a_server() -> None:
    shown = render.notice(Notice(NoticeKind.BLOCKED, BLOCKED_TEXT), in_dm=False)
    assert shown.content == f"{BLOCKED_TEXT}\n{render.START_AGAIN_IN_SERVER}"


def test_other_notices_are_plain_text() -> None:
    for kind in (
        NoticeKind.DECLINE,
        NoticeKind.MODEL_UNAVAILABLE,
        NoticeKind.LIMIT,
        NoticeKind.TOO_LONG,
    ):
        assert render.notice(Notice(kind, "words"), in_dm=False) == render.Rendered(content="words")


def test_status_and_audit_for_moderators() -> None:
    ladder = LadderState(3, True, False, True, Actor.MODEL, EndReason.PERSISTENT_ABUSE)
    conversation = Conversation("c1", ConversationKey("discord", "5"), "7", ladder, NOW, NOW, NOW)
    status = render.status(conversation)
    assert "ended" in status and "Redirects: 3" in status and "model: persistent_abuse" in status
    events = [AuditEvent("warning", NOW, Actor.BOT, {"message_id": "9"})] * 200
    audit = render.audit(events)
    assert len(audit) <= 2000 and audit.startswith("…") and "**warning** by bot" in audit
    assert render.audit([]).startswith("No events")


def test_the_review_queue_fits_one_embed_and_counts_what_did_not_fit() -> None:
    ended = LadderState(redirects=3, warned=True, ended=True, ended_by=Actor.MODEL)
    items = [
        ReviewItem(
            Conversation(f"c{n}", ConversationKey("discord", str(100 + n)), "7", ended, NOW, NOW),
            (Feedback("7", "no! " * 500, NOW),),
            "why " * 500,
            (),
        )
        for n in range(30)
    ]
    shown = render.review_queue(items, guild_id=1)
    assert shown.content is not None and len(shown.content) <= render.MESSAGE_LIMIT
    assert shown.embed is not None and shown.embed.description is not None
    assert len(shown.embed.description) <= render.EMBED_LIMIT
    assert "`c0`" in shown.embed.description and "https://discord.com/channels/1/100" in (
        shown.embed.description
    )
    assert shown.embed.description.endswith("more")
    assert "Nothing to review" in (render.review_queue([], guild_id=1).content or "")


def test_community_settings_show_what_is_the_servers_own() -> None:
    shown = render.community_settings(CommunitySettings(redirects_before_warning=1))
    assert "`redirects_before_warning`: 1" in shown and "`crisis_message`: default" in shown
    assert (
        len(render.community_settings(CommunitySettings(None, None, "x" * 5000, "y" * 5000)))
        <= 2000
    )
