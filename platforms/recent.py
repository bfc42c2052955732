"""A bounded memory shared by the adapters for cheap, non-durable checks."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Recent(Generic[T]):
    """A set that forgets its least recently added item once it holds `size` of them.

    Adapters use it to skip work they know is needed or not (a Slack retry, a thread known
    to hold a conversation); the engine and its store stay the durable guard.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[T, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def add(self, item: T) -> bool:
        """Remember `item` (as the most recent); False if it was already remembered."""
        new = item not in self._items
        self._items[item] = None
        self._items.move_to_end(item)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return new
