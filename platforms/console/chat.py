"""The console adapter: lines in, streamed replies and notices out."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TextIO

from bot.conversation import Attachment, Conversation, ConversationKey, FileRef, Inbound
from bot.engine import Engine
from bot.flows import Flows, Refusal, Result
from bot.notices import Notice, NoticeKind
from bot.ports import QuietPlace, ReplyShown
from bot.texts import TextKey, Texts

PLATFORM = "console"


class CannotStart(Exception):
    """`--resume` or `--branch` named something the chat cannot start from; says why."""


def _new_key() -> ConversationKey:
    return ConversationKey(PLATFORM, uuid.uuid4().hex[:12])


class ConsoleReply:
    """Streams deltas straight to the terminal when interactive; scripts get whole replies."""

    def __init__(self, write: Callable[[str], None], interactive: bool) -> None:
        self._write = write
        self._interactive = interactive
        self._parts: list[str] = []

    async def thinking(self) -> None:
        if self._interactive:
            self._write("claude> ")

    async def text(self, delta: str) -> None:
        self._parts.append(delta)
        if self._interactive:
            self._write(delta)

    def track(self, answering: str, shown: ReplyShown) -> None:
        return None  # a terminal's reply is not there to find after a restart

    async def done(self) -> str:
        text = "".join(self._parts)
        if self._interactive:
            self._write("\n")
        elif text:
            self._write(text + "\n")
        return ""

    async def close(self) -> None:
        return None


class ConsolePlace(QuietPlace):
    """The terminal as a conversation's place: notices are tagged lines, nothing to lock,
    and no earlier reply to look for (a terminal keeps none across runs)."""

    def __init__(self, write: Callable[[str], None], interactive: bool) -> None:
        self._write = write
        self._interactive = interactive

    def reply(self) -> ConsoleReply:
        return ConsoleReply(self._write, self._interactive)

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        if notice.kind is NoticeKind.CONFIRM_END:
            hint = notice.words.get(TextKey.CONSOLE_CONFIRM_HINT)
            self._write(f"[confirm] {notice.text} {hint}\n")
        elif notice.kind is not NoticeKind.STARTED:  # the [conversation] line says it
            self._write(f"[{notice.kind.value}] {render(notice)}\n")
        return ""

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        if notice.kind is not NoticeKind.AFTER_END:  # the END line already says how to go on
            await self.post(notice, conversation)

    def place(self, key: ConversationKey) -> ConsolePlace:
        return self

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        return tuple(file.unread() for file in files)  # the terminal sends no files


class ConsoleChat:
    """One person at a terminal (or a script on standard input) talking to the engine."""

    def __init__(
        self,
        engine: Engine,
        write: Callable[[str], None],
        *,
        interactive: bool,
        user_id: str = "console-user",
    ) -> None:
        self._place = ConsolePlace(write, interactive)
        self._flows = Flows(engine, PLATFORM, self._place)
        self._write = write
        self._user_id = user_id
        self.key = _new_key()
        self._confirming_end = False

    @property
    def _words(self) -> Texts:
        """The operator's words: a terminal belongs to no community."""
        return self._flows.engine.texts

    def _say(self, kind: str, text: str) -> None:
        self._write(f"[{kind}] {text}\n")

    async def resume(self, conversation_id: str) -> Conversation:
        conversation = await self._flows.engine.get(conversation_id)
        if conversation is None:
            raise CannotStart(f"no conversation with id {conversation_id!r}")
        self.key = conversation.key
        state = "ended; /new starts a fresh one" if conversation.ladder.ended else "resumed"
        self._say("conversation", f"{conversation.id} ({state})")
        return conversation

    async def branch(self, conversation_id: str, upto: int) -> Conversation:
        result = await self._flows.branch(conversation_id, self._user_id, self._open, upto=upto)
        if result.refusal is Refusal.NOT_A_MESSAGE:
            count = len(await self._flows.engine.messages(conversation_id))
            raise CannotStart(f"pick a message from 0 to {count}")
        if result.refusal is Refusal.NOT_FOUND:
            raise CannotStart(f"no conversation with id {conversation_id!r}")
        if result.conversation is None:
            raise CannotStart(result.said(self._words))
        self.key = result.conversation.key
        self._say("conversation", f"{result.conversation.id} (branched from {conversation_id})")
        return result.conversation

    async def _open(self) -> tuple[ConversationKey, ConsolePlace]:
        return _new_key(), self._place

    async def handle_line(self, line: str) -> bool:
        """Handle one line of input; False when the person asked to quit."""
        line = line.rstrip("\r\n")
        if self._confirming_end:
            self._confirming_end = False
            if line.strip().lower() in {"yes", "y"}:
                await self._end()
                return True
            await self._flows.keep_going(self.key, self._user_id)
            self._say("info", self._flows.engine.texts.get(TextKey.KEEP_GOING))
            if line.strip().lower() in {"no", "n", ""}:
                return True
        if line.startswith("/"):
            return await self._command(line.strip())
        if not line.strip():
            return True
        await self._message(line)
        return True

    async def _command(self, line: str) -> bool:
        command = line.split()[0].lower()
        if command == "/quit":
            return False
        if command == "/new":
            await self._start_new()
        elif command == "/end":
            await self._ask_to_end()
        elif command == "/help":
            self._say("info", self._words.get(TextKey.CONSOLE_HELP))
        else:
            unknown = self._words.get(TextKey.CONSOLE_UNKNOWN_COMMAND, command=command)
            self._say("error", f"{unknown} {self._words.get(TextKey.CONSOLE_HELP)}")
        return True

    async def _start_new(self) -> None:
        result = await self._flows.start_new(PLATFORM, self._user_id, self._open)
        if result.conversation is None:
            self._say(_tag(result.refusal), result.said(self._words))
            return
        self.key = result.conversation.key
        self._say("conversation", f"{result.conversation.id} (new)")

    async def _ask_to_end(self) -> None:
        result = await self._flows.ask_to_end(self.key, self._user_id)
        if result.ok:
            self._confirming_end = True
            words = self._words
            ask = words.get(TextKey.CONSOLE_ASK_END)
            self._say("confirm", f"{ask} {words.get(TextKey.CONSOLE_CONFIRM_HINT)}")
        else:
            self._say_refused(result)

    async def _end(self) -> None:
        result = await self._flows.confirm_end(self.key, self._user_id, self._place)
        if not result.ok:
            self._say_refused(result)

    def _say_refused(self, result: Result) -> None:
        if result.refusal is Refusal.NOT_FOUND:
            self._say("info", self._words.get(TextKey.CONSOLE_NOTHING_TO_END))
        elif result.refusal is Refusal.ALREADY_ENDED:
            again = self._words.get(TextKey.CONSOLE_START_AGAIN)
            self._say("info", f"{result.said(self._words)} {again}")
        else:
            self._say("info", result.said(self._words))

    async def _message(self, text: str) -> None:
        if await self._flows.find(self.key) is None:
            result = await self._flows.start_new(PLATFORM, self._user_id, self._here)
            if result.conversation is None:
                self._say(_tag(result.refusal), result.said(self._words))
                return
            self._say("conversation", f"{result.conversation.id} (new)")
        inbound = Inbound(
            key=self.key,
            event_id=uuid.uuid4().hex,
            user_id=self._user_id,
            text=text,
            message_id=uuid.uuid4().hex[:12],
        )
        outcome = await self._flows.converse(inbound, self._place)
        if any(n.kind is NoticeKind.CONFIRM_END for n in outcome.notices):
            self._confirming_end = True

    async def _here(self) -> tuple[ConversationKey, ConsolePlace]:
        return self.key, self._place


def _tag(refusal: Refusal | None) -> str:
    return "limit" if refusal is Refusal.LIMIT else "info"


def render(notice: Notice) -> str:
    """A notice in the console's words: END and BLOCKED say how to start again."""
    text = notice.text
    if notice.kind in {NoticeKind.END, NoticeKind.BLOCKED}:
        text = f"{text} {notice.words.get(TextKey.CONSOLE_START_AGAIN)}"
    if notice.resources:
        text = f"{text}\n{notice.resources}"
    return text


async def stdin_lines(stream: TextIO) -> AsyncIterator[str]:
    """Lines from a (blocking) stream, read off the event loop."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, stream.readline)
        if not line:
            return
        yield line


async def run_console(
    engine: Engine,
    *,
    resume: str | None = None,
    branch: str | None = None,
    upto: int | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Chat until /quit or end of input; the process exit code."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty() and stdout.isatty()

    def write(text: str) -> None:
        stdout.write(text)
        stdout.flush()

    chat = ConsoleChat(engine, write, interactive=interactive)
    try:
        if resume:
            await chat.resume(resume)
        elif branch:
            await chat.branch(branch, upto or 0)
    except CannotStart as exc:
        write(f"[error] {exc}\n")
        return 1
    if interactive:
        words = engine.texts
        write(f"{words.get(TextKey.CONSOLE_BANNER)} {words.get(TextKey.CONSOLE_HELP)}\n")
    async for line in _prompted(stdin_lines(stdin), write, interactive):
        if not await chat.handle_line(line):
            break
    return 0


async def _prompted(
    lines: AsyncIterator[str], write: Callable[[str], None], interactive: bool
) -> AsyncIterator[str]:
    if interactive:
        write("you> ")
    async for line in lines:
        yield line
        if interactive:
            write("you> ")
