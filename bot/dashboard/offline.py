"""A platform the dashboard cannot reach (its adapter is not configured here, say a
dashboard with no DISCORD_TOKEN): a reopen is on the record (the person can write again at
once) and says what is left to do on the platform, as a reopen from the CLI does."""

from __future__ import annotations

from collections.abc import Sequence

from bot.conversation import Attachment, Conversation, ConversationKey, FileRef
from bot.ports import Place, QuietPlace, ReplyStream


class OfflinePlace(QuietPlace):
    def reply(self) -> ReplyStream:
        raise NotImplementedError("the dashboard never streams a reply")

    async def reopen(self, conversation: Conversation) -> str:
        return (
            f"Reopened in quitbot; its place on {conversation.key.platform} is not reopened "
            "from this dashboard, which has no token for it (use the platform's /quitbot "
            "reopen to unlock it there)."
        )


class OfflinePlaces:
    def place(self, key: ConversationKey) -> Place:
        return OfflinePlace()

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        return ()
