"""Errors that reach the user as one clear line (exit code 2 from a CLI), never a traceback."""

import threading


class UsageError(Exception):
    """Bad input from the user: a missing path, a folder with no audio, a value out of range."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a job scheduler, docker stop), raised so that partial outputs are removed
    on the way out, as for Ctrl-C."""


# set by SIGTERM (cli.run_main): Python drops a raise that lands inside a __del__, so staged writes
# also check it before they commit
TERMINATION = threading.Event()
