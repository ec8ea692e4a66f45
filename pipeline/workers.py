"""The processes a run's partitions are read, validated and decided in.

A worker is a fresh interpreter (``spawn``: no state inherited from a threaded
parent) that imports the engine (pandas, pandera, pyarrow: about a second of CPU)
before it serves a task. A command that is about to run the job starts its workers
first (:func:`started_early`), before importing the engine itself, so the workers and
the command import side by side on two cores instead of one after the other: the
first partition is read some 0.3-0.5 s sooner (README, Performance). Its malloc asks
for huge pages (:data:`HUGE_PAGES`).

This module imports nothing but the standard library, so that the command line can
start the workers before it loads the rest of the package.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import resource_tracker
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from pipeline.spans import Span


def _cores() -> int:
    """The cores this process may run on, and may use in full: a container's CPU quota
    (cgroup v2 ``cpu.max``) counts, not only the machine's cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


WORKERS = min(2, _cores())
"""Processes that read, validate and decide side by side by default: two where there are
two cores (on two cores, 10M lines took 0.6x the time of one worker for 1.6x the
memory, about 1.1 GiB; README), one on one core. More is the operator's choice
(``--workers``): each worker holds a partition."""
ROWS_PER_PARTITION = 200_000
"""Claim lines a partition holds by default (``--partition-rows``): peak memory follows
it, the output does not."""
HEAD_BYTES = 1 << 20
"""How much of a CSV file, after its header, is read to measure its lines' size."""
PLACES = 8
"""Besides its first MiB, a plain CSV file is measured at this many places spread over
the rest of it (:data:`PLACE_BYTES` each), and its lines' width taken as the median of
the places' widths: four 300 KB values among a file's first lines had made its 1M lines
look like 527, one partition (a run peaked at 865 MiB, now 289)."""
PLACE_BYTES = 128 << 10
PARENT_CHECK_SECONDS = 0.1
"""How often a worker looks whether the run that started it is still there."""
PARQUET_BYTES_PER_ROW = 25
"""A Parquet claim line's size, about (the benchmark's lines: 25 bytes with Arrow's
default compression, 19 with zstd): a guess made before pyarrow is loaded; the engine
counts a Parquet file's rows from its footer."""


def rows_by_size(path: str) -> int:
    """About how many rows a CSV file holds, before it is read: its size over the width
    of its lines, the median of their mean width in its first MiB after the header and
    at :data:`PLACES` places past it (a file that short, its lines counted; a gzipped
    file, its first MiB alone, measured unpacked, and its size unpacked taken at the
    ratio its first 2 MiB were packed at). Lines of any width then make partitions of about the
    rows asked for, where a size taken for every file (150 bytes) made this benchmark's
    147-byte lines' partitions 2% larger at 50M lines, and a Tuva Project
    ``medical_claim`` file's 358-byte lines' less than half.
    A Parquet file: its size over :data:`PARQUET_BYTES_PER_ROW`. Anything but a regular
    file (a pipe, a directory): none, unopened (the run says what it is)."""
    if not Path(path).is_file():  # a pipe would be waited on: the run refuses it
        return 0
    if path.lower().endswith(".parquet"):
        return Path(path).stat().st_size // PARQUET_BYTES_PER_ROW
    packed = path.lower().endswith(".gz")
    size = Path(path).stat().st_size
    try:
        with open(path, "rb") as file:
            start, packed_size = (
                _unpacked_start(file) if packed else (file.read(2 * HEAD_BYTES + 1), 0)
            )
            header = start[: start.find(b"\n", 0, HEAD_BYTES) + 1 or HEAD_BYTES]  # or a MiB
            head = start[len(header) : len(header) + HEAD_BYTES + 1]
            if len(head) <= HEAD_BYTES:
                lines = head.count(b"\n")
                return lines + bool(head and not head.endswith(b"\n"))  # a last one unended
            if packed:  # the bytes unpacked over those read to unpack them
                size = size * len(start) // max(packed_size, 1)
            widths = [len(head) / head.count(b"\n")] if b"\n" in head else []
            if not packed:
                widths += _widths_at_places(file, len(header) + len(head), size)
    except zlib.error:  # a damaged gzip file: its reading says so, in one partition
        return 0
    if not widths:  # no line break anywhere measured: one long line, or a few
        return 1
    return int((size - len(header)) / statistics.median(widths))


def _unpacked_start(file: BinaryIO) -> tuple[bytes, int]:
    """A gzip file's first bytes unpacked (up to a header line and a MiB past it, as a
    plain file's are read), and how many of its bytes were unpacked to give them."""
    unpack = zlib.decompressobj(wbits=31)  # a gzip stream
    unpacked = bytearray()
    fed = 0
    while len(unpacked) <= 2 * HEAD_BYTES:
        if unpack.eof:  # a member ended: another may follow (files joined by cat)
            left, unpack = unpack.unused_data, zlib.decompressobj(wbits=31)
        else:
            left = unpack.unconsumed_tail
        chunk = left or file.read(64 << 10)
        if not chunk:  # the whole file unpacked (or cut short: its reading says so)
            break
        fed += 0 if left else len(chunk)
        unpacked += unpack.decompress(chunk, 2 * HEAD_BYTES + 1 - len(unpacked))
    return bytes(unpacked), fed - len(unpack.unconsumed_tail) - len(unpack.unused_data)


def _widths_at_places(file: BinaryIO, start: int, size: int) -> list[float]:
    """The mean width of the whole lines in :data:`PLACE_BYTES` of ``file`` at each of
    :data:`PLACES` places spread from ``start`` to ``size`` (a place with fewer than two
    line breaks, inside one long value, gives none)."""
    widths = []
    step = (size - start) // (PLACES + 1)
    for place in range(1, PLACES + 1) if step > PLACE_BYTES else ():
        file.seek(start + place * step)
        read = file.read(PLACE_BYTES)
        first, last = read.find(b"\n"), read.rfind(b"\n")
        if last > first >= 0:
            widths.append((last - first) / read.count(b"\n", first + 1, last + 1))
    return widths


HUGE_PAGES = "glibc.malloc.hugetlb=1"
"""The glibc tunable the workers start with: malloc asks the kernel for transparent huge
pages (``madvise(MADV_HUGEPAGE)``) for the memory it maps and the heap it grows, where a
system gives them only when asked (``madvise`` in
``/sys/kernel/mm/transparent_hugepage/enabled``, as here). A worker takes each task's
memory afresh (see :func:`pipeline.engine._hand_back`), a page fault for every 4 KiB of
it. At 10M lines, nine runs each by turns: 1.1-1.4 million page faults a run against
2.5-2.7 million, 9.5-11.5 s of system CPU against 12.3-15.0, 47.4 s against 50.1
(medians; paired 0.95), the same output, peaks 806-823 MiB against 807-820.

The dynamic loader reads ``GLIBC_TUNABLES`` as a process starts, so it is put in this
process's environment as this module is imported, before a run starts any thread, for
the processes it starts (its workers); the run's own process, started before, does
little of the work. A value the environment gives the same tunable stands. A glibc
before 2.35, and other C libraries, ignore it."""


def with_tunable(tunables: str | None, setting: str) -> str:
    """A ``GLIBC_TUNABLES`` value, ``tunables`` with ``setting`` (``name=value``) added
    unless they name that tunable already."""
    named = [item for item in (tunables or "").split(":") if item]
    if setting.split("=", 1)[0] not in {item.split("=", 1)[0] for item in named}:
        named.append(setting)
    return ":".join(named)


if sys.platform.startswith("linux"):
    os.environ["GLIBC_TUNABLES"] = with_tunable(os.environ.get("GLIBC_TUNABLES"), HUGE_PAGES)


def start(count: int) -> ProcessPoolExecutor:
    """``count`` workers, each starting at once to import the engine."""
    _tracker_deaf_to_sighup()
    pool = ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_prepared,
        initargs=(os.getpid(),),
    )
    for _ in range(count):  # the pool starts a process for a task no idle one can take
        pool.submit(_started)
    return pool


def _tracker_deaf_to_sighup() -> None:
    """Start multiprocessing's resource tracker (a process of the run's group, which the
    pool would start) ignoring SIGHUP, as it ignores SIGTERM and SIGINT itself: a
    SIGHUP to the group, which the run answers as it does SIGTERM, otherwise ended the
    tracker, and the pool's next step printed its tracebacks. An ignored signal stays
    ignored in the process started."""
    if threading.current_thread() is not threading.main_thread():
        return  # no signal handlers here: the pool starts the tracker as it would
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


_early: dict[int, ProcessPoolExecutor] = {}
"""Workers started ahead of a run (:func:`started_early`) by their count, until it
takes them (:func:`take`)."""


@contextmanager
def started_early(count: int, claims: Sequence[str], rows_per_partition: int) -> Iterator[None]:
    """Start ``count`` workers now for the run made within, if its claims files look
    to hold more than one partition by their size (a run of one partition is made in
    this process; the engine counts a Parquet file's rows, and starts the workers
    itself where this guess fell short); those no run took are stopped on leaving.
    The claims files are then cut into spans for ``count`` readers (:func:`cut_early`),
    beside the imports."""
    try:
        rows = sum(rows_by_size(path) for path in claims)
    except OSError:  # the run says what is wrong with the file
        rows = 0
    if count > 1 and rows > rows_per_partition:
        _early[count] = start(count)
        _cut(claims, count)
    try:
        yield
    finally:
        pool = _early.pop(count, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for path in claims:
            _early_cuts.pop((path, count), None)
            _early_signatures.pop((path, count), None)


_early_cuts: dict[tuple[str, int], Future[list[Span]]] = {}
"""The spans of the claims files of a run whose workers were started early, by path and
the readers they were cut for, while the run is made (:func:`started_early`)."""


def _cut(paths: Sequence[str], ways: int) -> None:
    """Cut ``paths`` into spans for ``ways`` readers (:func:`pipeline.spans.spans_of`) in a
    thread, while this process and its workers import the engine: the cutting reads
    every claims file once (about a second a GB), and the reading could not start
    before it was done. A file that cannot be cut keeps its error for the run, which
    then says what is wrong with it as it would have."""
    cuts: dict[str, Future[list[Span]]] = {path: Future() for path in paths}
    _early_cuts.update({(path, ways): future for path, future in cuts.items()})

    def cut() -> None:
        from pipeline.spans import spans_of

        for path, future in cuts.items():
            try:
                # What the file was as it was cut: the run refuses it changed since.
                _early_signatures[(path, ways)] = signature(path)
                future.set_result(spans_of(path, ways=ways))
            except BaseException as error:  # handed to the run, raised where it asks
                future.set_exception(error)

    # A daemon: a run stopped meanwhile does not wait for a file's reading to end.
    threading.Thread(target=cut, name="cut-early", daemon=True).start()


Signature = tuple[int, int, int, int]


def signature(path: str) -> Signature:
    """What changes when a file does: its device and inode (a file put in its place),
    its size (appended to) and its modification time (written over)."""
    status = os.stat(path)
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


_early_signatures: dict[tuple[str, int], Signature] = {}
"""Each file cut early's device, inode, size and modification time as it was cut."""


def cut_early_signature(path: str, ways: int) -> Signature | None:
    """What ``path`` was as it was cut for ``ways`` readers (:func:`cut_early`, which
    it follows), or None where it was not cut early."""
    return _early_signatures.get((path, ways))


def cut_early(path: str, ways: int) -> list[Span] | None:
    """``path``'s spans for ``ways`` readers as cut while the command started (waiting
    for them if they are being cut), or None where they were not."""
    future = _early_cuts.get((path, ways))
    return None if future is None else future.result()


def take(count: int) -> ProcessPoolExecutor:
    """``count`` workers: those started early for this run, else started now."""
    return _early.pop(count, None) or start(count)


def _prepared(parent: int) -> None:
    """A worker's start: bound to the run's process (:func:`_bound_to`), deaf to SIGTERM,
    SIGHUP and SIGINT, the engine imported, then what that made set aside
    (:func:`pipeline.memory.prepare_process`).

    A scheduler's stop may reach a run's whole process group, a terminal's Ctrl-C does:
    the run's process stops its workers itself (their tasks waited for, the rest
    cancelled), where workers ending on their own break the pool under it (seen once, a
    run stopped while profiled: a traceback from the pool's manager thread)."""
    _bound_to(parent)
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)
    import pipeline.engine  # noqa: F401  (imported for its tasks, before the freeze)
    from pipeline.memory import prepare_process

    prepare_process()


def _bound_to(parent: int) -> None:
    """End this worker once ``parent``, the run that started it, is gone, however it
    went: a run killed with SIGKILL runs no code to stop its workers, which then waited
    for tasks for ever (two interpreters of ~150 MiB for each killed run) and could go on
    writing into the staging directory the next run sweeps. A thread, not the kernel's
    parent-death signal, which follows the thread that started the worker, not the
    process."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _started() -> None:
    """Nothing: a worker that runs it has imported the engine."""
