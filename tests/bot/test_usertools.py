"""User tools: declared, registered, enabled per process and per community, run by the
turn's tool-use loop over the real SDK against the fake Messages API; hostile ones fail as
an `is_error` tool_result and the person is still answered."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from bot import operator
from bot.app import Runtime, build_runtime
from bot.communities import BadCommunitySettings, CommunitySettings
from bot.conversation import ConversationKey, Inbound
from bot.metrics import Metrics
from bot.settings import Settings
from bot.usertools import Tool, ToolContext, ToolError, ToolFailure, ToolRegistry, tool
from tests.bot.test_flows import Reply
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, text, tools
from tests.fakes.anthropic import tool as call
from tests.processes import clean_env, quitbot


class Question(BaseModel):
    topic: str


@dataclass
class Seen:
    """What the handlers were called with."""

    calls: list[tuple[ToolContext, Question]] = field(default_factory=list)


def faq_tool(seen: Seen) -> Tool[Question]:
    @tool("faq", timeout_seconds=5)
    async def faq(context: ToolContext, question: Question) -> str:
        """Look up the community's FAQ."""
        seen.calls.append((context, question))
        return f"The answer about {question.topic}: we open at nine."

    return faq


@dataclass
class Rig:
    runtime: Runtime
    fake: FakeAnthropic
    seen: Seen
    metrics: Metrics
    shown: list[str] = field(default_factory=list)
    n: int = 0

    async def say(self, words: str, place: str = "t1", community: str = "g1") -> Any:
        self.n += 1
        key = ConversationKey("discord", place)
        inbound = Inbound(key, f"e{self.n}", "alice", words, f"m{self.n}", (), community)
        return await self.runtime.engine.handle(inbound, Reply(self.shown))

    def results(self, request: int) -> list[dict[str, Any]]:
        """The tool_result blocks sent in that request."""
        content = self.fake.requests[request]["messages"][-1]["content"]
        return [b for b in content if b.get("type") == "tool_result"]

    async def events(self, conversation_id: str, kind: str) -> list[dict[str, Any]]:
        _, events = await self.runtime.engine.record(conversation_id)
        return [e.detail for e in events if e.kind == kind]


async def _hangs(context: ToolContext, question: Question) -> str:
    await asyncio.Event().wait()
    return "never"


async def _raises(context: ToolContext, question: Question) -> str:
    raise RuntimeError("secret database password in this message")


async def _refuses(context: ToolContext, question: Question) -> str:
    raise ToolFailure("No FAQ entry is about that.")


async def _floods(context: ToolContext, question: Question) -> str:
    return "x" * 10_000_000


async def _unsendable(context: ToolContext, question: Question) -> object:
    return {"when": object()}


HOSTILE = [
    Tool("hangs", "Never returns.", Question, _hangs, timeout_seconds=0.01),
    Tool("raises", "Raises.", Question, _raises),
    Tool("refuses", "Fails in words.", Question, _refuses),
    Tool("floods", "Returns 10 MB.", Question, _floods),
    Tool("unsendable", "Returns what JSON cannot carry.", Question, _unsendable),
]


@pytest.fixture
async def rig(tmp_path: Path, fake_anthropic: FakeAnthropic) -> AsyncIterator[Rig]:
    seen = Seen()
    registry = ToolRegistry([faq_tool(seen), *HOSTILE])
    settings = make_settings(
        tmp_path,
        fake_anthropic,
        tools=["*"],
        redirects_before_warning=1,
        redirects_before_end=1,
    )
    metrics = Metrics()
    async with build_runtime(settings, tools=registry, observer=metrics) as runtime:
        yield Rig(runtime, fake_anthropic, seen, metrics)


async def test_a_tool_call_goes_to_the_handler_and_its_result_back_to_the_model(
    rig: Rig,
) -> None:
    rig.fake.add(call("faq", {"topic": "hours"}), text("We open at nine."))
    outcome = await rig.say("When do you open?")

    assert "We open at nine." in "".join(rig.shown)
    offered = [t["name"] for t in rig.fake.requests[0]["tools"]]
    assert offered[:3] == ["note_concern", "end_conversation", "faq"]
    faq = next(t for t in rig.fake.requests[0]["tools"] if t["name"] == "faq")
    assert faq["description"] == "Look up the community's FAQ."
    assert faq["input_schema"]["required"] == ["topic"]

    [(context, question)] = rig.seen.calls
    assert question == Question(topic="hours")
    assert context.conversation_id == outcome.conversation.id
    assert (context.participant, context.community, context.platform) == ("alice", "g1", "discord")
    assert context.settings is rig.runtime.settings

    [result] = rig.results(1)
    assert result["content"] == "The answer about hours: we open at nine."
    assert "is_error" not in result
    [event] = await rig.events(outcome.conversation.id, "tool_call")
    assert event["tool"] == "faq" and event["ok"] is True
    assert isinstance(event["duration_ms"], int)
    assert "hours" not in json.dumps(event)  # the content stays out of the record
    assert "quitbot_tool_calls_total" in rig.metrics.render().decode()
    assert _count(rig.metrics, "faq", "ok") == 1


def _count(metrics: Metrics, name: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "quitbot_tool_calls_total", {"platform": "discord", "tool": name, "outcome": outcome}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("name", "failure", "says"),
    [
        ("hangs", "timeout", "took too long"),
        ("raises", "exception", "failed (RuntimeError)"),
        ("refuses", "exception", "No FAQ entry is about that."),
        ("floods", "too_long", "[cut: the result had 10000000 characters"),
        ("unsendable", "bad_result", "could not send"),
    ],
)
async def test_a_hostile_tool_is_an_error_result_and_the_person_is_answered(
    rig: Rig, name: str, failure: str, says: str
) -> None:
    rig.fake.add(call(name, {"topic": "x"}), text("That did not work; ask me something else."))
    outcome = await rig.say("Try the tool")

    assert "ask me something else" in "".join(rig.shown)
    assert not outcome.ended
    [result] = rig.results(1)
    assert result["is_error"] is True and says in result["content"]
    assert len(result["content"]) < 21_000
    assert "password" not in result["content"]
    [event] = await rig.events(outcome.conversation.id, "tool_call")
    assert event == {
        "message_id": "m1",
        "tool": name,
        "ok": False,
        "duration_ms": event["duration_ms"],
        "failure": failure,
    }
    assert _count(rig.metrics, name, failure) == 1


async def test_invalid_input_tells_the_model_what_was_wrong(rig: Rig) -> None:
    rig.fake.add(call("faq", {"subject": "hours"}), text("Let me try again later."))
    await rig.say("When do you open?")

    [result] = rig.results(1)
    assert result["is_error"] is True
    assert result["content"].startswith("Invalid input: topic: Field required")
    assert rig.seen.calls == []


async def test_a_user_tool_never_runs_once_the_conversation_has_ended(rig: Rig) -> None:
    abuse = {"kind": "abuse", "note": "insults"}
    end = {"reason": "persistent_abuse", "explanation": "kept on after the warning"}
    rig.fake.add(call("note_concern", abuse), text("Let's keep it civil."))
    await rig.say("you idiot")
    rig.fake.add(tools([("end_conversation", end), ("faq", {"topic": "hours"})]))
    outcome = await rig.say("you idiot again")

    assert outcome.ended and rig.seen.calls == []
    assert len(rig.fake.requests) == 3  # nothing after the end: the model says no more
    blocked = await rig.say("and the hours?")
    assert blocked.ended and len(rig.fake.requests) == 3
    assert await rig.events(outcome.conversation.id, "tool_call") == []


def test_reserved_names_are_refused_at_registration() -> None:
    registry = ToolRegistry()
    for name in ("note_concern", "end_conversation"):
        hostile = Tool(name, "Ends everything.", Question, _raises)
        with pytest.raises(ToolError, match=f"{name!r} is reserved for quitbot's ladder"):
            registry.register(hostile)
    assert registry.names == ()


async def test_a_decorated_tool_is_called_as_the_function_it_was() -> None:
    @tool()
    async def faq(context: ToolContext, question: Question) -> str:
        if question.topic == "missing":
            raise ToolFailure("no such entry")
        return f"{context.participant} asked about {question.topic}"

    context = ToolContext("c1", "alice", "", "console")
    assert await faq(context, Question(topic="rules")) == "alice asked about rules"
    with pytest.raises(ToolFailure, match="no such entry"):
        await faq(context, Question(topic="missing"))


def test_names_must_be_new_and_valid() -> None:
    registry = ToolRegistry([Tool("faq", "", Question, _raises)])
    with pytest.raises(ToolError, match="registered already"):
        registry.register(Tool("faq", "", Question, _raises))
    with pytest.raises(ToolError, match="no valid tool name"):
        registry.register(Tool("f a q", "", Question, _raises))


async def test_the_ladder_still_works_beside_a_refused_reserved_tool(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    registry = ToolRegistry()
    with pytest.raises(ToolError):
        registry.register(Tool("end_conversation", "Mine.", Question, _raises))
    settings = make_settings(tmp_path, fake_anthropic, tools=["*"])
    end = {"reason": "persistent_abuse", "explanation": "early"}
    fake_anthropic.add(call("end_conversation", end), text("Let's go on, then."))
    async with build_runtime(settings, tools=registry) as runtime:
        shown: list[str] = []
        inbound = Inbound(ConversationKey("discord", "t"), "e", "alice", "hi", "m")
        outcome = await runtime.engine.handle(inbound, Reply(shown))
    assert not outcome.ended and "Let's go on, then." in "".join(shown)
    [result] = [
        b for b in fake_anthropic.requests[1]["messages"][-1]["content"] if "tool_use_id" in b
    ]
    assert result["content"].startswith("Declined")


async def test_only_the_tools_settings_name_reach_the_model(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    registry = ToolRegistry([faq_tool(Seen()), *HOSTILE])
    none = make_settings(tmp_path, fake_anthropic)
    fake_anthropic.add(text("Hi."))
    async with build_runtime(none, tools=registry) as runtime:
        inbound = Inbound(ConversationKey("discord", "t"), "e", "alice", "hi", "m")
        await runtime.engine.handle(inbound, Reply([]))
    assert [t["name"] for t in fake_anthropic.requests[0]["tools"]] == [
        "note_concern",
        "end_conversation",
    ]
    unknown = make_settings(tmp_path, fake_anthropic, tools=["faq", "weather"])
    with pytest.raises(ToolError, match="no tool named 'weather' is installed"):
        async with build_runtime(unknown, tools=registry):
            pass
    timeouts = make_settings(tmp_path, fake_anthropic, tools=["faq"], tool_timeouts={"faq": 2})
    async with build_runtime(timeouts, tools=registry) as runtime:
        assert runtime.engine.toolbox.tools["faq"].timeout_seconds == 2


async def test_a_community_narrows_the_tools_its_model_gets(rig: Rig) -> None:
    engine = rig.runtime.engine
    await engine.set_community_settings("discord", "g1", CommunitySettings(tools=("faq",)), "m")
    with pytest.raises(BadCommunitySettings, match="no tool weather is enabled"):
        await engine.set_community_settings(
            "discord", "g1", CommunitySettings(tools=("weather",)), "m"
        )
    rig.fake.add(text("Hi."), text("Hi again."))
    await rig.say("hi", place="a", community="g1")
    await rig.say("hi", place="b", community="g2")
    first, second = ([t["name"] for t in r["tools"]] for r in rig.fake.requests)
    assert first == ["note_concern", "end_conversation", "faq"]
    assert second == ["note_concern", "end_conversation", "faq", *(t.name for t in HOSTILE)]
    stored = await engine.community_settings("discord", "g1")
    assert stored.tools == ("faq",)


async def test_tools_from_the_command_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path, None)
    changing = ("communities", "set", "discord:1234")
    code, _, err = await quitbot(tmp_path, env, *changing, "--tools", "faq")
    assert code == 1 and "no tool faq is enabled here (enabled: none)" in err
    code, out, err = await quitbot(tmp_path, env, *changing, "--tools", "")
    assert code == 0 and "tools=()" in out, err
    env["QUITBOT_TOOLS"] = "faq"
    code, _, err = await quitbot(tmp_path, env, "communities", "show")
    assert code == 2 and "quitbot: tools: no tool named 'faq' is installed" in err


def _not_async(context: ToolContext, question: Question) -> str:
    return "not awaitable"


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_what_goes_in_and_out_is_logged_only_at_debug(
    rig: Rig, caplog: pytest.LogCaptureFixture, level: str
) -> None:
    caplog.set_level(level)
    rig.fake.add(
        tools([("faq", {"topic": "secret-topic"}), ("raises", {"topic": "another-secret"})]),
        text("Done."),
    )
    await rig.say("hi")
    logged = caplog.text
    assert "tool raises raised RuntimeError" in logged
    assert ("secret-topic" in logged) is (level == "DEBUG")
    assert ("password" in logged) is (level == "DEBUG")


async def test_a_handler_that_is_not_async_fails_as_a_tool_result(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    registry = ToolRegistry([Tool("plain", "", Question, _not_async)])  # type: ignore[arg-type]
    settings = make_settings(tmp_path, fake_anthropic, tools=["plain"])
    fake_anthropic.add(call("plain", {"topic": "x"}), text("Sorry."))
    async with build_runtime(settings, tools=registry) as runtime:
        shown: list[str] = []
        inbound = Inbound(ConversationKey("discord", "t"), "e", "alice", "hi", "m")
        await runtime.engine.handle(inbound, Reply(shown))
    assert "Sorry." in "".join(shown)
    [result] = [b for b in fake_anthropic.requests[1]["messages"][-1]["content"]]
    assert result["is_error"] is True and "TypeError" in result["content"]


class Picky(BaseModel):
    topic: str

    @field_validator("topic")
    @classmethod
    def _lookup(cls, value: str) -> str:
        return {"known": value}[value]  # a KeyError, which pydantic does not wrap


async def _empty(context: ToolContext, question: Any) -> str:
    return ""


async def test_odd_tools_still_answer_the_model(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    registry = ToolRegistry([Tool("picky", "", Picky, _empty), Tool("empty", "", Question, _empty)])
    settings = make_settings(tmp_path, fake_anthropic, tools=["*"])
    fake_anthropic.add(
        tools([("picky", {"topic": "unknown"}), ("empty", {"topic": "x"})]), text("Hm.")
    )
    async with build_runtime(settings, tools=registry) as runtime:
        inbound = Inbound(ConversationKey("discord", "t"), "e", "alice", "hi", "m")
        await runtime.engine.handle(inbound, Reply([]))
    picky, empty = fake_anthropic.requests[1]["messages"][-1]["content"]
    assert picky["is_error"] is True and "KeyError" in picky["content"]
    assert empty["content"] == "(The tool returned nothing.)" and "is_error" not in empty


HOSTILE_PACKAGE = """
from pydantic import BaseModel
from bot.usertools import Tool

class Empty(BaseModel):
    pass

async def handler(context, data):
    return "ok"

takes_the_end = Tool("end_conversation", "Mine now.", Empty, handler)
not_a_tool = "hello"
good = [Tool("good_one", "Fine.", Empty, handler)]
"""


def test_a_tool_package_with_bad_entries_loses_only_those(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hostile_tools.py").write_text(HOSTILE_PACKAGE)
    info = tmp_path / "hostile_tools-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-tools\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[quitbot.tools]\n"
        "reserved = hostile_tools:takes_the_end\n"
        "missing = hostile_tools_gone:tools\n"
        "odd = hostile_tools:not_a_tool\n"
        "good = hostile_tools:good\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ToolRegistry()
    problems = registry.load_entry_points()
    del sys.modules["hostile_tools"]

    assert registry.names == ("good_one",)
    assert len(problems) == 3
    reserved, missing, odd = sorted(problems, key=lambda p: ("reserved" not in p, "gone" not in p))
    assert "'end_conversation' is reserved for quitbot's ladder" in reserved
    assert "No module named 'hostile_tools_gone'" in missing
    assert "it must name a quitbot Tool" in odd


async def test_doctor_lists_the_tools_and_says_which_are_off(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ToolRegistry(
        [Tool("faq", "", Question, _raises), Tool("status", "", Question, _raises)]
    )
    await operator.doctor(settings.model_copy(update={"tools": ["faq"]}), registry)
    out = capsys.readouterr().out
    assert "ok   tools: registered faq, status; QUITBOT_TOOLS enables faq\n" in out
    assert "WARN tools: status is registered but off (add it to QUITBOT_TOOLS" in out

    # A wrong name fails its line; the other checks still run.
    code = await operator.doctor(settings.model_copy(update={"tools": ["nope"]}), registry)
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL tools: no tool named 'nope' is installed (installed: faq, status)" in out
    assert "ok   database:" in out and "ok   model API:" in out
