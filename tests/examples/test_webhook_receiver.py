"""The example webhook receiver accepts quitbot's signature and nothing else."""

from __future__ import annotations

import json
import time

import aiohttp

from bot.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.examples.receiver import Receiver, load_example

SECRET = b"an example secret, long enough"
BODY = json.dumps({"id": 7, "kind": "end", "conversation": {"id": "c1"}}).encode()


def headers(timestamp: int, body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


async def post(receiver: Receiver, body: bytes, sent: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(receiver.url, data=body, headers=sent) as answer,
    ):
        return answer.status


async def test_a_good_signature_is_accepted_once_and_bad_or_stale_ones_are_refused() -> None:
    receiver = Receiver(SECRET)
    await receiver.start()
    try:
        now = int(time.time())
        forged = dict(headers(now), **{SIGNATURE_HEADER: "v0=" + "0" * 64})
        assert await post(receiver, BODY, forged) == 401
        assert await post(receiver, BODY, headers(now, secret=b"another secret, also long")) == 401
        assert await post(receiver, BODY + b" ", headers(now)) == 401  # body changed
        assert await post(receiver, BODY, headers(now - 301)) == 401  # stale: a replay
        assert await post(receiver, BODY, headers(now + 301)) == 401
        assert await post(receiver, BODY, {}) == 401
        assert receiver.events == []
        assert await post(receiver, BODY, headers(now)) == 204
        assert await post(receiver, BODY, headers(now)) == 204  # a retry: acknowledged again
        assert receiver.events == [json.loads(BODY)]
        assert await post(receiver, b"not json", headers(now, b"not json")) == 400
    finally:
        await receiver.stop()


def test_verify_refuses_malformed_headers() -> None:
    verify = load_example().verify
    now = 1_764_871_200
    good = sign(SECRET, now, BODY)
    assert verify(SECRET, str(now), good, BODY, now)
    assert verify(SECRET, str(now), good, BODY, now + 300)
    for stamp in ("", " 1764871200", "+1764871200", "1_764_871_200", "1764871200.0", "x"):
        assert not verify(SECRET, stamp, good, BODY, now), stamp
    for signature in (None, "", good.upper(), good[:-1], "v1" + good[2:], "v0=ü"):
        assert not verify(SECRET, str(now), signature, BODY, now), signature
