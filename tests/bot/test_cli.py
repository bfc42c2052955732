"""The `quitbot` command as an operator and a script use it: real processes, fake Claude."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.anthropic import FakeAnthropic, text, tool
from tests.processes import clean_env, quitbot

END = {"reason": "persistent_abuse", "explanation": "kept insulting after the warning"}
ABUSE = {"kind": "abuse", "note": "insults"}


async def test_scripted_chat_to_the_end_and_operator_view(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.add(text("Hi! How can I help?"))
    for _ in range(3):
        fake_anthropic.add(
            tool("note_concern", ABUSE, text="Let's keep it civil."), text("Ask me anything.")
        )
    fake_anthropic.add(tool("end_conversation", END))
    env = clean_env(tmp_path, fake_anthropic)
    lines = ["hello", *["you are useless garbage"] * 4, "hello?", "/quit", "never read"]
    code, out, err = await quitbot(tmp_path, env, "chat", stdin="\n".join(lines) + "\n")
    assert code == 0, err
    assert "Hi! How can I help?" in out
    assert out.count("[warning]") == 1
    assert "[end] This conversation has ended because it kept being abusive" in out
    assert "[blocked]" in out
    assert len(fake_anthropic.requests) == 8

    code, out, err = await quitbot(tmp_path, env, "conversations", "list", "--json")
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed["state"] == "ended" and listed["platform"] == "console"
    assert listed["redirects"] == 3 and listed["warned"] and not listed["crisis"]
    assert listed["ended_by"] == "model" and listed["ended_reason"] == "persistent_abuse"
    for field in ("id", "created_at", "updated_at", "ended_at"):
        assert listed[field]

    code, out, err = await quitbot(tmp_path, env, "conversations", "show", listed["id"], "--json")
    shown = json.loads(out)
    assert shown["messages"][0] == {**shown["messages"][0], "role": "user", "text": "hello"}
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds.count("redirect") == 3 and "warning" in kinds and kinds[-1] == "end"
    end = shown["events"][-1]
    assert end["actor"] == "model" and end["detail"]["explanation"] == END["explanation"]
    assert set(end) == {"kind", "at", "actor", "detail"}

    code, out, err = await quitbot(
        tmp_path, env, "conversations", "reopen", listed["id"], "--note", "too strict"
    )
    assert code == 0 and "reopened" in out
    fake_anthropic.add(text("Welcome back."))
    code, out, err = await quitbot(
        tmp_path, env, "chat", "--resume", listed["id"], stdin="hi again\n"
    )
    assert code == 0 and "Welcome back." in out

    code, out, _ = await quitbot(tmp_path, env, "conversations", "export")
    [exported] = [json.loads(line) for line in out.splitlines()]
    assert exported["events"][-1]["kind"] == "reopen" or "reopen" in [
        e["kind"] for e in exported["events"]
    ]


async def test_branch_from_the_cli(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    env = clean_env(tmp_path, fake_anthropic)
    fake_anthropic.add(text("Paris."), text("Rome."))
    code, out, _ = await quitbot(tmp_path, env, "chat", stdin="France?\nItaly?\n/end\nyes\n")
    assert code == 0 and "[end]" in out
    source = out.split("[conversation] ")[1].split()[0]
    fake_anthropic.add(text("Berlin."))
    code, out, err = await quitbot(
        tmp_path, env, "chat", "--branch", source, "--from", "2", stdin="Germany?\n"
    )
    assert code == 0, err
    assert "Berlin." in out
    assert [m["role"] for m in fake_anthropic.requests[-1]["messages"]] == [
        "user",
        "assistant",
        "user",
    ]


async def test_bad_settings_exit_2_with_one_line_each(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        None,
        QUITBOT_REDIRECTS_BEFORE_WARNING="many",
        QUITBOT_DATABASE_URL="postgresql://db",
        QUITBOT_SLACK_MODE="carrier-pigeon",
    )
    code, _out, err = await quitbot(tmp_path, env, "conversations", "list")
    assert code == 2
    assert "Traceback" not in err
    assert "QUITBOT_REDIRECTS_BEFORE_WARNING: Input should be a valid integer" in err
    assert "QUITBOT_DATABASE_URL: the PostgreSQL URL names no database" in err
    assert "QUITBOT_SLACK_MODE: Input should be 'socket' or 'http'" in err


async def test_chat_without_a_key_says_how_to_get_one(tmp_path: Path) -> None:
    code, _, err = await quitbot(tmp_path, clean_env(tmp_path, None), "chat", stdin="hi\n")
    assert code == 2 and "ANTHROPIC_API_KEY is not set" in err


async def test_run_with_no_platform_says_what_to_set(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    code, _, err = await quitbot(tmp_path, clean_env(tmp_path, fake_anthropic), "run")
    assert code == 2 and "DISCORD_TOKEN" in err and "SLACK_BOT_TOKEN" in err


async def test_doctor_reports_each_check(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    code, out, err = await quitbot(tmp_path, clean_env(tmp_path, fake_anthropic), "doctor")
    assert "ok   database" in out and "ok   model API" in out
    # Without a platform `run` would refuse to start: the one failure (tests/test_ops_startup).
    [failed] = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert code == 1 and failed.startswith("FAIL run:"), out + err
    assert "ok   hooks: none installed" in out and "ok   webhooks: not configured" in out
    code, out, _ = await quitbot(tmp_path, clean_env(tmp_path, None), "doctor")
    assert code == 1 and "FAIL model API: ANTHROPIC_API_KEY is not set" in out


async def test_doctor_names_webhook_hosts_but_never_their_paths(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    env = clean_env(tmp_path, fake_anthropic)
    env["QUITBOT_WEBHOOK_URL"] = "https://hooks.example.com/T0/s3cret"
    env["QUITBOT_WEBHOOK_SECRET"] = "a webhook secret of some length"
    code, out, err = await quitbot(tmp_path, env, "doctor")
    assert code == 1 and "FAIL run:" in out, out + err  # no platform: run would refuse
    assert "ok   webhooks: to hooks.example.com#" in out and "s3cret" not in out


async def test_unknown_conversation_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = await quitbot(
        tmp_path, clean_env(tmp_path, None), "conversations", "show", "nope"
    )
    assert code == 1 and "no conversation with id 'nope'" in err
