"""Path spelling shared by the CLIs and the data readers (no heavy imports: cli loads it first)."""

import os
from pathlib import Path

from audio_dl.errors import UsageError


def expand_home(text: str | os.PathLike) -> str:
    """`text` with a leading "~" or "~/" standing for the home folder (a path quoted in a shell or
    written in a config keeps it); "~name" stays a name: a shell glob can yield a file called
    "~$take.wav", and Path.expanduser() raises for a user that does not exist."""
    text = os.fspath(text)
    return os.path.expanduser(text) if text == "~" or text.startswith("~" + os.sep) else text


def given_path(spec: str | os.PathLike) -> Path:
    """Path(spec), a leading ~/ expanded (expand_home); UsageError for an empty string (Path("") is
    the current folder, so an unset shell variable would stand for it)."""
    if not str(spec).strip():
        raise UsageError("an empty path was given")
    return Path(expand_home(spec))
