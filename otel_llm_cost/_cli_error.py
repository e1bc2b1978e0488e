"""`CliError`: what a command says in one line on stderr (exit 2). Its own module, so the commands that
live beside the CLI (the demo) raise it without importing the CLI that imports them."""

from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """Printed as one line, exit code 2."""
