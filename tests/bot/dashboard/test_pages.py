"""The pages over the flows: per-community authorization, CSRF, headers, hostile text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp

from bot.conversation import ConversationKey
from bot.dashboard.pages import PAGE_SIZE
from bot.dashboard.security import CONTENT_SECURITY_POLICY
from tests.bot.dashboard.conftest import (
    GUILD_A,
    GUILD_B,
    HOSTILE,
    MOD_A,
    MOD_B,
    T0,
    Dash,
    csrf_of,
    sign_in,
)
from tests.fakes.discord_oauth import MANAGE_THREADS


async def test_a_moderator_of_another_server_gets_404_everywhere(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    theirs = await dash.seed(GUILD_A)
    page = await sign_in(http, dash, MOD_B)
    base = f"{dash.url}/c/discord/{GUILD_A}"
    for path in (
        "/overview",
        "/queue",
        "/conversations",
        f"/conversations/{theirs}",
        f"/conversations/{theirs}/transcript.md",
    ):
        async with http.get(base + path) as response:
            assert response.status == 404, path
            assert theirs not in await response.text()
    form = {"csrf": csrf_of(page), "decision": "reopen", "note": "mine now"}
    async with http.post(f"{base}/conversations/{theirs}/decide", data=form) as response:
        assert response.status == 404
    # Nor through their own server's address with the other's conversation id.
    async with http.get(f"{dash.url}/c/discord/{GUILD_B}/conversations/{theirs}") as response:
        assert response.status == 404
    async with http.post(
        f"{dash.url}/c/discord/{GUILD_B}/conversations/{theirs}/decide", data=form
    ) as response:
        assert response.status == 404
    conversation = await dash.runtime.engine.get(theirs)
    assert conversation is not None and conversation.ladder.ended


async def test_a_moderator_reopens_from_the_queue_on_the_record(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    conversation_id = await dash.seed(GUILD_A)
    await sign_in(http, dash, MOD_A)
    async with http.get(f"{dash.url}/c/discord/{GUILD_A}/queue") as response:
        queue = await response.text()
    assert conversation_id in queue and "mistake: hello" in queue
    form = {"csrf": csrf_of(queue), "decision": "reopen", "note": "too strict"}
    decide = f"{dash.url}/c/discord/{GUILD_A}/conversations/{conversation_id}/decide"
    async with http.post(decide, data=form) as response:
        assert response.status == 200
        assert 'id="decided"' in await response.text()
    conversation = await dash.runtime.engine.get(conversation_id)
    assert conversation is not None and not conversation.ladder.ended
    _, events = await dash.runtime.engine.record(conversation_id)
    assert [e for e in events if e.kind == "review"][-1].detail["moderator_id"] == MOD_A


async def test_a_post_without_the_csrf_token_is_refused(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    conversation_id = await dash.seed(GUILD_A)
    await sign_in(http, dash, MOD_A)
    decide = f"{dash.url}/c/discord/{GUILD_A}/conversations/{conversation_id}/decide"
    for form in ({"decision": "reopen"}, {"decision": "reopen", "csrf": "guessed"}):
        async with http.post(decide, data=form) as response:
            assert response.status == 403
    async with http.post(f"{dash.url}/signout", data={}) as response:
        assert response.status == 403
    conversation = await dash.runtime.engine.get(conversation_id)
    assert conversation is not None and conversation.ladder.ended


async def test_every_page_carries_the_strict_headers(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    await sign_in(http, dash, MOD_A)
    for path in (
        "/",
        f"/c/discord/{GUILD_A}/queue",
        f"/c/discord/{GUILD_B}/queue",
        "/static/style.css",
    ):
        async with http.get(dash.url + path) as response:
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src" not in CONTENT_SECURITY_POLICY  # default-src 'none': no script at all
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


async def test_hostile_text_is_escaped_everywhere_it_shows(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    long_line = "x" * 20_000
    conversation_id = await dash.seed(GUILD_A, text=HOSTILE + long_line)
    await sign_in(http, dash, MOD_A)
    for path in ("/queue", f"/conversations/{conversation_id}"):
        async with http.get(f"{dash.url}/c/discord/{GUILD_A}{path}") as response:
            page = await response.text()
        assert "<script>alert" not in page and "<b onmouseover" not in page, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
        assert long_line in page


async def test_the_transcript_shows_text_removed_by_retention_and_the_audit_trail(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    conversation_id = await dash.seed(GUILD_A)
    await dash.runtime.store.purge_text(datetime.now(UTC))  # retention, as run does hourly
    await sign_in(http, dash, MOD_A)
    async with http.get(f"{dash.url}/c/discord/{GUILD_A}/conversations/{conversation_id}") as r:
        page = await r.text()
    timeline = page.split('<ol class="timeline">')[1]
    assert "(text removed)" in timeline and "hello" not in timeline
    assert 'class="event end"' in page and "persistent_abuse" in page


async def test_the_conversation_list_filters_and_pages(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    ended = await dash.seed(GUILD_A)
    key = ConversationKey("discord", "t-active")
    active = await dash.runtime.store.create(key, "bob", datetime.now(UTC), community=GUILD_A)
    await dash.seed(GUILD_B)
    await sign_in(http, dash, MOD_A)
    base = f"{dash.url}/c/discord/{GUILD_A}/conversations"
    async with http.get(base) as response:
        page = await response.text()
    assert ended in page and active.id in page and 'rel="next"' not in page
    async with http.get(base, params={"state": "ended"}) as response:
        page = await response.text()
    assert ended in page and active.id not in page
    async with http.get(base, params={"state": "closed"}) as response:
        assert response.status == 400
    async with http.get(base, params={"reason": "persistent_abuse", "user": "alice"}) as r:
        page = await r.text()
    assert ended in page and active.id not in page
    async with http.get(base, params={"from": "2026-03-01", "to": "2026-03-01"}) as r:
        page = await r.text()
    assert ended in page and active.id not in page  # the seeded one started on 1 March
    for bad in ({"reason": "boredom"}, {"from": "March"}):
        async with http.get(base, params=bad) as response:
            assert response.status == 400


async def test_without_a_discord_token_a_reopen_says_what_is_left(
    offline_dash: Dash, http: aiohttp.ClientSession
) -> None:
    conversation_id = await offline_dash.seed(GUILD_A)
    queue = await sign_in(http, offline_dash, MOD_A, f"/c/discord/{GUILD_A}/queue")
    form = {"csrf": csrf_of(queue), "decision": "reopen", "note": ""}
    decide = f"{offline_dash.url}/c/discord/{GUILD_A}/conversations/{conversation_id}/decide"
    async with http.post(decide, data=form) as response:
        page = await response.text()
    assert 'id="decided"' in page and "has no token" in page
    assert offline_dash.discord.calls == []


async def test_the_overview_charts_the_last_30_days(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    await dash.seed(GUILD_A)
    await dash.seed(GUILD_A)
    await dash.seed(GUILD_B)  # another server's: not counted
    dash.dashboard.clock = lambda: T0 + timedelta(days=3)
    await sign_in(http, dash, MOD_A)
    async with http.get(f"{dash.url}/c/discord/{GUILD_A}/overview") as response:
        page = await response.text()
    assert "2026-02-03 to 2026-03-04" in page
    conversations = page.split('id="chart-conversation"')[1].split("</figure>")[0]
    assert "Conversations: <b>2</b>" in conversations
    assert len(re.findall(r"<rect ", conversations)) == 1
    assert "<title>2026-03-01: 2</title>" in conversations
    ends = page.split('id="chart-end-persistent_abuse"')[1].split("</figure>")[0]
    assert "<b>2</b>" in ends
    assert "Crisis flags: <b>0</b>" in page and "Model errors: <b>0</b>" in page
    assert "Would have ended (alert-only mode): <b>0</b>" in page
    assert "Called a mistake: <b>2</b>" in page and "Reopened on review: <b>0</b>" in page
    assert "<script" not in page and "style=" not in page  # the CSP allows neither

    await dash.seed(GUILD_A)  # counted at the next minute, not at once
    async with http.get(f"{dash.url}/c/discord/{GUILD_A}/overview") as response:
        assert "Conversations: <b>2</b>" in await response.text()
    dash.dashboard.clock = lambda: T0 + timedelta(days=3, minutes=1)
    async with http.get(f"{dash.url}/c/discord/{GUILD_A}/overview") as response:
        assert "Conversations: <b>3</b>" in await response.text()


async def test_a_transcript_exports_as_markdown(dash: Dash, http: aiohttp.ClientSession) -> None:
    conversation_id = await dash.seed(GUILD_A, text=HOSTILE)
    await sign_in(http, dash, MOD_A)
    url = f"{dash.url}/c/discord/{GUILD_A}/conversations/{conversation_id}/transcript.md"
    async with http.get(url) as response:
        text = await response.text()
        assert response.content_type == "text/markdown"
        assert "attachment" in response.headers["Content-Disposition"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert text.startswith(f"# Conversation {conversation_id}") and HOSTILE in text


async def test_the_list_pages_keep_their_filters(dash: Dash, http: aiohttp.ClientSession) -> None:
    for i in range(PAGE_SIZE + 1):
        key = ConversationKey("discord", f"p{i}")
        await dash.runtime.store.create(key, "bob", datetime.now(UTC), community=GUILD_A)
    await sign_in(http, dash, MOD_A)
    base = f"{dash.url}/c/discord/{GUILD_A}/conversations"
    async with http.get(base, params={"state": "active", "user": "bob"}) as response:
        page = await response.text()
    assert page.count("<tr>") == PAGE_SIZE + 1  # the heading's row and a page of them
    found = re.search(r'rel="next" href="\?([^"]+)"', page)
    assert found is not None and "state=active" in found.group(1) and "user=bob" in found.group(1)
    async with http.get(f"{base}?{found.group(1).replace('&amp;', '&')}") as response:
        rest = await response.text()
    assert rest.count("<tr>") == 2 and 'rel="prev"' in rest and 'rel="next"' not in rest


async def test_hostile_names_of_people_and_servers_stay_text(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    dash.oauth.add_user("6666", HOSTILE + "y" * 5000, {GUILD_A: MANAGE_THREADS})
    dash.oauth.guild_names[GUILD_A] = HOSTILE
    page = await sign_in(http, dash, "6666")
    async with http.get(f"{dash.url}/c/discord/{GUILD_A}/queue") as response:
        queue = await response.text()
    for shown in (page, queue):
        assert "<script>alert" not in shown and "<b onmouseover" not in shown
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in shown
