"""quitbot on a Bolt app you already run: `await quitbot.slack.register(app, runtime)`.

Needs slack-bolt (`pip install 'quitbot[slack]'`); `import quitbot` alone does not. Guide:
docs/build-on-quitbot.md, "Register quitbot on your Bolt app".
"""

from __future__ import annotations

from platforms.slack.embed import ListenerCollision, SlackRegistration, register
from platforms.slack.quiet import without_token_warning

__all__ = ["ListenerCollision", "SlackRegistration", "register", "without_token_warning"]
