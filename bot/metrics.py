"""Prometheus metrics over what the core observes: one registry per process, built at start.

`Metrics` is the `Observer` that `quitbot run` gives the engine; `MeteredModel` times each
model call and counts its tokens. Nothing here is global: the registry belongs to the
`Metrics` object, so tests (and two runtimes in one process) never share counters.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from bot.conversation import AuditEvent
from bot.ports import Model, ModelReply, ModelUnavailable, Observer, TextSink, Usage

# The classic text format, which every Prometheus (and Grafana Agent, VictoriaMetrics) reads;
# our metric names are plain ASCII, so the output is the same in every format version.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Model latency: a first token in well under a second is normal, a long reply takes a minute.
_FIRST_TOKEN_BUCKETS = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30)
_TOTAL_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180)


class Metrics:
    """Counters and histograms for Prometheus, fed by the engine as an `Observer`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Memory, CPU, open files and the Python version: what a process running for months
        # is watched for (the standard process_* and python_* series).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._received = Counter(
            "quitbot_messages_received", "Messages taken in from people", ["platform"], registry=r
        )
        self._replies = Counter(
            "quitbot_replies", "Replies the assistant gave", ["platform"], registry=r
        )
        self._blocked = Counter(
            "quitbot_blocked_messages",
            "Messages sent to ended conversations (no model call)",
            ["platform"],
            registry=r,
        )
        self._redirects = Counter(
            "quitbot_redirects", "Declined harmful or abusive requests", ["platform"], registry=r
        )
        self._warnings = Counter(
            "quitbot_warnings", "Warnings that continuing will end it", ["platform"], registry=r
        )
        self._declined = Counter(
            "quitbot_declined_ends",
            "end_conversation calls the ladder declined, by why",
            ["platform", "why"],
            registry=r,
        )
        self._ends = Counter(
            "quitbot_ends",
            "Conversations ended, by reason and by who ended them",
            ["platform", "reason", "actor"],
            registry=r,
        )
        self._crisis = Counter(
            "quitbot_crisis_flags",
            "Conversations flagged as a person at risk",
            ["platform"],
            registry=r,
        )
        self._reopens = Counter(
            "quitbot_reopens",
            "Ended conversations reopened by moderators",
            ["platform"],
            registry=r,
        )
        self._reviews = Counter(
            "quitbot_reviews",
            "Moderators' decisions on the review queue (reopened, upheld)",
            ["platform", "decision"],
            registry=r,
        )
        self._feedback = Counter(
            "quitbot_feedback",
            'Feedback given ("this was a mistake")',
            ["platform"],
            registry=r,
        )
        self._model_errors = Counter(
            "quitbot_model_errors", "Failed model calls, by kind", ["kind"], registry=r
        )
        self._platform_errors = Counter(
            "quitbot_platform_errors",
            "Failed platform API calls, by what was attempted",
            ["platform", "operation"],
            registry=r,
        )
        self._hook_failures = Counter(
            "quitbot_hook_failures",
            "Events an event hook failed on, by hook and why (error, timeout, dropped)",
            ["hook", "why"],
            registry=r,
        )
        self._webhooks = Counter(
            "quitbot_webhook_requests",
            "Webhook requests by target and outcome (delivered, failed), and events given up",
            ["target", "outcome"],
            registry=r,
        )
        self._tool_calls = Counter(
            "quitbot_tool_calls",
            "Calls of user tools, by tool and outcome (ok, invalid_input, exception, timeout...)",
            ["platform", "tool", "outcome"],
            registry=r,
        )
        self._first_token = Histogram(
            "quitbot_model_first_token_seconds",
            "Seconds from a model request to its first text",
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self._total = Histogram(
            "quitbot_model_response_seconds",
            "Seconds from a model request to its complete response",
            buckets=_TOTAL_BUCKETS,
            registry=r,
        )
        self._tokens = Counter(
            "quitbot_model_tokens",
            "Tokens billed, by type (input, output, cache_read, cache_write)",
            ["type"],
            registry=r,
        )
        # Every series of a known label set exists from the start, so dashboards and rate()
        # see a 0 rather than nothing before the first event.
        # Bound once: `labels()` takes a lock and checks its arguments, and these are
        # counted on every model call (issue 22).
        self._input_tokens, self._output_tokens, self._cache_read, self._cache_write = (
            self._tokens.labels(kind) for kind in ("input", "output", "cache_read", "cache_write")
        )
        self._received_on: dict[str, Counter] = {}
        self._replies_on: dict[str, Counter] = {}

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    # --- Observer ----------------------------------------------------------------------

    def received(self, platform: str) -> None:
        _child(self._received_on, self._received, platform).inc()

    def replied(self, platform: str) -> None:
        _child(self._replies_on, self._replies, platform).inc()

    def blocked(self, platform: str) -> None:
        self._blocked.labels(platform).inc()

    def recorded(self, platform: str, events: Sequence[AuditEvent]) -> None:
        for event in events:
            detail = event.detail
            match event.kind:
                case "redirect":
                    self._redirects.labels(platform).inc()
                case "warning":
                    self._warnings.labels(platform).inc()
                case "end_declined":
                    self._declined.labels(platform, str(detail.get("why", ""))).inc()
                case "end":
                    reason = str(detail.get("reason", ""))
                    self._ends.labels(platform, reason, event.actor.value).inc()
                case "crisis_flagged":
                    self._crisis.labels(platform).inc()
                case "reopen":
                    self._reopens.labels(platform).inc()
                case "feedback":
                    self._feedback.labels(platform).inc()
                case "review":
                    self._reviews.labels(platform, str(detail.get("decision", ""))).inc()
                case "tool_call":
                    outcome = "ok" if detail.get("ok") else str(detail.get("failure", "error"))
                    self._tool_calls.labels(platform, str(detail.get("tool", "")), outcome).inc()

    def model_call(self, first_token: float | None, total: float, usage: Usage) -> None:
        if first_token is not None:
            self._first_token.observe(first_token)
        self._total.observe(total)
        self._input_tokens.inc(usage.input_tokens)
        self._output_tokens.inc(usage.output_tokens)
        self._cache_read.inc(usage.cache_read_tokens)
        self._cache_write.inc(usage.cache_write_tokens)

    def model_error(self, kind: str) -> None:
        self._model_errors.labels(kind).inc()

    def platform_error(self, platform: str, operation: str) -> None:
        self._platform_errors.labels(platform, operation).inc()

    def hook_failed(self, hook: str, why: str) -> None:
        self._hook_failures.labels(hook, why).inc()

    def webhook(self, target: str, outcome: str) -> None:
        self._webhooks.labels(target, outcome).inc()


def _child(bound: dict[str, Counter], counter: Counter, platform: str) -> Counter:
    """`counter`'s series for `platform`, looked up once per platform."""
    child = bound.get(platform)
    if child is None:
        child = bound[platform] = counter.labels(platform)
    return child


def error_kind(exc: BaseException) -> str:
    """A bounded label for a failed model call: the SDK error behind it, in snake case
    (`rate_limit_error`, `authentication_error`, `api_connection_error`, ...)."""
    cause = exc.__cause__ if isinstance(exc, ModelUnavailable) else exc
    if cause is None:
        return "unavailable"  # raised by quitbot itself (no key, a stream cut short)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(cause).__name__).lower()


class MeteredModel:
    """A `Model` that reports each call's latency, tokens and failures to an observer."""

    def __init__(
        self,
        model: Model,
        observer: Observer,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._observer = observer
        self._clock = clock

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        started = self._clock()
        first: float | None = None
        sink_failed = False

        async def timed(delta: str) -> None:
            nonlocal first, sink_failed
            if first is None:
                first = self._clock() - started
            try:
                await on_text(delta)
            except Exception:
                sink_failed = True  # the platform's fault, not the model's
                raise

        try:
            answer = await self._model.reply(messages, timed)
        except Exception as exc:
            if not sink_failed:
                self._observer.model_error(error_kind(exc))
            raise
        self._observer.model_call(first, self._clock() - started, answer.usage)
        return answer

    async def check(self) -> str:
        """The wrapped model's own check (doctor), when it has one."""
        check = getattr(self._model, "check", None)
        if check is None:
            return "no check available"
        return str(await check())
