"""Errors that reach the user as one clear line (exit code 2 from a CLI), never a traceback."""


class UsageError(Exception):
    """Bad input from the user: a missing path, a folder with no audio, a value out of range."""
