"""The port a platform's sign-in implements for the dashboard, and PKCE."""

from __future__ import annotations

import base64
import hashlib
from typing import Protocol

from bot.dashboard.sessions import Moderator


class SignInFailed(Exception):
    """The platform did not let this person in (a refused or expired code, the platform
    unreachable); the message is for the error page and holds no secret."""


class SignIn(Protocol):
    """One platform's "Sign in with ...": where to send the person, and who came back."""

    name: str  # the platform, as in conversation keys ("discord")

    def authorize_url(self, state: str, verifier: str, redirect_uri: str) -> str: ...

    async def moderator(self, code: str, verifier: str, redirect_uri: str) -> Moderator:
        """Exchange the code the platform sent back; who signed in and what they moderate.
        Raises SignInFailed."""
        ...


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
