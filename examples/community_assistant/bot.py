"""A community server's assistant that answers from the server's FAQ, on quitbot.

The file is called bot.py on purpose, as many discord.py projects' main file is: `import
quitbot` still finds quitbot's core, not this file.

    cp .env.example .env   # your keys; QUITBOT_TOOLS=faq lets the model call the tool
    python bot.py chat     # in the terminal
    python bot.py run      # on Discord and/or Slack, whichever tokens .env has

Every `quitbot` command works the same way through this file (`python bot.py doctor`,
`python bot.py communities set discord:ID --tools faq`, ...), with the FAQ tool on board.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import quitbot

FAQ = {
    "rules": "Be kind, stay on topic, no spam. Moderators have the last word.",
    "events": "Game night is every Friday at 19:00 UTC in #voice-lounge.",
    "roles": "Ask in #roles; a moderator assigns them within a day.",
}


class Question(BaseModel):
    topic: str = Field(description=f"One of: {', '.join(FAQ)}")


@quitbot.tool(timeout_seconds=2)
async def faq(context: quitbot.ToolContext, question: Question) -> str:
    """Look up this community's FAQ. Use it for questions about the server's rules, events
    and roles, and answer from what it returns."""
    answer = FAQ.get(question.topic.strip().lower())
    if answer is None:
        # The model reads this and can say it does not know, rather than guess.
        raise quitbot.ToolFailure(f"The FAQ has no entry {question.topic!r}; topics: {list(FAQ)}")
    return answer


def tools() -> quitbot.ToolRegistry:
    return quitbot.ToolRegistry([faq])


if __name__ == "__main__":
    raise SystemExit(quitbot.main(tools=tools()))
