"""A tool package: `pip install` it beside quitbot and set QUITBOT_TOOLS=service_status.

quitbot finds it through the `quitbot.tools` entry point (pyproject.toml), which names
`tools` below: a list of quitbot Tools (a single Tool, or a function returning them, works
too).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

import quitbot

# A real package would ask a status page; a fixed table keeps the example self-contained.
STATUS = {"website": "up", "game-server": "down for maintenance until 20:00 UTC"}


class Service(BaseModel):
    name: Literal["website", "game-server"]


async def service_status(context: quitbot.ToolContext, service: Service) -> dict[str, str]:
    return {
        "service": service.name,
        "status": STATUS[service.name],
        "asked_by": context.participant,
    }


tools = [
    quitbot.Tool(
        "service_status",
        "Whether one of the community's services is up. Use it when someone asks if the "
        "website or the game server works.",
        Service,
        service_status,
        timeout_seconds=5,
    )
]
