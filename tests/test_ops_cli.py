"""The operator's long-run commands in real processes against a real database file:
review queue, transcripts, a person's data, retention."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.conversation import (
    Actor,
    AuditEvent,
    ConversationKey,
    FileRef,
    Inbound,
    LadderState,
)
from bot.ports import NewMessage
from bot.progress import Progress
from bot.settings import parse_database_url
from bot.store import open_store
from tests.bot.storekit import ENDED
from tests.fakes.anthropic import FakeAnthropic, text, tool
from tests.processes import clean_env, quitbot

END = {"reason": "persistent_abuse", "explanation": "kept insulting after the warning"}
ABUSE = {"kind": "abuse", "note": "insults"}
PERSON = "console:console-user"


async def ended_by_model(tmp_path: Path, fake: FakeAnthropic, env: dict[str, str]) -> str:
    fake.add(text("Hi! How can I help?"))
    for _ in range(3):
        fake.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("Ask away."))
    fake.add(tool("end_conversation", END))
    lines = ["hello", *["you are useless garbage"] * 4]
    code, out, err = await quitbot(tmp_path, env, "chat", stdin="\n".join(lines) + "\n")
    assert code == 0 and "[end]" in out, err
    code, out, err = await quitbot(tmp_path, env, "conversations", "list", "--json")
    [listed] = json.loads(out)
    return str(listed["id"])


async def give_feedback(env: dict[str, str], conversation_id: str, words: str) -> None:
    """What the platforms' "This was a mistake" button stores (the console has none)."""
    store = await open_store(parse_database_url(env["QUITBOT_DATABASE_URL"]))
    try:
        at = datetime.now(UTC)
        event = AuditEvent("feedback", at, Actor.USER, {"user_id": "console-user", "text": words})
        await store.add_feedback(conversation_id, "console-user", words, at, [event])
    finally:
        await store.close()


async def test_review_queue_from_the_command_line(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_DATABASE_URL=database_url)
    conversation_id = await ended_by_model(tmp_path, fake_anthropic, env)
    code, out, _ = await quitbot(tmp_path, env, "review", "list")
    assert code == 0 and out.strip() == "Nothing to review."

    await give_feedback(env, conversation_id, "I was joking, this was a mistake")
    code, out, err = await quitbot(tmp_path, env, "review", "list", "--json")
    assert code == 0, err
    [item] = json.loads(out)
    assert item["id"] == conversation_id and item["state"] == "ended"
    assert item["stated_reason"] == END["explanation"] and item["redirects"] == 3
    assert [f["text"] for f in item["feedback"]] == ["I was joking, this was a mistake"]
    said = [m["text"] for m in item["last_messages"] if m["role"] == "user"]
    assert said[-1] == "you are useless garbage"
    code, out, _ = await quitbot(tmp_path, env, "review", "list")
    assert conversation_id in out and f"the model said: {END['explanation']}" in out

    code, out, err = await quitbot(
        tmp_path, env, "review", "resolve", conversation_id, "--uphold", "--note", "fair end"
    )
    assert code == 0 and "upheld" in out, err
    code, out, _ = await quitbot(tmp_path, env, "review", "list", "--json")
    assert json.loads(out) == []

    await give_feedback(env, conversation_id, "please look again")
    code, out, err = await quitbot(
        tmp_path, env, "review", "resolve", conversation_id, "--reopen", "--note", "on reflection"
    )
    assert code == 0 and "reopened" in out, err
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", conversation_id, "--json")
    shown = json.loads(out)
    assert shown["state"] == "active"
    decisions = [e for e in shown["events"] if e["kind"] in {"review", "reopen"}]
    assert [(e["kind"], e["detail"].get("decision")) for e in decisions] == [
        ("review", "upheld"),
        ("review", "reopened"),
        ("reopen", None),
    ]
    code, _, err = await quitbot(
        tmp_path, env, "review", "resolve", conversation_id, "--uphold", "--note", "x"
    )
    assert code == 1 and "is not ended" in err
    code, _, err = await quitbot(tmp_path, env, "review", "resolve", conversation_id, "--uphold")
    assert code == 2 and "--note" in err


async def test_markdown_transcript_has_the_audit_events_in_place(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(tmp_path, fake_anthropic)
    conversation_id = await ended_by_model(tmp_path, fake_anthropic, env)
    code, out, err = await quitbot(
        tmp_path, env, "conversations", "export", conversation_id, "--format", "md"
    )
    assert code == 0, err
    assert "\r" not in err  # piped: no progress
    assert out.startswith(f"# Conversation {conversation_id}\n")
    assert "- State: **ended** by model (persistent_abuse)" in out
    assert "> hello" in out and "> Hi! How can I help?" in out
    hello, first_redirect = out.index("> hello"), out.index("_redirect_ by model")
    warning, end = out.index("_warning_ by bot"), out.index("_end_ by model")
    assert hello < first_redirect < warning < end
    assert f"explanation: {END['explanation']}" in out[end:]
    # The last user message comes before the end it led to.
    assert out.rindex("> you are useless garbage") < end


async def test_a_persons_data_exported_then_forgotten(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_DATABASE_URL=database_url)
    conversation_id = await ended_by_model(tmp_path, fake_anthropic, env)
    await give_feedback(env, conversation_id, "mistake!")
    store = await open_store(parse_database_url(database_url))
    try:  # kept, not answered yet (a run stopped first): theirs too
        waiting = Inbound(
            ConversationKey("console", "elsewhere"),
            "e-waiting",
            "console-user",
            "my address is 1 Main St",
            files=(FileRef("id.png", "image/png", 10, "https://files.example/id.png"),),
        )
        assert await store.receive(waiting, datetime.now(UTC))
    finally:
        await store.close()

    code, out, err = await quitbot(tmp_path, env, "users", "export", PERSON)
    assert code == 0, err
    exported = json.loads(out)
    assert exported["messages_waiting"] == [
        {
            "place": "elsewhere",
            "text": "my address is 1 Main St",
            "files": ["id.png"],
            "community": "",
        }
    ]
    assert exported["platform"] == "console" and exported["user_id"] == "console-user"
    [started] = exported["conversations_started"]
    assert started["id"] == conversation_id
    assert "you are useless garbage" in [m["text"] for m in started["messages"]]
    assert exported["feedback"][0]["text"] == "mistake!"

    code, out, err = await quitbot(tmp_path, env, "users", "forget", PERSON, "--by", "dpo")
    assert code == 0, err
    assert "deleted 10 messages, 1 feedback and 1 unhandled messages" in out
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", conversation_id, "--json")
    shown = json.loads(out)
    assert shown["messages"] == []
    forgotten = shown["events"][-1]
    assert forgotten["kind"] == "user_forgotten"
    assert forgotten["detail"] == {"user_id": "console-user", "platform": "console", "by": "dpo"}
    assert "mistake!" not in out and "insults" not in out and END["explanation"] not in out
    assert shown["state"] == "ended" and shown["redirects"] == 3  # the decision stays

    code, out, _ = await quitbot(tmp_path, env, "users", "export", PERSON)
    after = json.loads(out)
    assert after["conversations_started"][0]["messages"] == [] and after["feedback"] == []
    assert after["messages_waiting"] == []
    code, _, err = await quitbot(tmp_path, env, "users", "forget", "console-user")
    assert code == 1 and "PLATFORM:USER_ID" in err


async def test_purge_removes_old_text_on_demand(tmp_path: Path, database_url: str) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    store = await open_store(parse_database_url(database_url))
    try:
        conversation = await store.create(ConversationKey("discord", "t"), "alice", long_ago)
        api: list[dict[str, Any]] = [{"role": "user", "content": "old secret"}]
        await store.commit_turn(
            conversation.id,
            LadderState(),
            long_ago,
            [NewMessage("user", "old secret", api, long_ago, user_id="alice")],
        )
    finally:
        await store.close()
    env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=database_url)
    code, _, err = await quitbot(tmp_path, env, "conversations", "purge")
    assert code == 2 and "QUITBOT_RETENTION_DAYS" in err
    env["QUITBOT_RETENTION_DAYS"] = "30"
    code, out, err = await quitbot(tmp_path, env, "conversations", "purge")
    assert code == 0, err
    assert "Removed the text of 1 messages" in out and "\r" not in err  # no progress
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", conversation.id, "--json")
    assert json.loads(out)["messages"][0]["text"] == ""
    assert "old secret" not in out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress("exported", 3, stream)
        for _ in range(3):
            progress.step()
        progress.finish()
    assert terminal.getvalue() == "\rexported 1/3\rexported 2/3\rexported 3/3\n"
    assert pipe.getvalue() == ""


async def test_show_and_the_transcript_name_who_else_wrote_and_who_was_shut_out(
    tmp_path: Path,
) -> None:
    env = clean_env(tmp_path, None)
    store = await open_store(parse_database_url(env["QUITBOT_DATABASE_URL"]))
    try:
        at = datetime(2026, 12, 1, tzinfo=UTC)
        conversation = await store.create(ConversationKey("discord", "t1"), "U0ALICE", at)
        said = NewMessage("user", "you are useless", [], at, user_id="U0BOB")
        assert await store.begin_turn(
            conversation.id, Inbound(conversation.key, "e1", "U0BOB", "you are useless"), said
        )
        shut = ENDED  # Bob's own ladder, ended: shut out
        event = AuditEvent(
            "participant_shut_out",
            at,
            Actor.MODEL,
            {"participant": "U0BOB", "reason": "persistent_abuse"},
        )
        await store.commit_turn(
            conversation.id, conversation.ladder, at, (), [event], participant=("U0BOB", shut)
        )
    finally:
        await store.close()
    code, out, err = await quitbot(
        tmp_path, env, "conversations", "show", conversation.id, "--json"
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["state"] == "active" and shown["redirects"] == 0
    assert shown["participants"] == [
        {
            "user_id": "U0BOB",
            "redirects": 3,
            "warned": True,
            "crisis": False,
            "shut_out": True,
            "shut_out_reason": "persistent_abuse",
        }
    ]
    code, out, err = await quitbot(tmp_path, env, "conversations", "show", conversation.id)
    assert code == 0 and "also writing: U0BOB" in out and "shut out: persistent_abuse" in out
    code, out, err = await quitbot(
        tmp_path, env, "conversations", "export", conversation.id, "--format", "md"
    )
    assert code == 0, err
    assert "- Also writing: `U0BOB`" in out and "**shut out** (persistent_abuse)" in out
    assert "_participant_shut_out_ by model" in out and "participant: U0BOB" in out
    code, out, err = await quitbot(
        tmp_path, env, "conversations", "reopen", conversation.id, "--participant", "U0CAROL"
    )
    assert code == 1 and "U0CAROL is not shut out" in err
    code, out, err = await quitbot(
        tmp_path,
        env,
        "conversations",
        "reopen",
        conversation.id,
        "--participant",
        "U0BOB",
        "--note",
        "he apologised",
        "--by",
        "mod-1",
    )
    assert code == 0 and "U0BOB may take part" in out, err
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", conversation.id, "--json")
    shown = json.loads(out)
    assert shown["participants"][0]["shut_out"] is False
    readmitted = shown["events"][-1]
    assert readmitted["kind"] == "participant_readmitted" and readmitted["actor"] == "moderator"
    assert readmitted["detail"] == {
        "participant": "U0BOB",
        "moderator_id": "mod-1",
        "note": "he apologised",
    }


async def test_alert_only_decisions_are_listed_marked_and_counted(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_ENFORCEMENT="alert")
    fake_anthropic.add(text("Hi! How can I help?"))
    for _ in range(3):
        fake_anthropic.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("Ask."))
    fake_anthropic.add(tool("end_conversation", END), text("Shall we move on?"))
    lines = ["hello", *["you are useless garbage"] * 4, "sorry"]
    fake_anthropic.add(text("No problem."))
    code, out, err = await quitbot(tmp_path, env, "chat", stdin="\n".join(lines) + "\n")
    assert code == 0 and "[end]" not in out and "No problem." in out, err

    code, out, err = await quitbot(tmp_path, env, "review", "list", "--would-end", "--json")
    assert code == 0, err
    [item] = json.loads(out)
    [would] = item["would_end"]
    assert would["reason"] == "persistent_abuse" and would["explanation"] == END["explanation"]
    code, out, _ = await quitbot(tmp_path, env, "review", "list", "--would-end")
    assert f"would have ended at {would['at']}: persistent_abuse" in out

    code, _, err = await quitbot(
        tmp_path, env, "review", "mark", item["id"], "--wrong", "--note", "just venting"
    )
    assert code == 0, err
    code, out, _ = await quitbot(tmp_path, env, "review", "list", "--would-end", "--json")
    assert json.loads(out) == []  # marked: off the list
    code, out, _ = await quitbot(tmp_path, env, "review", "stats", "--json")
    stats = json.loads(out)
    assert (stats["would_end_wrong"], stats["would_end_right"], stats["mistake_rate"]) == (
        1,
        0,
        1.0,
    )
    code, out, _ = await quitbot(tmp_path, env, "review", "stats")
    assert "mistake rate: 100% (1 of 1)" in out
