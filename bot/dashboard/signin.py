"""The port a platform's sign-in implements for the dashboard, and PKCE."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Protocol

from bot.dashboard.sessions import Moderator
from bot.settings import DiscordSettings, SlackSettings


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The dashboard as a platform's OAuth client: its id, its secret, the platform's base."""

    id: str
    secret: str
    base: str


def oauth_client(section: DiscordSettings | SlackSettings) -> OAuthClient | None:
    """A platform section's client, when both its id and secret are set."""
    if not section.client_id or section.client_secret is None:
        return None
    secret = section.client_secret.get_secret_value()
    return (
        OAuthClient(section.client_id, secret, section.oauth_base.rstrip("/")) if secret else None
    )


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
