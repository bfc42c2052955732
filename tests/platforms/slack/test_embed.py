"""quitbot registered on a host's own Bolt app (`quitbot.slack.register`), over real HTTP:
signed requests -> the host's AsyncApp (Bolt's own aiohttp server) -> the host's listeners or
quitbot's -> the fake Slack and the fake Claude API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncSay
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

import quitbot
from bot.app import Runtime, build_runtime
from platforms.slack.translate import thread_key
from tests import postgres
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes.slack_requests import SlackSender, command, event_callback, mention, message
from tests.platforms.slack.conftest import slack_settings
from tests.tcp_proxy import TcpProxy

THREAD = "1700000100.000100"


@dataclass
class Host:
    """A host's Bolt app, with what its own error handler saw."""

    app: AsyncApp
    send: SlackSender
    errors: list[Exception] = field(default_factory=list)


@dataclass
class Hosts:
    """Makes hosts' apps on the fake Slack and serves them on 127.0.0.1 (Bolt's aiohttp
    adapter), each request signed as Slack signs it."""

    slack: FakeSlack
    http: aiohttp.ClientSession
    runners: list[web.AppRunner] = field(default_factory=list)

    def new(self, *, process_before_response: bool = True) -> Host:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=self.slack.base_url)
        app = AsyncApp(
            client=client,
            signing_secret=SIGNING_SECRET,
            process_before_response=process_before_response,
        )
        host = Host(app, SlackSender("", self.http))

        @app.error
        async def the_hosts_own(error: Exception) -> None:
            host.errors.append(error)

        return host

    async def serve(self, host: Host) -> None:
        runner = web.AppRunner(host.app.web_app(path="/slack/events"))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.runners.append(runner)
        host.send.url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"


def add_own_listeners(app: AsyncApp) -> None:
    """The host's own: a slash command, a message listener, and one that fails."""

    @app.command("/roll")
    async def roll(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(f"<@{command['user_id']}> rolled 4 (d6)")

    @app.message("ping")
    async def ping(message: dict[str, Any], say: AsyncSay) -> None:
        await say(text="pong", thread_ts=message.get("thread_ts"))

    @app.command("/broken")
    async def broken(ack: AsyncAck) -> None:
        raise RuntimeError("the host's own bug")


def roll() -> dict[str, str]:
    return {**command("20"), "command": "/roll"}


@pytest_asyncio.fixture
async def hosts(fake_slack: FakeSlack) -> AsyncIterator[Hosts]:
    async with aiohttp.ClientSession() as http:
        made = Hosts(fake_slack, http)
        yield made
        for runner in made.runners:
            await runner.cleanup()


@pytest_asyncio.fixture
async def runtime(
    tmp_path: Path, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path, fake_anthropic, slack=slack_settings(fake_slack))
    async with build_runtime(settings) as built:
        yield built


def pongs(slack: FakeSlack) -> list[dict[str, Any]]:
    return [c for c in slack.calls_to("chat.postMessage") if c.get("text") == "pong"]


def answered(slack: FakeSlack, words: str) -> list[dict[str, Any]]:
    """quitbot's replies with these words (short replies are posted whole, as Markdown)."""
    return [c for c in slack.calls_to("chat.postMessage") if c.get("markdown_text") == words]


@pytest.mark.parametrize("order", ["host first", "quitbot first"])
async def test_the_hosts_listeners_and_quitbots_conversations_share_one_app(
    order: str,
    fake_slack: FakeSlack,
    fake_anthropic: FakeAnthropic,
    runtime: Runtime,
    hosts: Hosts,
) -> None:
    host = hosts.new()
    if order == "host first":
        add_own_listeners(host.app)
    registration = await quitbot.slack.register(host.app, runtime)
    if order == "quitbot first":
        add_own_listeners(host.app)
    await hosts.serve(host)
    fake_anthropic.add(text("Hello from quitbot."))
    rolled = await host.send.command(roll())
    assert rolled.status == 200 and "rolled 4" in rolled.body  # the host's command
    assert (await host.send.event(event_callback(message("ping", ts="1.1")))).status == 200
    assert (await host.send.event(event_callback(mention("hi", ts=THREAD)))).status == 200
    # Someone else's thread, which holds no quitbot conversation: the host's.
    other = message("ping", ts="1.3", thread_ts="1.2")
    assert (await host.send.event(event_callback(other))).status == 200
    await registration.drain()
    assert len(pongs(fake_slack)) == 2 and len(fake_anthropic.requests) == 1
    assert answered(fake_slack, "Hello from quitbot.")[0]["thread_ts"] == THREAD

    # "ping" in quitbot's own thread: Bolt runs the first listener that matches.
    fake_anthropic.add(text("Pong, from quitbot."))
    inside = message("ping", ts="1700000100.000200", thread_ts=THREAD)
    assert (await host.send.event(event_callback(inside))).status == 200
    await registration.drain()
    if order == "host first":
        assert len(pongs(fake_slack)) == 3 and len(fake_anthropic.requests) == 1
    else:
        assert len(pongs(fake_slack)) == 2 and answered(fake_slack, "Pong, from quitbot.")
    assert host.errors == []
    await registration.close()


async def test_a_host_on_socket_mode_gets_the_same(
    fake_slack: FakeSlack, fake_anthropic: FakeAnthropic, runtime: Runtime, hosts: Hosts
) -> None:
    """The connection is the host's: Bolt's own Socket Mode handler, its default options."""
    host = hosts.new(process_before_response=False)
    add_own_listeners(host.app)
    registration = await quitbot.slack.register(host.app, runtime)
    handler = AsyncSocketModeHandler(host.app, APP_TOKEN)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        fake_anthropic.add(text("Hello over the socket."))
        rolled = await fake_slack.socket_send("slash_commands", roll())
        assert "rolled 4" in str(rolled.get("payload"))
        await fake_slack.socket_send("events_api", event_callback(mention("hi", ts=THREAD)))
        assert await runtime.engine.in_use(thread_key("C0GENERAL", THREAD))  # kept, then acked
        await fake_slack.socket_send("events_api", event_callback(message("ping", ts="1.1")))
        await fake_slack.wait_until(lambda: len(pongs(fake_slack)) == 1)
        await registration.drain()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert answered(fake_slack, "Hello over the socket.")[0]["thread_ts"] == THREAD


async def test_with_process_before_response_off_a_message_is_kept_before_its_200(
    fake_slack: FakeSlack,
    fake_anthropic: FakeAnthropic,
    runtime: Runtime,
    hosts: Hosts,
) -> None:
    """Bolt acknowledges first and runs listeners later when the option is off; quitbot keeps
    the message in listener middleware, which Bolt awaits before acknowledging."""
    host = hosts.new(process_before_response=False)
    add_own_listeners(host.app)
    registration = await quitbot.slack.register(host.app, runtime)
    await hosts.serve(host)
    writing = asyncio.Event()
    fake_anthropic.add(hold(text("Kept."), before=writing))
    assert (await host.send.event(event_callback(mention("hi", ts=THREAD)))).status == 200
    # On the record already, though its listener (a no-op) may not have run yet.
    assert await runtime.engine.in_use(thread_key("C0GENERAL", THREAD))
    assert (await host.send.event(event_callback(message("ping", ts="1.1")))).status == 200
    await fake_slack.wait_for("chat.postMessage")  # the host's pong, run after its 200
    assert len(pongs(fake_slack)) == 1
    writing.set()
    await registration.drain()
    assert answered(fake_slack, "Kept.")[0]["thread_ts"] == THREAD


async def test_a_clash_with_quitbots_command_shortcut_or_buttons_is_refused(
    runtime: Runtime, hosts: Hosts
) -> None:
    host = hosts.new()
    add_own_listeners(host.app)

    @host.app.command("/quitbot")
    async def my_quitbot(ack: AsyncAck) -> None:
        await ack()

    @host.app.shortcut("quitbot_end")
    async def my_end(ack: AsyncAck) -> None:
        await ack()

    with pytest.raises(quitbot.slack.ListenerCollision) as refused:
        await quitbot.slack.register(host.app, runtime)
    said = str(refused.value)
    assert "the command /quitbot by" in said and "my_quitbot" in said
    assert "the shortcut quitbot_end by" in said and "my_end" in said
    assert "/roll" not in said and "ping" not in said
    assert len(host.app._async_listeners) == 5  # nothing of quitbot's was added


async def test_a_clash_added_after_registering_is_named_on_quitbots_first_request(
    fake_slack: FakeSlack,
    runtime: Runtime,
    hosts: Hosts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Too late to refuse: Bolt runs quitbot's, and the shadowed listener is named once."""
    host = hosts.new()
    registration = await quitbot.slack.register(host.app, runtime)

    @host.app.command("/quitbot")
    async def my_late_quitbot(ack: AsyncAck) -> None:
        await ack("the host's")

    @host.app.event("message")
    async def every_other_message() -> None:
        pass

    await hosts.serve(host)
    for _ in range(2):
        sent = await host.send.command(command("help"))
        assert sent.status == 200 and "the host's" not in sent.body
    await registration.drain()
    named = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert named == ["the command /quitbot by my_late_quitbot, added after quitbot's, never runs"]
    assert len(fake_slack.calls_to("chat.postEphemeral")) == 2  # quitbot's help, each time


async def test_a_malformed_message_is_passed_on_not_a_crash(
    runtime: Runtime, hosts: Hosts, caplog: pytest.LogCaptureFixture
) -> None:
    """A host's app has no quitbot edge in front of it: quitbot checks the shapes it reads."""
    host = hosts.new()
    await quitbot.slack.register(host.app, runtime)
    await hosts.serve(host)
    odd = message("hi", ts="1.1", channel="D0ALICE", channel_type="im", files="not a list")
    sent = await host.send.event(event_callback(odd))
    assert sent.status == 404  # nobody's: Bolt's answer to a request no listener took
    assert host.errors == [] and not hosts.slack.calls_to("chat.postMessage")
    assert "passed on a malformed Slack event: event.files should be a list" in caplog.text


async def test_a_listener_taking_every_message_before_quitbot_is_refused(
    runtime: Runtime, hosts: Hosts
) -> None:
    host = hosts.new()

    @host.app.event("message")
    async def every_message() -> None:
        pass

    with pytest.raises(quitbot.slack.ListenerCollision, match="every message event by"):
        await quitbot.slack.register(host.app, runtime)


async def test_an_app_installed_on_many_workspaces_is_refused(runtime: Runtime) -> None:
    """Such an app finds each workspace's token per request (`authorize`); quitbot works
    with one workspace's bot token, on the app's client."""

    async def authorize(**_: Any) -> AuthorizeResult:
        raise AssertionError("no request is made")

    app = AsyncApp(signing_secret=SIGNING_SECRET, authorize=authorize)
    with pytest.raises(ValueError, match="needs the app's bot token"):
        await quitbot.slack.register(app, runtime)


@pytest.mark.skipif(not postgres.enabled(), reason="QUITBOT_TEST_POSTGRES=0")
async def test_a_database_outage_is_a_503_for_quitbots_events_only(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_anthropic: FakeAnthropic,
    hosts: Hosts,
    proxied_database: tuple[str, TcpProxy],
) -> None:
    """Unacknowledged, Slack sends quitbot's event again; the host's command still works and
    its own error handler, still in place, sees its own failures and nothing of quitbot's."""
    database_url, proxy = proxied_database
    settings = make_settings(
        tmp_path, fake_anthropic, slack=slack_settings(fake_slack), database_url=database_url
    )
    fake_anthropic.default = text("Hello again.")
    host = hosts.new()
    add_own_listeners(host.app)
    async with build_runtime(settings) as runtime:
        registration = await quitbot.slack.register(host.app, runtime)
        await hosts.serve(host)
        hi = event_callback(mention("hi", ts=THREAD))
        await proxy.cut()
        assert (await host.send.event(hi)).status == 503
        rolled = await host.send.command(roll())
        assert rolled.status == 200 and "rolled 4" in rolled.body
        assert (await host.send.command({**roll(), "command": "/broken"})).status == 500
        assert [str(e) for e in host.errors] == ["the host's own bug"]

        await proxy.restore()
        assert (await host.send.event(hi, retry_num=1)).status == 200
        await registration.close()
    assert answered(fake_slack, "Hello again.")[0]["thread_ts"] == THREAD
