"""Turning stored messages into a valid, bounded Messages API context. Pure functions."""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, overload

from bot.conversation import Attachment, ContextEntry, FileRef

ApiMessage = dict[str, Any]
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# The Messages API refuses an image whose base64 data is over 5 MB ("image exceeds 5 MB
# maximum: 6275800 bytes > 5242880 bytes", github.com/lobehub/lobehub/pull/14711 and
# anthropics/claude-code#19631): about 3.9 MB of raw bytes. Larger images are named instead.
MAX_IMAGE_BYTES = 3_750_000
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/x-yaml"})
# Files recognised by their name: platforms often send these with no type, or a generic one.
TEXT_EXTENSIONS = frozenset(
    {"txt", "md", "py", "js", "ts", "json", "yaml", "yml", "toml", "csv", "log", "html", "css",
     "xml", "sh", "c", "h", "cpp", "rs", "go", "java", "rb", "sql", "ini", "cfg"}
)  # fmt: skip
FileKind = Literal["text", "image", "other"]
_IMAGE_TOKENS = 1_600  # the API's own estimate for a large image
_CHARS_PER_TOKEN = 4


def user_content(text: str, attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """A user message's content blocks: text, readable files inline, images as images."""
    blocks: list[dict[str, Any]] = []
    notes: list[str] = []
    for attachment in attachments:
        if attachment.media_type in IMAGE_TYPES and 0 < len(attachment.data) <= MAX_IMAGE_BYTES:
            data = base64.b64encode(attachment.data).decode("ascii")
            blocks.append(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": attachment.media_type, "data": data},
                }
            )
        elif _is_text(attachment) and attachment.data:
            body = attachment.data.decode("utf-8", errors="replace")
            cut = " (truncated)" if attachment.size > len(attachment.data) else ""
            notes.append(f'<file name="{attachment.name}"{cut}>\n{body}\n</file>')
        else:
            size = attachment.size or len(attachment.data)
            notes.append(
                f"[The user attached {attachment.name} ({attachment.media_type}, {size:,} bytes);"
                " it was not read.]"
            )
    body = "\n\n".join(part for part in (text.strip(), *notes) if part)
    blocks.append({"type": "text", "text": body or "(empty message)"})
    return blocks


_LABEL_SAFE = re.compile(r"[^A-Za-z0-9_.:@-]")


def participant_label(user_id: str) -> dict[str, Any]:
    """The text block that names someone other than the starter at the head of their
    message, so the model can tell who is speaking. Only they are labelled: a conversation
    nobody else joined is sent exactly as before, and its cached prefix stays valid."""
    who = _LABEL_SAFE.sub("", user_id)[:64] or "unknown"
    return {
        "type": "text",
        "text": f"[from participant {who}, who did not start this conversation]",
    }


def _is_text(attachment: Attachment) -> bool:
    return _is_text_type(attachment.media_type)


def _is_text_type(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in _TEXT_TYPES


def file_kind(name: str, media_type: str) -> FileKind:
    """How Claude can take a shared file, the same on every platform: as an image, as text
    (by its type or its name's extension), or only named."""
    if media_type in IMAGE_TYPES:
        return "image"
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return "text" if _is_text_type(media_type) or extension in TEXT_EXTENSIONS else "other"


def bytes_to_read(file: FileRef, max_text_bytes: int) -> int:
    """How much of a shared file to download: a text file's head, a whole image the API
    takes (its size known), or nothing (the file is only named)."""
    kind = file_kind(file.name, file.media_type)
    if kind == "text":
        return max_text_bytes
    if kind == "image" and 0 < file.size <= MAX_IMAGE_BYTES:
        return file.size
    return 0


def text_type(media_type: str) -> str:
    """The type a text file is read under: its own if that says text, else text/plain (one
    recognised by its extension may come as application/octet-stream)."""
    return media_type if _is_text_type(media_type) else "text/plain"


# Trimming happens in steps so that the prompt prefix stays byte-identical from one turn to
# the next, and the API's prefix cache is read (0.1x input price) instead of rewritten
# (1.25x). Dropping the oldest message on every turn, as a sliding window does, changes the
# prefix each time. Instead the context may only start at a user message that opens a block
# of seq numbers (1, 17, 33... for blocks of 16): positions fixed by the conversation, not by
# how much history the caller happened to read, so the start stays put as the history grows
# and moves forward a whole block at a time. Finer blocks (8, 4, 2, 1) are used only when a
# whole block is so large that cutting it would leave less than half the budget.
STEP_MESSAGES = 16
_BLOCK_SIZES = (STEP_MESSAGES, 8, 4, 2, 1)
_KEEP_AT_LEAST = 0.5  # of the budget, before a finer step is taken instead


def build_context(history: Sequence[ContextEntry], budget_tokens: int) -> Context:
    """The in-context messages that fit `budget_tokens`, as a valid API message list.

    `history` is the newest stored messages, oldest first, with no gaps in `seq`. The
    context starts at a step boundary (see STEP_MESSAGES) so that consecutive turns share
    their prefix; when no boundary fits, whole messages are dropped from the oldest end and
    the newest one is always kept. Refused turns are left out, consecutive same-role
    messages are merged, and tool blocks without their partner (e.g. cut by a branch) are
    removed.
    """
    live = [entry for entry in history if entry.in_context]
    if not live:
        return Context(())
    costs, parts = _costs_and_parts(live)
    start = _stepped_start(live, costs, history[0].seq, budget_tokens)
    if start is None:
        start = _newest_that_fit(costs, budget_tokens)
    flat: list[_Item] = []
    for part in parts[start:]:
        if isinstance(part, str):
            flat.append(part)
        else:
            flat.extend(part)
    if _already_valid(flat):
        # The usual case: passed on as stored, plain messages never decoded (see Context).
        return Context(flat)
    return Context(_valid(_merge(_decoded(item) for item in flat)))


class Context(Sequence[ApiMessage]):
    """The model's context: API messages, each plain one (one text block) still the JSON
    text the store keeps.

    A model that posts JSON takes `json_items` and sends stored text on as it is. With a
    hundred turns under way, their decoded histories (seven Python objects for each plain
    message) were a third of what the bot held at its peak (bench/README.md). Reading an
    item decodes it, for models that look at the messages; treat what it gives as read-only.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[_Item]) -> None:
        self._items = tuple(items)

    def plus(self, more: Iterable[ApiMessage]) -> Context:
        """This context followed by `more` (a turn's own messages, e.g. tool results)."""
        return Context((*self._items, *more))

    def json_items(self, encode: Callable[[ApiMessage], str]) -> list[str]:
        """Every message as JSON text: stored text as it is, the others through `encode`."""
        return [item if isinstance(item, str) else encode(item) for item in self._items]

    def marked_json(self, index: int, field: str) -> str | None:
        """A stored plain message as JSON text with `field` (`"name":value`, compact) added
        last to its one text block, as encoding it decoded with that field would give;
        None for a message that is not stored text. Spares decoding and encoding it again
        (a model marks cache breakpoints on two messages of every request)."""
        item = self._items[index]
        if not isinstance(item, str):
            return None
        return f"{item[: -len(_ITEM_TAIL)]},{field}{_ITEM_TAIL}"

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> ApiMessage: ...

    @overload
    def __getitem__(self, index: slice) -> list[ApiMessage]: ...

    def __getitem__(self, index: int | slice) -> ApiMessage | list[ApiMessage]:
        if isinstance(index, slice):
            return [_decoded(item) for item in self._items[index]]
        return _decoded(self._items[index])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Context | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence compared by value

    def __repr__(self) -> str:
        return f"Context({list(self)!r})"


# One stored API message: its JSON text when it is plain, else decoded.
_Item = str | ApiMessage

# A plain stored message is exactly `[{"role":R,"content":[{"type":"text","text":"…"}]}]`,
# as `bot/store/rows.encode_json` writes it. Checked on the text without decoding it: inside
# a JSON string every quote is escaped, so `"type":` and `"role":` occur there only as keys.
# This runs for every stored message of every turn (issue 22): two prefixes compared and, for
# text with no escape in it, two scans in C.
_USER_PLAIN_HEAD = '[{"role":"user","content":[{"type":"text","text":"'
_ASSISTANT_PLAIN_HEAD = '[{"role":"assistant","content":[{"type":"text","text":"'
_PLAIN_TAIL = '"}]}]'
_ITEM_TAIL = _PLAIN_TAIL[1:-1]  # of one API message: the text block, its list, the message
_USER_HEAD = '{"role":"user"'


def _read(api_json: str) -> tuple[int, list[_Item]]:
    """A stored message's token estimate and its API messages: a plain one as its JSON text
    (the array's only element), any other decoded."""
    text_length = _plain_text_length(api_json)
    if text_length is None:
        return _read_decoded(api_json)
    return text_length // _CHARS_PER_TOKEN + 1, [api_json[1:-1]]


def _read_decoded(api_json: str) -> tuple[int, list[_Item]]:
    """A stored message that is not plain: its token estimate and its API messages, decoded."""
    api: list[ApiMessage] = json.loads(api_json)
    return estimate_tokens(api), list(api)


def _costs_and_parts(live: Sequence[ContextEntry]) -> tuple[list[int], list[str | list[_Item]]]:
    """`_read` of each entry, as two lists: a plain message's part is its one API message's
    JSON text, any other's its decoded API messages. Written out for the plain case, which
    runs for every stored message of every turn: no call of `_read` and no tuple or list
    made for each (issue 22, fourth round)."""
    costs: list[int] = []
    parts: list[str | list[_Item]] = []
    for entry in live:
        api_json = entry.api_json
        text_length = _plain_text_length(api_json)
        if text_length is None:  # already known not plain: decoded without asking again
            cost, items = _read_decoded(api_json)
            costs.append(cost)
            parts.append(items)
        else:
            costs.append(text_length // _CHARS_PER_TOKEN + 1)
            parts.append(api_json[1:-1])
    return costs, parts


def _plain_text_length(api_json: str) -> int | None:
    """The length of a plain stored message's text, read from its JSON; None if not plain."""
    if api_json.startswith(_USER_PLAIN_HEAD):
        start = len(_USER_PLAIN_HEAD)
    elif api_json.startswith(_ASSISTANT_PLAIN_HEAD):
        start = len(_ASSISTANT_PLAIN_HEAD)
    else:
        return None
    end = len(api_json) - len(_PLAIN_TAIL)  # where the text's closing quote is
    if end < start or not api_json.endswith(_PLAIN_TAIL):
        return None
    # The head and the tail hold no backslash, so the whole text is searched for one: an
    # `in` without bounds, not a `find` with them, whose arguments cost three times the
    # search here (60 stored messages a turn).
    if "\\" not in api_json:
        # No escape, so no quote of the text's own: a quote here closes it (another field
        # or block follows), and the message is not plain.
        return end - start if '"' not in api_json[start:end] else None
    return _escaped_text_length(api_json, start - 1, end + 1)


def _escaped_text_length(api_json: str, start: int, end: int) -> int | None:
    """`_plain_text_length` of text with escapes in it, between its quotes at `start` and
    `end - 1`: its decoded length, as the estimate counts, if it is one JSON string."""
    if api_json.count('"type":') != 1 or api_json.count('"role":') != 1:
        return None
    return len(json.loads(api_json[start:end]))


def _decoded(item: _Item) -> ApiMessage:
    if isinstance(item, str):
        decoded: ApiMessage = json.loads(item)
        return decoded
    return item


def _stepped_start(
    live: Sequence[ContextEntry], costs: Sequence[int], first_seq: int, budget: int
) -> int | None:
    """Index in `live` of the step boundary to start at, or None if none fits."""
    suffix = list(itertools.accumulate(reversed(costs)))[::-1]  # tokens from i to the end
    for size in _BLOCK_SIZES:
        starts = _block_starts(live, first_seq, size)
        fitting = next((i for i in starts if suffix[i] <= budget), None)
        if fitting is None:
            continue
        if fitting == starts[0] or suffix[fitting] >= budget * _KEEP_AT_LEAST:
            return fitting
    return None


def _block_starts(live: Sequence[ContextEntry], first_seq: int, size: int) -> list[int]:
    """Indexes of the user messages that are the first user message of their block of
    `size` seq numbers. A block that began before `first_seq` is not seen whole, so its
    first user message is unknown and it offers no start."""
    starts: list[int] = []
    last_block = -1
    for index, message in enumerate(live):
        if message.role != "user":
            continue
        block = (message.seq - 1) // size
        if block != last_block and block * size + 1 >= first_seq:
            starts.append(index)
        last_block = block
    return starts


def _newest_that_fit(costs: Sequence[int], budget: int) -> int:
    """Whole messages from the newest back while they fit; the newest always."""
    spent = 0
    start = len(costs)
    while start > 0 and (start == len(costs) or spent + costs[start - 1] <= budget):
        start -= 1
        spent += costs[start]
    return start


def estimate_tokens(messages: Iterable[ApiMessage]) -> int:
    """A cheap, slightly generous token estimate (about four characters a token)."""
    total = 0
    for message in messages:
        for block in message.get("content", []):
            total += _block_tokens(block)
    return total


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return len(block.get("text", "")) // _CHARS_PER_TOKEN + 1
    if kind == "image":
        return _IMAGE_TOKENS
    if kind == "tool_result":
        content = block.get("content", "")
        size = len(content) if isinstance(content, str) else len(json.dumps(content))
        return size // _CHARS_PER_TOKEN + 10
    return len(json.dumps(block)) // _CHARS_PER_TOKEN


def _merge(messages: Iterable[ApiMessage]) -> list[ApiMessage]:
    merged: list[ApiMessage] = []
    for message in messages:
        content = list(message.get("content", []))
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"] = _tool_results_first(merged[-1]["content"] + content)
        else:
            merged.append({"role": message["role"], "content": content})
    return merged


def _tool_results_first(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = [b for b in blocks if b.get("type") == "tool_result"]
    return results + [b for b in blocks if b.get("type") != "tool_result"]


def _valid(messages: list[ApiMessage]) -> list[ApiMessage]:
    """Drop unpaired tool blocks and empty messages; start with a user message."""
    out: list[ApiMessage] = []
    for index, message in enumerate(messages):
        content = message["content"]
        if message["role"] == "assistant" and _has(content, "tool_use"):
            following = messages[index + 1] if index + 1 < len(messages) else None
            answered = _ids(following, "tool_result", "tool_use_id")
            content = [b for b in content if b.get("type") != "tool_use" or b.get("id") in answered]
        elif message["role"] == "user" and _has(content, "tool_result"):
            previous = out[-1] if out and out[-1]["role"] == "assistant" else None
            asked = _ids(previous, "tool_use", "id")
            content = [
                b
                for b in content
                if b.get("type") != "tool_result" or b.get("tool_use_id") in asked
            ]
        if content:
            out.append({"role": message["role"], "content": content})
    while out and out[0]["role"] != "user":
        out.pop(0)
    return _merge(out) if _has_adjacent_roles(out) else out


def _already_valid(messages: Sequence[_Item]) -> bool:
    """Whether `_valid(_merge(messages))` would give back `messages` unchanged: roles
    alternate from a user message, no content is empty, and each assistant message's
    tool_use ids are exactly the next message's tool_result ids."""
    asked: set[str] = set()
    role = "assistant"
    for message in messages:
        if isinstance(message, str):
            # Plain (one text block): it answers no tool_use and asks none.
            plain_role = "user" if message.startswith(_USER_HEAD) else "assistant"
            if plain_role == role or asked:
                return False
            role = plain_role
            continue
        content = message.get("content")
        if message.get("role") == role or not isinstance(content, list) or not content:
            return False
        role = message["role"]
        answered = {str(b.get("tool_use_id")) for b in content if b.get("type") == "tool_result"}
        if role == "user":
            if answered != asked:
                return False
            asked = set()
        else:
            if answered:
                return False
            asked = {str(b.get("id")) for b in content if b.get("type") == "tool_use"}
    return not asked


def _has(content: list[dict[str, Any]], kind: str) -> bool:
    return any(block.get("type") == kind for block in content)


def _ids(message: ApiMessage | None, kind: str, field: str) -> set[str]:
    if message is None:
        return set()
    return {str(b.get(field)) for b in message["content"] if b.get("type") == kind}


def _has_adjacent_roles(messages: list[ApiMessage]) -> bool:
    return any(a["role"] == b["role"] for a, b in itertools.pairwise(messages))
