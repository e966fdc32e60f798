"""Atomic folder writes: build in a hidden temporary folder beside the target, rename at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def staged_folder(target: Path):
    """Yield a hidden temporary folder beside `target`; rename it to `target` only if the block
    completes, remove it otherwise (so an interrupted write leaves nothing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-partial-", dir=target.parent))
    try:
        yield staging
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
