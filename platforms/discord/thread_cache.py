"""discord.py's cache of active threads: a conversation's thread leaves it once idle.

discord.py (2.7) keeps every active thread it hears of (THREAD_CREATE, GUILD_CREATE's
`threads`) in `Guild._threads`, about 0.5 KB each (bench/discord_memory_costs.py), until
Discord archives or deletes it. Discord archives a thread only after a period of
inactivity, hours or days (quitbot opens its threads with an `auto_archive_duration` of
1,440 minutes; Discord API docs, "Threads", "Active & Archived Threads"), so a bot
answering in 20,000 conversations a day keeps 20,000 threads: ~10 MB. discord.py has no
public way to drop one, so this uses its own `Guild._remove_thread` (what it calls on
THREAD_DELETE and on an archiving THREAD_UPDATE); tests/platforms/discord/
test_thread_cache.py fails if that changes.

Nothing is lost: a message in a thread that is not cached arrives with a bare channel
(discord.py's `PartialMessageable`, as for an archived thread), which is answered as any
known conversation's place is; what needs the thread itself (its parent channel, its
lock) fetches it (`Discord.thread`). A THREAD_UPDATE that unarchives it caches it again.
"""

from __future__ import annotations

import discord


def forget_thread(client: discord.Client, thread_id: int) -> bool:
    """Drop thread `thread_id` from discord.py's cache; whether it was there."""
    thread = client.get_channel(thread_id)
    if not isinstance(thread, discord.Thread):
        return False
    thread.guild._remove_thread(thread)
    return True
