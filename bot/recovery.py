"""A message whose earlier attempt died between showing its reply and committing the turn
(a kill, a crash, another process's): what the place already shows decides what is done.

- The store holds word of a complete reply (`Store.shown`), and the place still shows it:
  it is adopted as the turn's reply, and the model is not asked again. Delivered once.
- The word is of a reply only begun (a stream never stopped, edits never finished): the
  place cannot say whether the person saw all of it, and the model's full answer is lost
  with the process, so the half is marked as cut short and the message is answered anew.
  Deleting it instead would silently take back words the person may be reading; replacing
  it in place is not possible where the platform froze it (Slack keeps an unstopped stream
  as it was). A marked half and one whole answer below it is what a reader understands.
- Either way, first the place is asked for a reply carrying the platform's own mark that it
  is complete and answers this message (Slack's message metadata, put on the message that
  completes a reply): that covers a run killed after finishing a reply but before the
  store heard of it, the one window the store's word cannot.
- No word and no mark: nothing was shown, or (where the platform keeps no mark: Discord)
  the run died within the one write that follows the first post; the message is answered
  as if for the first time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.conversation import Inbound
from bot.ports import NoObserver, Observer, Place, Store

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Recovery:
    """Looks in `place` for the reply an earlier attempt at a message showed there."""

    store: Store
    place: Place
    observer: Observer = field(default_factory=NoObserver)

    async def reply(self, inbound: Inbound) -> tuple[str, str] | None:
        """(reply id, text) of a complete reply shown before for `inbound`, to adopt; None
        when the message is to be answered (a half-shown reply is marked as cut short)."""
        if not inbound.message_id:
            return None
        shown = await self.store.shown(inbound)
        if shown is not None and shown.complete:
            found = self.place.reply_after(inbound.message_id, shown.reply_id)
            text = await self._platform(found, inbound, "find a reply")
            if text and text.strip():
                return self._adopted(shown.reply_id, text, inbound)
            # Gone (deleted by a moderator) or unreadable: an answer shown again beats none.
            log.info("reply %s to %s is not there: answered anew", shown.reply_id, inbound.event_id)
            return None
        # No word of a complete one: the platform's own mark may still say it was.
        marked = await self._platform(
            self.place.marked_reply(inbound.message_id), inbound, "find a mark"
        )
        if marked is not None and marked[1].strip():
            return self._adopted(*marked, inbound)
        if shown is not None:
            log.info("reply %s to %s was cut short by a stop", shown.reply_id, inbound.event_id)
            cut = self.place.cut_short(inbound.message_id, shown.reply_id)
            await self._platform(cut, inbound, "cut short")
            await self.store.reply_shown(inbound, "", False)  # marked once, whatever comes next
        return None

    @staticmethod
    def _adopted(reply_id: str, text: str, inbound: Inbound) -> tuple[str, str]:
        log.info("reply %s to %s was shown in full: adopted", reply_id, inbound.event_id)
        return reply_id, text

    async def _platform(self, call: Awaitable[T], inbound: Inbound, what: str) -> T | None:
        try:
            return await call
        except Exception:
            log.exception("could not %s for %s", what, inbound.event_id)
            self.observer.platform_error(inbound.key.platform, what)
            return None
