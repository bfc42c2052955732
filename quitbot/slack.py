"""quitbot on a Bolt app you already run: `await quitbot.slack.register(app, runtime)`.

Needs slack-bolt (`pip install 'quitbot[slack]'`); `import quitbot` alone does not. Guide:
docs/build-on-quitbot.md, "Register quitbot on your Bolt app".
"""

from __future__ import annotations

from platforms.slack.embed import ListenerCollision, SlackRegistration, register

__all__ = ["ListenerCollision", "SlackRegistration", "register"]
