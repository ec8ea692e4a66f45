"""Atomic publication of a run's output directory.

Files are written into a hidden sibling of the target and renamed into place
only when all of them are complete and flushed, so the target appears whole
or not at all, and a killed run leaves nothing that blocks the next one. What
a killed run leaves (its staging directory, spill files included) is swept by
the next run to the same target, once the process that made it is gone.

A staging directory's name says whose it is (``.DIR.HOST-PID.XXXXXXXX.partial``),
so that no moment leaves one that cannot be told: a mark written into the directory
after it was made was missing when a run was killed between the two, and a sweep
killed halfway could delete the mark before the rest.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pipeline.errors import PublishError

STAGING_SUFFIX = ".partial"


def refuse_existing(target: Path) -> None:
    """Refuse, before any work, a target that already exists."""
    if os.path.lexists(target):  # a link to nothing too: the rename would fail on it
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
    made = missing_folders(Path(os.path.abspath(target)).parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except BaseException:
        remove_empty(made)
        raise
    sweep_abandoned(target)
    prefix = f"{_this_host(target)}{os.getpid()}."
    try:
        # mkdtemp makes a private directory (0700), kept so while the run works in it.
        staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=STAGING_SUFFIX, dir=target.parent))
        yield staging
        _fsync_tree(staging)
        os.chmod(staging, 0o777 & ~_umask())  # a published run is read by others
        refuse_existing(target)
        try:
            os.rename(staging, target)
        except OSError as error:  # another run published ``target`` since the line above
            raise PublishError(
                f"{target} cannot be published ({error.strerror}); nothing was published"
            ) from error
        _fsync_directory(target.parent)
    except BaseException:
        # Found by its name, not by ``staging``: a stop (SIGTERM) can land inside mkdtemp,
        # the directory made and its name not yet returned.
        for mine in _staged(target, prefix):
            shutil.rmtree(mine, ignore_errors=True)
        remove_empty(made)
        raise


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and the folders above it that do not exist, deepest first: those a
    run is about to make. Named as the system resolves them (absolute, normalised:
    ``nothere/../runs`` is ``runs``, which may exist)."""
    absolute = Path(os.path.abspath(folder))
    return [f for f in [absolute, *absolute.parents] if not os.path.lexists(f)]


def remove_empty(folders: list[Path]) -> None:
    """The folders a run made (:func:`missing_folders`), deepest first, where still
    empty."""
    for folder in folders:
        with suppress(OSError):
            folder.rmdir()


def sweep_abandoned(target: Path) -> list[Path]:
    """Delete the staging directories of earlier runs to ``target`` whose process, on
    this host, is gone (killed runs); what cannot be told to be abandoned is kept."""
    swept = []
    prefix = _this_host(target)
    for staging in _staged(target, prefix):
        pid = staging.name[len(prefix) :].partition(".")[0]  # PID.XXXXXXXX.partial
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)
            swept.append(staging)
    return swept


def _this_host(target: Path) -> str:
    """How the names of this host's staging directories for ``target`` begin
    (``.DIR.HOST-``), the process id next."""
    return f".{target.name}.{re.sub(r'[^A-Za-z0-9.-]', '_', socket.gethostname())}-"


def _staged(target: Path, prefix: str) -> list[Path]:
    """The staging directories beside ``target`` whose names begin with ``prefix``."""
    return list(target.parent.glob(f"{glob.escape(prefix)}*{STAGING_SUFFIX}"))


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
