"""A community's own settings: shown, and changed or reset one at a time through the same
flows as `/quitbot settings-set` and `settings-reset`, with their validation (a community
can never end before it warns)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from aiohttp import web

from bot.communities import ENFORCEMENTS, SETTING_NAMES, TEXT_PREFIX, CommunitySettings
from bot.dashboard.app import dashboard_of
from bot.dashboard.pages import render_page
from bot.dashboard.sessions import Session
from bot.dashboard.signing import moderating
from bot.flows import CommunityResult, Flows
from bot.texts import BadTexts, parse, to_toml

LONGEST_TEXT = 4000


@moderating
async def show(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    flows = dashboard_of(request).flows[platform]
    result = await flows.community_settings(community, is_moderator=True)
    return _settings_page(request, session, platform, community, result, "")


@moderating
async def change(
    request: web.Request, session: Session, platform: str, community: str
) -> web.StreamResponse:
    form = await request.post()
    name, value = str(form.get("name", "")), str(form.get("value", "")).strip()
    flows = dashboard_of(request).flows[platform]
    by = session.moderator.user_id
    if name not in SETTING_NAMES:
        raise web.HTTPBadRequest(reason="There is no setting by that name.")
    if form.get("action") == "reset":
        result = await flows.reset_community_settings(community, name, by, is_moderator=True)
        return _settings_page(request, session, platform, community, result, f"{name}: reset.")
    if name == "texts":
        result = await _set_texts(flows, community, value, by)
        return _settings_page(request, session, platform, community, result, "texts: saved.")
    given = _parsed(name, value)
    if given is None:
        kind = "a whole number of at least 1" if name.startswith("redirects_") else "some text"
        raise web.HTTPBadRequest(reason=f"{name} takes {kind}.")
    result = await flows.set_community_settings(
        community, CommunitySettings(**{name: given}), by, is_moderator=True
    )
    return _settings_page(request, session, platform, community, result, f"{name}: saved.")


async def _set_texts(flows: Flows, community: str, value: str, by: str) -> CommunityResult:
    """The community's texts become those in `value` (TOML, `key = "words"` a line): the
    given ones are saved (checked first, so a refusal keeps what was there), then the ones
    left out go back to the operator's."""
    try:
        given = parse(value)
    except BadTexts as exc:
        raise web.HTTPBadRequest(reason=f"texts: {exc}") from None
    own = (await flows.community_settings(community, is_moderator=True)).settings
    result = await flows.set_community_settings(
        community, CommunitySettings(texts=given), by, is_moderator=True
    )
    for key in set((own.texts if own else None) or {}) - set(given):
        if result.ok:
            result = await flows.reset_community_settings(
                community, TEXT_PREFIX + key, by, is_moderator=True
            )
    return result


def _parsed(name: str, value: str) -> Any:
    if name.startswith("redirects_"):
        return int(value) if value.isdigit() and int(value) >= 1 else None
    return value if value and len(value) <= LONGEST_TEXT else None


def _settings_page(
    request: web.Request,
    session: Session,
    platform: str,
    community: str,
    result: CommunityResult,
    done: str,
) -> web.Response:
    own = result.settings or CommunitySettings()
    shown = [(f.name, getattr(own, f.name)) for f in fields(CommunitySettings)]
    # Texts are edited as TOML, one `key = "words"` a line (`quitbot texts` lists the keys).
    shown = [(n, to_toml(v) if n == "texts" and v else v) for n, v in shown]
    response = render_page(
        request,
        "settings.html",
        session,
        platform,
        community,
        settings=shown,
        enforcements=ENFORCEMENTS,
        problem=result.text,
        done=done if result.ok else "",
    )
    response.set_status(200 if result.ok else 400)
    return response


def add_routes(app: web.Application) -> None:
    base = "/c/{platform}/{community}/settings"
    app.router.add_get(base, show)
    app.router.add_post(base, change)
