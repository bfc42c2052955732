"""`quitbot review` on a disputed shut-out, in real processes on both backends: listed
with whose shut-out it is, then readmitted or upheld, each on the record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.conversation import Actor, AuditEvent, ConversationKey, Inbound
from bot.ports import NewMessage
from bot.settings import parse_database_url
from bot.store import open_store
from tests.bot.storekit import ENDED
from tests.processes import clean_env, quitbot

BOB = "U0BOB"


async def bob_shut_out(url: str, *, disputes: bool) -> str:
    """ALICE's conversation on Discord goes on; BOB is shut out of it (and says it was a
    mistake, when `disputes`)."""
    store = await open_store(parse_database_url(url))
    try:
        at = datetime.now(UTC) - timedelta(minutes=5)
        conversation = await store.create(ConversationKey("discord", "t1"), "U0ALICE", at)
        said = NewMessage("user", "you are useless", [], at, user_id=BOB)
        inbound = Inbound(conversation.key, "e1", BOB, "you are useless")
        assert await store.begin_turn(conversation.id, inbound, said)
        detail = {"participant": BOB, "reason": "persistent_abuse", "explanation": "kept at it"}
        event = AuditEvent("participant_shut_out", at, Actor.MODEL, detail)
        await store.commit_turn(
            conversation.id, conversation.ladder, at, (), [event], participant=(BOB, ENDED)
        )
        if disputes:
            later = at + timedelta(minutes=1)
            words = "I was joking"
            feedback = AuditEvent("feedback", later, Actor.USER, {"user_id": BOB, "text": words})
            await store.add_feedback(conversation.id, BOB, words, later, [feedback])
        return conversation.id
    finally:
        await store.close()


async def listed(tmp_path: Path, env: dict[str, str]) -> list[dict[str, object]]:
    code, out, err = await quitbot(tmp_path, env, "review", "list", "--json")
    assert code == 0, err
    return list(json.loads(out))


async def test_an_undisputed_shut_out_is_not_listed(tmp_path: Path, database_url: str) -> None:
    env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=database_url)
    await bob_shut_out(database_url, disputes=False)
    assert await listed(tmp_path, env) == []


async def test_a_disputed_shut_out_is_listed_then_readmitted(
    tmp_path: Path, database_url: str
) -> None:
    env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=database_url)
    conversation_id = await bob_shut_out(database_url, disputes=True)
    [item] = await listed(tmp_path, env)
    assert item["id"] == conversation_id and item["state"] == "active"
    assert item["shut_out_user_id"] == BOB and item["stated_reason"] == "kept at it"
    assert item["feedback"] == [
        {"user_id": BOB, "text": "I was joking", "at": item["waiting_since"]}
    ]
    assert [m["text"] for m in item["last_messages"]] == ["you are useless"]  # type: ignore[attr-defined]
    code, out, _ = await quitbot(tmp_path, env, "review", "list")
    assert f"SHUT OUT: {BOB}" in out and "the conversation is active" in out

    code, out, err = await quitbot(
        tmp_path, env, "review", "resolve", conversation_id, "--readmit", "--note", "a joke",
        "--by", "mod-1",
    )  # fmt: skip
    assert code == 0 and f"{BOB} readmitted" in out, err
    assert await listed(tmp_path, env) == []
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", conversation_id, "--json")
    shown = json.loads(out)
    assert shown["participants"][0]["shut_out"] is False
    review, readmitted = shown["events"][-2:]
    assert review["kind"] == "review" and review["detail"]["decision"] == "readmitted"
    assert review["detail"]["moderator_id"] == "mod-1" and review["detail"]["participant"] == BOB
    assert readmitted["kind"] == "participant_readmitted"
    code, out, _ = await quitbot(tmp_path, env, "review", "stats", "--json")
    assert json.loads(out)["shut_outs_readmitted"] == 1


async def test_upholding_a_disputed_shut_out_keeps_them_out(
    tmp_path: Path, database_url: str
) -> None:
    env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=database_url)
    conversation_id = await bob_shut_out(database_url, disputes=True)
    code, out, err = await quitbot(
        tmp_path, env, "review", "resolve", conversation_id, "--uphold", "--note", "abuse"
    )
    assert code == 0 and "upheld" in out, err
    assert await listed(tmp_path, env) == []
    code, out, _ = await quitbot(tmp_path, env, "conversations", "show", conversation_id, "--json")
    shown = json.loads(out)
    assert shown["participants"][0]["shut_out"] is True
    assert shown["events"][-1]["detail"]["decision"] == "upheld"
    code, _, err = await quitbot(
        tmp_path, env, "review", "resolve", conversation_id, "--uphold", "--note", "again",
        "--person", BOB,
    )  # fmt: skip
    assert code == 1 and "nothing to uphold" in err
