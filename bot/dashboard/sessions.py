"""Who is signed in: sessions kept on the server, named by a signed, random cookie value.

A cookie that is signed but unknown to this process (forged, expired, signed out, or from
before a restart) is no session. Signing as well as checking means a guessed or stolen
session store key is useless without the dashboard's secret, and a tampered cookie is
refused before any lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

# Permissions are read from the platform at sign-in; a moderator who loses them keeps the
# dashboard at most this long.
SESSION_LIFETIME = timedelta(hours=1)
# A sign-in begun and not finished within this is refused (the platform's page may be slow).
SIGN_IN_LIFETIME = timedelta(minutes=10)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Moderator:
    """A signed-in person and the communities they may moderate (id -> name)."""

    platform: str
    user_id: str
    name: str
    communities: dict[str, str]

    def moderates(self, platform: str, community: str) -> bool:
        return platform == self.platform and community in self.communities


@dataclass(frozen=True, slots=True)
class Session:
    moderator: Moderator
    csrf: str
    expires: datetime


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """A sign-in sent to a platform: what its callback must bring back (`state`), the PKCE
    verifier, where to go afterwards."""

    provider: str
    verifier: str
    next_path: str
    expires: datetime


class Signer:
    """HMAC-SHA256 over a value, appended to it."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"quitbot-dashboard-cookie\0" + secret).digest()

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, signed: str) -> str | None:
        value, _, mac = signed.rpartition(".")
        if not value or not hmac.compare_digest(mac, self._mac(value)):
            return None
        return value

    def _mac(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class Sessions:
    """The signed-in sessions and the sign-ins under way, in this process."""

    signer: Signer
    clock: Clock = utc_now
    _sessions: dict[str, Session] = field(default_factory=dict)
    _pending: dict[str, PendingSignIn] = field(default_factory=dict)

    def start(self, moderator: Moderator) -> tuple[str, Session]:
        """A new session; the cookie value that names it."""
        self._forget_expired()
        key = secrets.token_urlsafe(32)
        session = Session(moderator, secrets.token_urlsafe(32), self.clock() + SESSION_LIFETIME)
        self._sessions[key] = session
        return self.signer.sign(key), session

    def find(self, cookie: str | None) -> Session | None:
        key = self.signer.unsign(cookie) if cookie else None
        session = self._sessions.get(key) if key else None
        if session is None or session.expires <= self.clock():
            return None
        return session

    def end(self, cookie: str | None) -> None:
        key = self.signer.unsign(cookie) if cookie else None
        if key:
            self._sessions.pop(key, None)

    def begin_sign_in(self, provider: str, next_path: str) -> tuple[str, PendingSignIn]:
        """A fresh `state` for the platform to bring back, and what it stands for."""
        self._forget_expired()
        state = secrets.token_urlsafe(32)
        pending = PendingSignIn(
            provider, secrets.token_urlsafe(48), next_path, self.clock() + SIGN_IN_LIFETIME
        )
        self._pending[state] = pending
        return state, pending

    def finish_sign_in(self, state: str) -> PendingSignIn | None:
        """The sign-in `state` was issued for; each state works once."""
        pending = self._pending.pop(state, None)
        if pending is None or pending.expires <= self.clock():
            return None
        return pending

    def _forget_expired(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]
        for key in [k for k, p in self._pending.items() if p.expires <= now]:
            del self._pending[key]
