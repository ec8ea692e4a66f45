"""Atomic publication of a run's output directory.

Files are written into a hidden sibling of the target and renamed into place
only when all of them are complete and flushed, so the target appears whole
or not at all, and a killed run leaves nothing that blocks the next one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import PublishError

STAGING_SUFFIX = ".partial"


def refuse_existing(target: Path) -> None:
    """Refuse, before any work, a target that already exists."""
    if target.exists():
        raise PublishError(f"{target} already exists; a run never overwrites a published directory")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_directory(directory)


@contextmanager
def publishing(target: Path) -> Iterator[Path]:
    """Yield a staging directory; on a clean exit, rename it to ``target``."""
    target = Path(target)
    refuse_existing(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=STAGING_SUFFIX, dir=target.parent)
    )
    try:
        yield staging
        _fsync_tree(staging)
        refuse_existing(target)
        os.rename(staging, target)
        _fsync_directory(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
