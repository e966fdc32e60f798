"""Atomic writes: build in a hidden temporary folder or file beside the target, rename at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_folder(target: Path):
    """Yield a hidden temporary folder beside `target`; rename it to `target` only if the block
    completes, remove it otherwise (so an interrupted write leaves nothing). The folder gets the
    permissions mkdir would give it (mkdtemp makes it owner-only)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-partial-", dir=target.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


@contextlib.contextmanager
def staged_file(target: Path):
    """Yield a hidden temporary file path beside `target`; rename it to `target` only if the block
    completes, remove it otherwise. The file gets the permissions open() would give it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}-partial-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    staging = Path(name)
    try:
        yield staging
        os.chmod(staging, 0o666 & ~_umask())
        os.replace(staging, target)
    finally:
        if staging.exists():
            staging.unlink()
