"""The moderators' web dashboard: sign in with a platform, then per community the review
queue, the conversations and their transcripts, all through the same flows the platform
commands call. Served by `quitbot dashboard`, or by `quitbot run` beside the platform adapters.

Nothing here imports a platform SDK: signing in speaks the platforms' documented OAuth
endpoints over plain HTTP (`discord_signin`).
"""
