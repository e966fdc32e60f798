"""Atomic writes: build in a hidden temporary folder or file beside the target, rename at the end."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from audio_dl.errors import TERMINATION, Terminated


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# failures of the storage rather than of the program or the user (a full disk, a failing device, a
# network or FUSE mount gone: ENOTCONN, ESTALE, ETIMEDOUT): named after the target when Python's
# write raised them without a file name (cli.run_main reports them in one line, exit 1)
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.ETIMEDOUT})


@contextlib.contextmanager
def write_failures_named(target: Path):
    """A WRITE_FAILURES OSError raised inside without a file name is raised again naming `target`."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno in WRITE_FAILURES:
            raise OSError(error.errno, error.strerror, str(target)) from error
        raise


@contextlib.contextmanager
def _staged(staging: Path, target: Path, mode: int, remove, replace_folder: bool = False):
    try:
        with write_failures_named(target):
            yield staging
        if TERMINATION.is_set():  # a SIGTERM whose raise Python dropped (inside a __del__): not this one either
            raise Terminated
        os.chmod(staging, mode & ~_umask())  # mkdtemp/mkstemp make it owner-only
        with _naming(target):
            if replace_folder and target.is_dir():
                _swap_folder(staging, target)
            else:
                os.replace(staging, target)
    finally:
        if staging.exists():
            remove(staging)


def _swap_folder(staging: Path, target: Path) -> None:
    """Put `staging` in place of the existing folder `target` (renamed aside first, restored if
    the second rename fails, removed after)."""
    old = target.with_name(f"{_hidden_name(target, 'old')}{secrets.token_hex(6)}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _naming(target: Path):
    """An OSError inside names `target`, not the hidden staging path the user never gave."""
    try:
        yield
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(target)) from error


def _hidden_name(target: Path, kind: str) -> str:
    """The start of a hidden name beside `target` ("partial": being written; "old": being replaced):
    its name cut to 40 characters (160 bytes at most), so that any name the file system takes
    leaves room for the random rest."""
    return f".{target.name[:40]}-{kind}-"


def staged_folder(target: Path, replace: bool = False):
    """Context manager yielding a hidden temporary folder beside `target`, renamed to `target` only
    if the block completes and removed otherwise (an interrupted write leaves nothing); it lands
    with the permissions mkdir would give it. With replace=True an existing `target` folder is
    replaced only then, so a failed rewrite keeps the old one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _naming(target):
        staging = Path(tempfile.mkdtemp(prefix=_hidden_name(target, "partial"), dir=target.parent))
    return _staged(staging, target, 0o777, shutil.rmtree, replace_folder=replace)


def staged_file(target: Path):
    """The same for a file path (it lands with the permissions open() would give it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _naming(target):
        fd, name = tempfile.mkstemp(prefix=_hidden_name(target, "partial"), suffix=target.suffix[:16],
                                    dir=target.parent)
    os.close(fd)
    return _staged(Path(name), target, 0o666, Path.unlink)


@contextlib.contextmanager
def new_folders_removed_if_empty(folders: Iterable[Path]):
    """On the way out, remove those of `folders` and their parents that did not exist on the way in
    and are empty then (deepest first): an interrupted run, or one whose every file in a subfolder
    was skipped, leaves no empty output folders behind. Folders that existed are never touched;
    one another process makes meanwhile and leaves empty may be removed."""
    distinct = {Path(folder) for folder in folders}
    new = {p for folder in distinct for p in (folder, *folder.parents) if not p.exists()}
    try:
        yield
    finally:
        for folder in sorted(new, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: it holds results
                folder.rmdir()


def write_text(target: str | os.PathLike, text: str) -> None:
    """Path(target).write_text(text), atomically: a reader sees the old file or all of the new one
    (a marker or manifest cut short by an interrupt would be taken for a finished one)."""
    with staged_file(Path(target)) as staging:
        staging.write_text(text)
