"""An estimate of what a run cost, from the tokens the API reported.

Prices in USD per million tokens, from Anthropic's model pages and pricing page
(platform.claude.com/docs/en/about-claude/pricing and /docs/en/models/*/overview, read
2026-12-04). Anthropic changes prices: this is an estimate, never a bill. Third-party price
trackers report that Sonnet 5.5's cache reads fell to $0.10 on 2026-10-07; the model page
read here still said $0.20, so a Sonnet 5.5 estimate may overstate cache reads.
`--price IN,OUT` replaces the table for a model it does not know (or a negotiated rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from bot.ports import Usage


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float  # 5-minute cache writes: what quitbot's `ephemeral` breakpoints buy
    cache_read: float
    source: str = "table"

    @classmethod
    def from_rates(cls, input: float, output: float, source: str) -> Price:
        """Cache prices at the usual multiples of the input price (1.25x write, 0.1x read)."""
        return cls(input, output, input * 1.25, input * 0.1, source)

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_write_tokens * self.cache_write
            + usage.cache_read_tokens * self.cache_read
        ) / 1_000_000


# Model id prefixes; the longest one that matches a model id wins.
PRICES = MappingProxyType(
    {
        "claude-sonnet-5-5": Price(2.0, 10.0, 2.5, 0.2),
        "claude-sonnet-5": Price(2.0, 10.0, 2.5, 0.2),
        "claude-sonnet-4": Price(3.0, 15.0, 3.75, 0.3),
        "claude-opus-5-5": Price.from_rates(4.0, 20.0, "table, cache at the usual multiples"),
        "claude-opus-5": Price(5.0, 25.0, 6.25, 0.5),
        "claude-opus-4-5": Price(5.0, 25.0, 6.25, 0.5),
        "claude-opus-4-6": Price(5.0, 25.0, 6.25, 0.5),
        "claude-opus-4-7": Price(5.0, 25.0, 6.25, 0.5),
        "claude-opus-4-8": Price(5.0, 25.0, 6.25, 0.5),
        "claude-opus-4": Price(15.0, 75.0, 18.75, 1.5),
        "claude-opus-4-1": Price(15.0, 75.0, 18.75, 1.5),
        # Prompts up to 100k tokens (longer ones cost five times as much); its cache prices
        # are from price trackers, not Anthropic's page.
        "claude-haiku-5-5": Price(0.1, 0.5, 0.125, 0.01),
        "claude-haiku-4-5": Price(1.0, 5.0, 1.25, 0.1),
        "claude-3-5-haiku": Price(0.8, 4.0, 1.0, 0.08),
    }
)


def price_for(model: str) -> Price | None:
    """The table's price for a model id (a dated id too), or None when it has none."""
    matches = [p for p in PRICES if model == p or model.startswith(p + "-")]
    if not matches:
        return None
    return PRICES[max(matches, key=len)]


def parse_price(value: str) -> Price:
    """`--price 3,15`: input and output USD per million tokens."""
    parts = value.split(",")
    try:
        input_, output = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"{value!r} is not INPUT,OUTPUT (USD per million tokens, e.g. 3,15)"
        ) from None
    if input_ < 0 or output < 0:
        raise ValueError(f"{value!r}: prices cannot be negative")
    return Price.from_rates(input_, output, "--price, cache at the usual multiples")
