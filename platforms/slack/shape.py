"""Which Slack payloads the adapter lets in: the fields it and Bolt read, with their JSON types.

Slack sends well-formed payloads, but anything can reach a public endpoint, and a field of the
wrong type (a file entry that is a string, an `event` that is a list) would otherwise raise
deep inside Bolt's context building or our translator: a traceback and a 5xx. `problem` names
the first mismatch; the edge (`platforms/slack/edge.py`) logs it once and drops the request.
Pure: no I/O. Unknown fields are allowed (Slack adds fields often); absent or null optional
fields are allowed; only the shape of what is read is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Types = tuple[type, ...]


@dataclass(frozen=True, slots=True)
class Obj:
    """A JSON object whose named fields follow rules; `required` ones must be present."""

    fields: Mapping[str, Rule] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # checked in this order


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Rule
    min_items: int = 0


@dataclass(frozen=True, slots=True)
class Either:
    """One of several rules (Slack sends `team` as an id in events and an object elsewhere)."""

    options: tuple[Rule, ...]


Rule = Types | Obj | ListOf | Either

STR: Types = (str,)
BOOL: Types = (bool,)
INT: Types = (int,)


def _obj(required: str = "", **fields: Rule) -> Obj:
    return Obj(fields, tuple(required.split()))


_ID_OBJ = _obj(id=STR, team_id=STR, name=STR, domain=STR, enterprise_id=STR)
_ID = Either((STR, _ID_OBJ))

# Fields Bolt's request context reads (slack_bolt/request/internals.py: build_context and the
# extract_* helpers), at the top level and inside `event`, `message`, `item`, `assistant_thread`.
_CONTEXT: dict[str, Rule] = {
    "type": STR,
    "team": _ID,
    "team_id": STR,
    "user": _ID,
    "user_id": STR,
    "user_team": STR,
    "channel": _ID,
    "channel_id": STR,
    "thread_ts": STR,
    "ts": STR,
    "enterprise": _ID,
    "enterprise_id": STR,
    "is_enterprise_install": BOOL,
    "is_ext_shared_channel": BOOL,
    "function_execution_id": STR,
    "bot_access_token": STR,
    "response_url": STR,
    "response_urls": ListOf(_obj(response_url=STR)),
    "function_data": _obj(execution_id=STR, inputs=Obj()),
    "view": _obj(app_installed_team_id=STR, team_id=STR),
    # Read by Bolt's middleware and matchers whatever the payload's type says it is.
    "event": Obj(),
    "message": Obj(),
    "previous_message": Obj(),
    "item": Obj(),
    "assistant_thread": Obj(),
    "container": Obj(),
    "actions": ListOf(_obj(action_id=STR, block_id=STR, value=STR, type=STR)),
    "callback_id": STR,
    "command": STR,
    "authorizations": ListOf(
        _obj(team_id=STR, user_id=STR, enterprise_id=STR, is_enterprise_install=BOOL, is_bot=BOOL)
    ),
}


def _with_context(required: str = "", **fields: Rule) -> Obj:
    return _obj(required, **{**_CONTEXT, **fields})


_FILE = _obj(
    name=STR,
    title=STR,
    mimetype=STR,
    size=INT,
    mode=STR,
    url_private=STR,
    url_private_download=STR,
)
_MESSAGE = _with_context(
    "",
    # In events these are plain ids, never the objects interaction payloads use.
    user=STR,
    channel=STR,
    team=STR,
    text=STR,
    subtype=STR,
    bot_id=STR,
    parent_user_id=STR,
    channel_type=STR,
    event_ts=STR,
    files=ListOf(_FILE),
)
_ASSISTANT_THREAD = _with_context("", context=Obj())
_EVENT = _with_context(
    "type",
    **{
        **_MESSAGE.fields,
        "message": _MESSAGE,
        "previous_message": _MESSAGE,
        "item": _with_context(),
        "assistant_thread": _ASSISTANT_THREAD,
    },
)

_BY_TYPE: dict[str, Obj] = {
    # Events API: https://docs.slack.dev/apis/events-api/ (the event wrapper)
    "event_callback": _with_context("event event_id team_id", event=_EVENT, event_id=STR),
    "url_verification": _obj("challenge", challenge=STR),
    # https://docs.slack.dev/reference/interaction-payloads/block_actions-payload
    "block_actions": _with_context(
        "user actions",
        user=_ID_OBJ,
        container=_obj(message_ts=STR, channel_id=STR, thread_ts=STR, is_ephemeral=BOOL),
        message=_MESSAGE,
        actions=ListOf(_obj("action_id", action_id=STR, value=STR, block_id=STR), min_items=1),
    ),
    # https://api.slack.com/reference/interaction-payloads/shortcuts (message shortcuts)
    "message_action": _with_context(
        "callback_id user channel message",
        callback_id=STR,
        user=_ID_OBJ,
        channel=_ID_OBJ,
        message=_with_context("ts", **_MESSAGE.fields),
        message_ts=STR,
    ),
}
# A slash command arrives form-encoded (every value a string); only its names are checked.
_COMMAND = _obj("command user_id channel_id", command=STR, user_id=STR, channel_id=STR, text=STR)
_ANY = _with_context()


def problem(body: Any) -> str | None:
    """What is wrong with a request body's shape, or None if the adapter can read it."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if "command" in body:
        return _check(body, _COMMAND, "")
    kind = body.get("type")
    rule = _BY_TYPE.get(kind, _ANY) if isinstance(kind, str) else _ANY
    return _check(body, rule, "")


def request_id(body: Any) -> str:
    """The id to log a dropped request by: its event id, trigger id or envelope's type."""
    if not isinstance(body, dict):
        return "?"
    for name in ("event_id", "trigger_id", "action_ts", "command"):
        value = body.get(name)
        if isinstance(value, str):
            return value[:64].encode("ascii", "replace").decode()
    return "?"


def _check(value: Any, rule: Rule, path: str) -> str | None:
    if isinstance(rule, tuple):
        # JSON true is not a number here, though Python's bool is an int.
        if isinstance(value, rule) and not (isinstance(value, bool) and bool not in rule):
            return None
        names = "/".join(t.__name__ for t in rule)
        return f"{path or 'body'} should be {names}, not {type(value).__name__}"
    if isinstance(rule, Either):
        problems = [_check(value, option, path) for option in rule.options]
        return None if None in problems else problems[-1]
    if isinstance(rule, ListOf):
        if not isinstance(value, list):
            return f"{path} should be a list, not {type(value).__name__}"
        if len(value) < rule.min_items:
            return f"{path} should have at least {rule.min_items} item(s)"
        for index, item in enumerate(value):
            found = _check(item, rule.item, f"{path}[{index}]")
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return f"{path or 'body'} should be an object, not {type(value).__name__}"
    for name in rule.required:
        if value.get(name) is None:
            return f"{path}.{name} is missing".lstrip(".")
    for name, field_rule in rule.fields.items():
        item = value.get(name)
        if item is not None:
            found = _check(item, field_rule, f"{path}.{name}".lstrip("."))
            if found:
                return found
    return None
