"""A discord.py bot of your own, with its own /roll command, and quitbot embedded in it.

Your bot keeps its client, its gateway connection, its commands and its buttons; quitbot adds
its conversations (mention the bot, or /chat), its buttons and its commands beside them.

    DISCORD_TOKEN=... ANTHROPIC_API_KEY=... QUITBOT_TOOLS=roll_dice python discord_roll_bot.py

(or put them in a .env beside it; every other QUITBOT_* setting works as for `quitbot run`).
In quitbot's conversations Claude may roll dice too, with the `roll_dice` tool. Its tests,
with no token: test_roll_bot_offline.py. (The file is not called bot.py: once quitbot is
imported, `bot` means quitbot's own core package.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import re

import discord
from discord import app_commands
from discord.ext import commands
from pydantic import BaseModel, Field

import quitbot

log = logging.getLogger("roll_bot")

DICE = re.compile(r"(\d{1,2})d(\d{1,3})")
HOW = "Roll like `2d6`: 1 to 20 dice of 2 to 100 sides."


def roll(dice: str, rng: random.Random) -> str:
    found = DICE.fullmatch(dice.strip().lower())
    count, sides = (int(found[1]), int(found[2])) if found else (0, 0)
    if not (1 <= count <= 20 and 2 <= sides <= 100):
        return HOW
    rolls = [rng.randint(1, sides) for _ in range(count)]
    return f"{dice}: {' + '.join(map(str, rolls))} = {sum(rolls)}"


class DiceRoll(BaseModel):
    dice: str = Field(default="1d6", description="What to roll, like 2d6 or 1d20.")


@quitbot.tool(timeout_seconds=2)
async def roll_dice(context: quitbot.ToolContext, request: DiceRoll) -> str:
    """Roll dice for the person you are talking with, e.g. 2d6; tell them what it returns."""
    rolled = roll(request.dice, random.Random())
    if rolled == HOW:
        raise quitbot.ToolFailure(HOW)
    return rolled


def tools() -> quitbot.ToolRegistry:
    return quitbot.ToolRegistry([roll_dice])


class RollAgain(discord.ui.View):
    def __init__(self, dice: str, rng: random.Random) -> None:
        super().__init__(timeout=600)
        self.dice, self.rng = dice, rng

    @discord.ui.button(label="Roll again", custom_id="dice:again")
    async def again(
        self, interaction: discord.Interaction, button: discord.ui.Button[RollAgain]
    ) -> None:
        await interaction.response.send_message(roll(self.dice, self.rng))


class Dice(commands.Cog):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    @app_commands.command(name="roll", description="Roll dice, e.g. 2d6")
    async def roll_command(self, interaction: discord.Interaction, dice: str = "1d6") -> None:
        await interaction.response.send_message(
            roll(dice, self.rng), view=RollAgain(dice, self.rng)
        )

    @commands.command(name="roll")
    async def roll_message(self, ctx: commands.Context[commands.Bot], dice: str = "1d6") -> None:
        """!roll 2d6, in a message."""
        await ctx.send(roll(dice, self.rng), view=RollAgain(dice, self.rng))


class RollBot(commands.Bot):
    def __init__(self, runtime: quitbot.Runtime, rng: random.Random | None = None) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # for !roll, and for quitbot to follow its threads
        super().__init__(command_prefix="!", intents=intents)
        self.runtime = runtime
        self.rng = rng or random.Random()

    async def setup_hook(self) -> None:
        await self.add_cog(Dice(self.rng))
        await quitbot.discord.attach(self, self.runtime)
        # The same runtime quitbot uses: its store, settings and audit events.
        self.runtime.hooks.subscribe(self.conversation_ended, kinds={"end"})
        await self.tree.sync()  # yours and quitbot's commands: syncing stays your call

    async def conversation_ended(self, event: quitbot.HookEvent) -> None:
        log.info("quitbot ended conversation %s: %s", event.conversation.id, event.detail)


async def main() -> None:
    settings = quitbot.load_settings()
    token = settings.discord.token
    if token is None:
        raise SystemExit("set DISCORD_TOKEN (in the environment or .env)")
    quitbot.discord.configure_endpoints(settings)  # QUITBOT_DISCORD_API_BASE, if set (guide, 10)
    async with (
        quitbot.build_runtime(settings, tools=tools(), deliver_webhooks=True) as runtime,
        RollBot(runtime) as bot,
    ):
        await bot.start(token.get_secret_value())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
