"""`python -m bot` is the `quitbot` command."""

import sys

from bot.cli import main

sys.exit(main())
