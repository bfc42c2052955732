"""The console adapter: lines in, streamed replies and notices out."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from bot.conversation import Conversation, ConversationKey, Inbound
from bot.engine import ConversationNotFound, Engine, LimitReached
from bot.notices import Notice, NoticeKind, Outcome

PLATFORM = "console"
RESTART_HINT = "Type /new to start a new conversation."
HELP = "Commands: /new (fresh conversation), /end (end this one), /quit (leave)."


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

    async def done(self) -> str:
        text = "".join(self._parts)
        if self._interactive:
            self._write("\n")
        elif text:
            self._write(text + "\n")
        return ""


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
        self._engine = engine
        self._write = write
        self._interactive = interactive
        self._user_id = user_id
        self.key = _new_key()
        self._confirming_end = False

    def _say(self, kind: str, text: str) -> None:
        self._write(f"[{kind}] {text}\n")

    async def resume(self, conversation_id: str) -> Conversation:
        conversation = await self._engine.get(conversation_id)
        if conversation is None:
            raise ConversationNotFound(f"no conversation with id {conversation_id!r}")
        self.key = conversation.key
        state = "ended; /new starts a fresh one" if conversation.ladder.ended else "resumed"
        self._say("conversation", f"{conversation.id} ({state})")
        return conversation

    async def branch(self, conversation_id: str, upto: int) -> Conversation:
        key = _new_key()
        conversation = await self._engine.branch(conversation_id, key, self._user_id, upto=upto)
        self.key = key
        self._say("conversation", f"{conversation.id} (branched from {conversation_id})")
        return conversation

    async def handle_line(self, line: str) -> bool:
        """Handle one line of input; False when the person asked to quit."""
        line = line.rstrip("\r\n")
        if self._confirming_end:
            self._confirming_end = False
            if line.strip().lower() in {"yes", "y"}:
                await self._end()
                return True
            self._say("info", "Not ended; the conversation goes on.")
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
            self._confirming_end = True
            self._say("confirm", "End this conversation? Type yes to confirm.")
        elif command == "/help":
            self._say("info", HELP)
        else:
            self._say("error", f"Unknown command {command}. {HELP}")
        return True

    async def _start_new(self) -> None:
        key = _new_key()
        outcome = await self._engine.start_new(key, self._user_id)
        if outcome.conversation is not None:
            self.key = key
            self._say("conversation", f"{outcome.conversation.id} (new)")
        self._show(outcome)

    async def _end(self) -> None:
        try:
            outcome = await self._engine.end_by_user(self.key, self._user_id)
        except ConversationNotFound:
            self._say("info", "There is no conversation to end yet.")
            return
        if not outcome.just_ended:
            self._say("info", "This conversation has already ended. " + RESTART_HINT)
        self._show(outcome)

    async def _message(self, text: str) -> None:
        if await self._engine.find(self.key) is None:
            started = await self._engine.start_new(self.key, self._user_id)
            self._show(started)
            if started.conversation is None:
                return
            self._say("conversation", f"{started.conversation.id} (new)")
        inbound = Inbound(
            key=self.key,
            event_id=uuid.uuid4().hex,
            user_id=self._user_id,
            text=text,
            message_id=uuid.uuid4().hex[:12],
        )
        outcome = await self._engine.handle(inbound, ConsoleReply(self._write, self._interactive))
        self._show(outcome)

    def _show(self, outcome: Outcome) -> None:
        for notice in outcome.notices:
            self._say(notice.kind.value, render(notice))


def render(notice: Notice) -> str:
    """A notice in the console's words: END and BLOCKED say how to start again."""
    text = notice.text
    if notice.kind in {NoticeKind.END, NoticeKind.BLOCKED}:
        text = f"{text} {RESTART_HINT}"
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
    except (ConversationNotFound, ValueError, LimitReached) as exc:
        write(f"[error] {exc}\n")
        return 1
    if interactive:
        write(f"quitbot: talk to Claude. {HELP}\n")
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
