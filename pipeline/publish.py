"""Atomic publication of a run's output directory.

Files are written into a hidden sibling of the target and renamed into place
only when all of them are complete and flushed, so the target appears whole
or not at all, and a killed run leaves nothing that blocks the next one. What
a killed run leaves (its staging directory, spill files included) is swept by
the next run to the same target, once the process that made it is gone.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import PublishError

STAGING_SUFFIX = ".partial"
OWNER_FILE = ".owner"
"""In a staging directory: the host and process id of the run writing it."""


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
    sweep_abandoned(target)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=STAGING_SUFFIX, dir=target.parent)
    )
    try:
        # mkdtemp makes a private directory (0700); a published run is read by others.
        os.chmod(staging, 0o777 & ~_umask())
        (staging / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        yield staging
        (staging / OWNER_FILE).unlink()
        _fsync_tree(staging)
        refuse_existing(target)
        os.rename(staging, target)
        _fsync_directory(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def sweep_abandoned(target: Path) -> list[Path]:
    """Delete the staging directories of earlier runs to ``target`` whose process, on
    this host, is gone (killed runs); what cannot be told to be abandoned is kept."""
    swept = []
    for staging in target.parent.glob(f".{glob.escape(target.name)}.*{STAGING_SUFFIX}"):
        try:
            host, pid = (staging / OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        if host == socket.gethostname() and not _alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)
            swept.append(staging)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
