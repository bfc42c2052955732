"""quitbot's platform-neutral core."""
