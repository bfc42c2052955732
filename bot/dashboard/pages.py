"""The pages: each authorizes (`moderating`), calls a flow, renders. No SQL, no policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from aiohttp import web

from bot.conversation import AuditEvent, Conversation, EndReason, LadderState, StoredMessage
from bot.dashboard.app import dashboard_of
from bot.dashboard.charts import DAYS, HEIGHT, WIDTH, charts
from bot.dashboard.sessions import Session
from bot.dashboard.signing import moderating, safe_next, signed_in
from bot.ports import ListFilter
from bot.review import Decision
from bot.transcript import event_parts, markdown, timeline

PAGE_SIZE = 50
# The overview's 30 days are counted at most this often per community: on a big database
# the count costs a few hundred milliseconds (bench/dashboard_bench.py), and a chart of a
# month does not need to be fresher.
OVERVIEW_FRESH = timedelta(minutes=1)
# The longest-waiting first; each item costs a few reads (its record and feedback).
QUEUE_SIZE = 20
STATES = ("active", "ended")


async def index(request: web.Request) -> web.StreamResponse:
    dashboard = dashboard_of(request)
    session = signed_in(request)
    if session is None:
        next_path = safe_next(request.query.get("next"))
        providers = sorted(dashboard.sign_ins)
        return dashboard.page("signin.html", {"providers": providers, "next": next_path})
    return dashboard.page("index.html", {"session": session})


@moderating
async def overview(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    dashboard = dashboard_of(request)
    now = dashboard.clock()
    cached = dashboard.overviews.get((platform, community))
    if cached is None or cached[0] + OVERVIEW_FRESH <= now or cached[0] > now:
        since = datetime.combine(now.date() - timedelta(days=DAYS - 1), time(), UTC)
        rows = await dashboard.engine.daily_activity(platform, community, since)
        cached = dashboard.overviews[(platform, community)] = (now, charts(rows, now.date()))
    return render_page(
        request,
        "overview.html",
        session,
        platform,
        community,
        charts=cached[1],
        as_of=cached[0],
        width=WIDTH,
        height=HEIGHT,
    )


@moderating
async def queue(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    flows = dashboard_of(request).flows[platform]
    found = await flows.review_queue(is_moderator=True, community=community, limit=QUEUE_SIZE)
    return render_page(request, "queue.html", session, platform, community, items=found.items)


@moderating
async def decide(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    form = await request.post()
    try:
        decision = Decision(str(form.get("decision", "")))
    except ValueError:
        raise web.HTTPBadRequest(reason="Choose reopen, readmit or uphold.") from None
    person = str(form.get("person", "")) or None  # whose shut-out, for such an item
    flows = dashboard_of(request).flows[platform]
    result = await flows.resolve_review(
        request.match_info["conversation"],
        session.moderator.user_id,
        decision,
        str(form.get("note", "")),
        is_moderator=True,
        community=community,
        shut_out_user_id=person,
    )
    if result.conversation is None:
        raise web.HTTPNotFound()
    return render_page(
        request,
        "decided.html",
        session,
        platform,
        community,
        conversation=result.conversation,
        decision=decision.value,
        refusal=result.said(await flows.engine.words(platform, community)),
        problem=result.problem,
    )


@moderating
async def conversations(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    query = request.query
    state = query.get("state") or None
    if state not in (None, *STATES):
        raise web.HTTPBadRequest(reason="Unknown state.")
    more = _list_filter(query)
    page = max(1, _int(query.get("page"), 1))
    found = await dashboard_of(request).engine.conversations(
        platform,
        community,
        state=state,
        limit=PAGE_SIZE + 1,
        offset=(page - 1) * PAGE_SIZE,
        more=more,
    )
    return render_page(
        request,
        "conversations.html",
        session,
        platform,
        community,
        conversations=found[:PAGE_SIZE],
        state=state or "",
        filters={k: query.get(k, "") for k in ("reason", "user", "from", "to")},
        reasons=[reason.value for reason in EndReason],
        page=page,
        more=len(found) > PAGE_SIZE,
    )


def _list_filter(query: Mapping[str, str]) -> ListFilter:
    """The list's filters from the address: how it ended, who started it, from and to
    which day (UTC, both included)."""
    reason = query.get("reason") or None
    if reason is not None and reason not in {r.value for r in EndReason}:
        raise web.HTTPBadRequest(reason="Unknown reason.")
    try:
        first = date.fromisoformat(query["from"]) if query.get("from") else None
        last = date.fromisoformat(query["to"]) if query.get("to") else None
    except ValueError:
        raise web.HTTPBadRequest(reason="Dates are written YYYY-MM-DD.") from None
    return ListFilter(
        ended_reason=reason,
        user_id=query.get("user", "").strip() or None,
        since=datetime.combine(first, time(), UTC) if first else None,
        before=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
    )


@moderating
async def transcript(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    found = await _record(request, platform, community)
    entries = [
        ("message", item, [])
        if isinstance(item, StoredMessage)
        else ("event", item, event_parts(item))
        for item in timeline(found.messages, found.events)
    ]
    return render_page(
        request,
        "transcript.html",
        session,
        platform,
        community,
        conversation=found.conversation,
        entries=entries,
        participants=sorted(found.participants.items()),
    )


@moderating
async def export(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    """The transcript as Markdown, as `quitbot conversations export --format md` writes it."""
    found = await _record(request, platform, community)
    text = markdown(found.conversation, found.messages, found.events, found.participants)
    name = found.conversation.id
    headers = {"Content-Disposition": f'attachment; filename="{name}.md"'}
    return web.Response(text=text, content_type="text/markdown", headers=headers)


@dataclass(frozen=True, slots=True)
class Record:
    conversation: Conversation
    messages: list[StoredMessage]
    events: list[AuditEvent]
    participants: dict[str, LadderState]


async def _record(request: web.Request, platform: str, community: str) -> Record:
    """The conversation in the address with its record, if it is this community's; else
    a plain 404."""
    engine = dashboard_of(request).engine
    conversation = await engine.get(request.match_info["conversation"])
    if (
        conversation is None
        or conversation.key.platform != platform
        or conversation.community != community
    ):
        raise web.HTTPNotFound()
    messages, events = await engine.record(conversation.id)
    return Record(conversation, messages, events, await engine.participants(conversation.id))


def render_page(
    request: web.Request, name: str, session: Session, platform: str, community: str, **more: object
) -> web.Response:
    name_of = session.moderator.communities.get(community, community)
    context = {
        "session": session,
        "platform": platform,
        "community": community,
        "community_name": name_of,
        "base": f"/c/{platform}/{community}",
        **more,
    }
    return dashboard_of(request).page(name, context)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    base = "/c/{platform}/{community}"
    app.router.add_get(f"{base}/overview", overview)
    app.router.add_get(f"{base}/queue", queue)
    app.router.add_get(f"{base}/conversations", conversations)
    app.router.add_get(f"{base}/conversations/{{conversation}}", transcript)
    app.router.add_get(f"{base}/conversations/{{conversation}}/transcript.md", export)
    app.router.add_post(f"{base}/conversations/{{conversation}}/decide", decide)
