"""The fake Slack's refusals, through the real slack_sdk: what Slack would refuse, it does."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import BOT_TOKEN, RESPONSE_URL_SECONDS, RESPONSE_URL_USES, FakeSlack


async def test_an_ephemeral_message_cannot_be_updated() -> None:
    async with FakeSlack() as fake:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
        shown = await client.chat_postEphemeral(channel="C0GENERAL", user="U0ALICE", text="hi")
        with pytest.raises(SlackApiError) as refused:
            await client.chat_update(channel="C0GENERAL", ts=shown["message_ts"], text="edited")
        assert refused.value.response["error"] == "message_not_found"
        posted = await client.chat_postMessage(channel="C0GENERAL", text="hi")
        assert (await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="x"))["ok"]


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("C0RANDOM", "not_in_channel"),
        ("G0PRIVATE", "channel_not_found"),
        ("D0OTHERS", "channel_not_found"),
    ],
)
async def test_no_ephemeral_message_where_the_app_is_not(channel: str, error: str) -> None:
    async with FakeSlack(outside={channel}) as fake:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postEphemeral(channel=channel, user="U0ALICE", text="hi")
        assert refused.value.response["error"] == error


async def test_a_response_url_works_five_times() -> None:
    async with FakeSlack() as fake:
        url = fake.response_url()
        hook = AsyncWebhookClient(url)
        answers = [(await hook.send(text=f"{n}")).status_code for n in range(RESPONSE_URL_USES + 1)]
        assert answers == [200] * RESPONSE_URL_USES + [404]
        assert [p["text"] for p in fake.posted_to(url)] == ["0", "1", "2", "3", "4"]
        assert fake.hooks[url].refused == ["used_url"]


async def test_a_response_url_works_for_thirty_minutes() -> None:
    now = [0.0]
    async with FakeSlack(clock=lambda: now[0]) as fake:
        url = fake.response_url()
        now[0] = RESPONSE_URL_SECONDS
        assert (await AsyncWebhookClient(url).send(text="in time")).status_code == 200
        now[0] += 1
        late = await AsyncWebhookClient(url).send(text="late")
        assert (late.status_code, late.body) == (404, "expired_url")
        assert [p["text"] for p in fake.posted_to(url)] == ["in time"]
