"""Slack's requests before Bolt sees them: a body of the wrong shape is dropped at the edge.

Bolt builds its request context from the body before any middleware runs (slack_bolt/request/
internals.py), assuming Slack's shapes: an `event` that is a list raised there, a traceback and
a 5xx (issue #9). `problem` checks the fields Bolt and the adapter read against their JSON
types (unknown fields are fine); a mismatch is logged once at WARNING with the request's id
and answered without Bolt: 200 for an Events API envelope (a retry would be the same), else 400.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.conversation import storable
from bot.ports import DatabaseUnavailable

log = logging.getLogger(__name__)

# --- shapes --------------------------------------------------------------------------------


class Obj(NamedTuple):  # a JSON object's fields' rules; absent or null is fine if not required
    fields: Mapping[str, Rule]
    required: tuple[str, ...] = ()


class ListOf(NamedTuple):
    item: Rule
    min_items: int = 0


Rule = tuple[type, ...] | Obj | ListOf  # a tuple: one of these JSON types
_SHAPES = (Obj, ListOf)
STR, ID = (str,), (str, dict)  # an id is text in events, an object {id, ...} in interactions


def _obj(
    required: str = "",
    *,
    base: Mapping[str, Rule] | None = None,
    text: str = "",
    flags: str = "",
    objects: str = "",
    **fields: Rule,
) -> Obj:
    """`base`, then space-separated `text`, boolean `flags` and `objects` names, then `fields`."""
    rules: dict[str, Rule] = {
        **(base or {}),
        **dict.fromkeys(text.split(), STR),
        **dict.fromkeys(flags.split(), (bool,)),
        **dict.fromkeys(objects.split(), Obj({})),
        **fields,
    }
    return Obj(rules, tuple(required.split()))


_ID_OBJ = _obj(text="id team_id name domain enterprise_id")
# What Bolt's context building reads, at the top and inside `event` or `message`.
_CONTEXT = _obj(
    text="type team_id user_id user_team channel_id thread_ts ts enterprise_id callback_id "
    "command function_execution_id bot_access_token response_url",
    flags="is_enterprise_install is_ext_shared_channel",
    objects="event message previous_message item assistant_thread container view function_data",
    team=ID,
    user=ID,
    channel=ID,
    enterprise=ID,
    actions=ListOf(_obj(text="action_id block_id value type")),
    response_urls=ListOf(_obj(text="response_url")),
    authorizations=ListOf(
        _obj(text="team_id user_id enterprise_id", flags="is_enterprise_install")
    ),
).fields
_FILE = _obj(text="name title mimetype mode url_private url_private_download", size=(int,))
_MESSAGE = _obj(
    base=_CONTEXT,
    text="user channel team text subtype bot_id parent_user_id channel_type",
    files=ListOf(_FILE),
)
_EVENT_FIELDS = {**_MESSAGE.fields, "message": _MESSAGE, "previous_message": _MESSAGE}
_BY_TYPE = {
    "event_callback": _obj(
        "event event_id team_id", base=_CONTEXT, event=Obj(_EVENT_FIELDS, ("type",))
    ),
    "url_verification": _obj("challenge", text="challenge"),
    # https://docs.slack.dev/reference/interaction-payloads/block_actions-payload
    "block_actions": _obj(
        "user actions",
        base=_CONTEXT,
        user=_ID_OBJ,
        channel=_ID_OBJ,
        message=_MESSAGE,
        container=_obj(text="message_ts channel_id thread_ts", flags="is_ephemeral"),
        actions=ListOf(_obj("action_id", text="action_id value block_id"), min_items=1),
    ),
    # https://api.slack.com/reference/interaction-payloads/shortcuts (message shortcuts)
    "message_action": _obj(
        "callback_id user channel message",
        base=_CONTEXT,
        user=_ID_OBJ,
        channel=_ID_OBJ,
        message=Obj(_MESSAGE.fields, ("ts",)),
    ),
}
# A body of no known type still reaches Bolt's context building, which reads the user,
# channel and team inside `event`, `message` and `previous_message` too.
_ANY = Obj({**_CONTEXT, "event": Obj(_EVENT_FIELDS), "message": _MESSAGE,
            "previous_message": _MESSAGE})  # fmt: skip
# A slash command is form-encoded, so every value is a string; only its names are checked.
_COMMAND = _obj("command user_id channel_id", text="command user_id channel_id")
_FREE_TEXT = frozenset({"text", "name", "title", "mimetype"})
# Keys Bolt reads as `body.get(key, {}).get(...)` (slack_bolt/request/internals.py, the
# ignoring-self-events and message-matching middleware): absent is fine, null crashes it.
_NEVER_NULL = frozenset({"event", "view", "function", "tokens"})


def problem(body: Any) -> str | None:
    """What is wrong with a request body's shape, or None if the adapter can read it."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if "command" in body:
        return _check(body, _COMMAND, "")
    kind = body.get("type")
    return _check(body, _BY_TYPE.get(kind, _ANY) if isinstance(kind, str) else _ANY, "")


def _check(value: Any, rule: Rule, path: str) -> str | None:
    where = path or "body"
    if isinstance(rule, ListOf):
        if not isinstance(value, list) or len(value) < rule.min_items:
            return f"{where} should be a list of at least {rule.min_items} item(s)"
        problems = (_check(item, rule.item, f"{path}[{i}]") for i, item in enumerate(value))
        return next((p for p in problems if p), None)
    if not isinstance(rule, Obj):  # a tuple of JSON types (Obj and ListOf are tuples too)
        if _of_type(value, rule):
            return None
        return f"{where} should be {'/'.join(t.__name__ for t in rule)}, not {type(value).__name__}"
    if not isinstance(value, dict):
        return f"{where} should be an object, not {type(value).__name__}"
    for name in rule.required:
        if value.get(name) is None:
            return f"{path}.{name} is missing".lstrip(".")
    fields = rule.fields
    # The body's own fields, not the rule's: a rule names some forty a message lacks. A
    # field's path is spelt out only for a problem, and a JSON type checked here: this runs
    # for every field of every request (bench/README.md, issue 22, fifth round).
    for name, item in value.items():
        inner = fields.get(name)
        if inner is None:
            continue  # a field the adapter does not read
        if item is None:
            if name in _NEVER_NULL:
                return f"{_at(path, name)} should be an object, not null"
            continue
        checked = not isinstance(inner, _SHAPES) and _of_type(item, inner)
        if not checked and (found := _check(item, inner, _at(path, name))):
            return found
        # An id with a lone surrogate cannot be stored or queried (free text is made storable).
        if (
            isinstance(item, str)
            and not item.isascii()
            and name not in _FREE_TEXT
            and storable(item) != item
        ):
            return f"{_at(path, name)} holds a lone UTF-16 surrogate"
    for name in ("team", "user", "channel", "enterprise"):  # as objects they carry text ids
        if isinstance(value.get(name), dict) and (found := _check(value[name], _ID_OBJ, name)):
            return found
    return None


def _of_type(value: Any, types: tuple[type, ...]) -> bool:
    # JSON true is not a number here, though Python's bool is an int.
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _at(path: str, name: str) -> str:
    return f"{path}.{name}".lstrip(".")


def _drop(body: Any, found: str) -> None:
    keys = ("event_id", "trigger_id", "command") if isinstance(body, dict) else ()
    name = next((body[k] for k in keys if isinstance(body.get(k), str)), "?").encode(
        "ascii", "replace"
    )
    log.warning("dropped a malformed Slack request %s: %s", name.decode()[:64], found)


# Slack's timestamps are Unix seconds; more digits than this is no timestamp, and int() of
# over 4,300 digits raises (Python's integer string conversion limit).
_STAMP_DIGITS = 12


def _well_formed(stamp: str, signature: str) -> bool:
    digits = stamp.isascii() and stamp.isdigit() and len(stamp) <= _STAMP_DIGITS
    return digits and signature.isascii() and signature.startswith("v0=")


def _refused(status: int, why: str) -> web.Response:
    log.warning("refused a Slack request (%d): %s", status, why)
    return web.Response(status=status)


# --- the two ways in -------------------------------------------------------------------------


# Takes a checked `message` or `app_mention` Events API body; False: not now, Bolt takes it.
Messages = Callable[[dict[str, Any]], Awaitable[bool]]
Dispatch = Callable[[AsyncBoltRequest], Awaitable[BoltResponse]]
_MESSAGE_EVENTS = frozenset({"message", "app_mention"})


class HttpEdge:
    """The aiohttp handler for `/slack/events` in HTTP mode: signature, then shape, then Bolt,
    or, for people's messages, `messages` without Bolt.

    People's messages are nearly every request. Bolt would verify the signature and parse
    the body a second time, then run its middleware and match listeners: 5-7% of the bot's
    CPU in a burst (bench/README.md). Its authorization adds nothing here (one workspace,
    the token checked at start-up) and its self-event filter is `translate_event`'s."""

    def __init__(
        self,
        app: AsyncApp,
        signing_secret: str,
        messages: Messages | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        self._messages = messages
        self._dispatch = dispatch or app.async_dispatch  # a listener's thread: Bolt's loop
        self._verifier = SignatureVerifier(signing_secret)

    def web_app(self, path: str) -> web.Application:
        server = web.Application()
        server.router.add_post(path, self.handle)
        return server

    async def handle(self, request: web.Request) -> web.Response:
        raw, headers = await request.read(), request.headers
        stamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        # slack_sdk's SignatureVerifier.is_valid raises instead of answering False on an
        # empty or non-numeric timestamp (int(), ValueError), on a signature that is not ASCII
        # (hmac.compare_digest, TypeError) and on a body that is not UTF-8 (UnicodeDecodeError):
        # a 500 and a traceback for what is only a request nobody should have sent.
        if not _well_formed(stamp, signature):
            return _refused(401, "its timestamp or signature header is missing or malformed")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _refused(400, "its body is not UTF-8")
        if not self._verifier.is_valid(text, stamp, signature):
            return _refused(401, "its signature does not match (or its timestamp is stale)")
        try:
            body = parse_body(text, request.content_type)
        except ValueError as exc:  # JSONDecodeError is one
            log.warning("dropped a Slack request that could not be parsed: %s", type(exc).__name__)
            return web.Response(status=400)
        found = problem(body)
        if found is not None:
            _drop(body, found)
            event = isinstance(body, dict) and body.get("type") == "event_callback"
            return web.Response(status=200 if event else 400)
        if self._messages is not None and _message_event(body):
            try:
                if await self._messages(body):
                    return web.Response(status=200)
            except DatabaseUnavailable:  # not kept: Slack delivers it again later
                return web.Response(status=503)
            except Exception:  # as Bolt answers a listener that raised: Slack sends it again
                log.exception("Failed to run the listener for a Slack message")
                return web.Response(status=500)
        bolt = AsyncBoltRequest(body=text, query=request.query_string, headers=headers)  # type: ignore[arg-type]
        return await to_aiohttp_response(await self._dispatch(bolt))


def _message_event(body: dict[str, Any]) -> bool:
    return body.get("type") == "event_callback" and body["event"]["type"] in _MESSAGE_EVENTS


class SocketEdge(AsyncSocketModeHandler):
    """Socket Mode with the same check: a malformed envelope is acknowledged (so it is not
    delivered again) and dropped."""

    def __init__(self, app: AsyncApp, client: SocketModeClient) -> None:
        # Not Bolt's __init__: it would build a second client, with its own session and task.
        self.app, self.app_token, self.client = app, client.app_token, client
        client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        found = problem(req.payload)
        if found is None:
            await super().handle(client, req)
            return
        _drop(req.payload, found)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
