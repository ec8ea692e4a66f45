"""Worker processes: started before the engine is imported, taken by the run."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.generate import generate_tables, write_table
from pipeline import spans, workers
from tests.waiting import soon

REPO = Path(__file__).resolve().parents[1]


def _claims_of(path: Path, rows: int, width: int = 150) -> str:
    """A header and ``rows`` lines of ``width`` bytes (only their count is read here)."""
    path.write_bytes(b"claim_id\n" + (b"x" * (width - 1) + b"\n") * rows)
    return str(path)


def _children_gone() -> bool:
    return soon(lambda: not multiprocessing.active_children(), seconds=60, every=0.1)


def test_the_command_line_loads_no_engine_before_its_workers_start() -> None:
    # The workers import pandas, pandera and pyarrow beside the command only if the
    # command has not already imported them by the time it starts its workers.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pipeline.cli; print(sorted(m for m in "
            "('numpy', 'pandas', 'pandera', 'pyarrow') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_workers_started_early_are_the_ones_the_run_takes(tmp_path: Path) -> None:
    claims = _claims_of(tmp_path / "claims.csv", rows=1_000)
    assert _children_gone()
    with workers.started_early(2, [claims], rows_per_partition=500):
        started = {p.pid for p in multiprocessing.active_children()}
        assert len(started) == 2
        pool = workers.take(2)
        try:
            assert pool.submit(abs, -1).result(timeout=60) == 1
            assert {p.pid for p in multiprocessing.active_children()} == started
        finally:
            pool.shutdown(wait=True)
    assert _children_gone()


def test_no_workers_start_early_for_one_partition_or_one_worker(tmp_path: Path) -> None:
    claims = _claims_of(tmp_path / "claims.csv", rows=1_000)
    for count, rows_per_partition in ((2, 1_000), (1, 10)):
        with workers.started_early(count, [claims], rows_per_partition):
            assert not multiprocessing.active_children()
    with workers.started_early(2, [str(tmp_path / "missing.csv")], 10):
        assert not multiprocessing.active_children()


def test_workers_no_run_took_are_stopped(tmp_path: Path) -> None:
    claims = _claims_of(tmp_path / "claims.csv", rows=1_000)
    with workers.started_early(2, [claims], rows_per_partition=500):
        assert len(multiprocessing.active_children()) == 2
    assert _children_gone()
    # A run asking for another count starts its own, and the early ones still stop.
    with workers.started_early(2, [claims], rows_per_partition=500):
        pool = workers.take(3)
        try:
            assert len(multiprocessing.active_children()) == 5
        finally:
            pool.shutdown(wait=True)
    assert _children_gone()


def test_claims_are_cut_early_for_the_readers_the_workers_start_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spans, "SPAN_BYTES", 10_000)
    claims = _claims_of(tmp_path / "claims.csv", rows=1_000)
    with workers.started_early(2, [claims], rows_per_partition=500):
        early = workers.cut_early(claims, 2)
        assert early == spans.spans_of(claims, ways=2) and len(early) > 10
        assert workers.cut_early(claims, 3) is None  # cut for two readers only
    assert workers.cut_early(claims, 2) is None
    with workers.started_early(1, [claims], rows_per_partition=500):
        assert workers.cut_early(claims, 1) is None  # one worker: no early start, no cut
    assert _children_gone()


def test_a_file_the_early_cut_cannot_read_keeps_its_error_for_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "_early_cuts", {})
    missing = str(tmp_path / "gone.csv")
    workers._cut([missing], 2)
    with pytest.raises(FileNotFoundError):
        workers.cut_early(missing, 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc tunable")
def test_workers_start_with_malloc_asking_for_huge_pages() -> None:
    pool = workers.start(2)
    try:
        seen = {pool.submit(os.getenv, "GLIBC_TUNABLES").result(timeout=60) for _ in range(4)}
    finally:
        pool.shutdown(wait=True)
    assert len(seen) == 1
    tunables = seen.pop()
    assert tunables is not None and workers.HUGE_PAGES in tunables.split(":")


def test_the_environments_own_tunables_stand() -> None:
    huge = workers.HUGE_PAGES
    assert workers.with_tunable(None, huge) == huge
    assert workers.with_tunable("", huge) == huge
    assert workers.with_tunable("glibc.malloc.arena_max=2", huge) == (
        f"glibc.malloc.arena_max=2:{huge}"
    )
    # The environment's own setting of the same tunable stands.
    assert workers.with_tunable("glibc.malloc.hugetlb=0", huge) == "glibc.malloc.hugetlb=0"


def test_rows_are_counted_by_the_lines_own_width(tmp_path: Path) -> None:
    # Past the first MiB the rows are estimated from the lines measured there, so a
    # partition holds about the rows asked for whatever the lines' width.
    for width in (60, 147, 400):
        rows = 3 * workers.HEAD_BYTES // width
        claims = _claims_of(tmp_path / f"claims-{width}.csv", rows, width)
        assert abs(workers.rows_by_size(claims) - rows) <= rows // 1000


def test_a_short_file_has_its_lines_counted(tmp_path: Path) -> None:
    claims = _claims_of(tmp_path / "claims.csv", rows=1_000)
    assert workers.rows_by_size(claims) == 1_000
    unended = tmp_path / "unended.csv"
    unended.write_bytes(b"claim_id\nC1\nC2")
    assert workers.rows_by_size(str(unended)) == 2
    header_only = tmp_path / "header.csv"
    header_only.write_bytes(b"claim_id\n")
    assert workers.rows_by_size(str(header_only)) == 0


def test_a_gzipped_file_is_measured_unpacked(tmp_path: Path) -> None:
    plain = Path(_claims_of(tmp_path / "claims.csv", rows=1_000))
    packed = tmp_path / "claims.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert workers.rows_by_size(str(packed)) == 1_000  # short: its lines counted
    # Past the first MiB: the file's size unpacked at the ratio its first MiB was packed
    # at (four times its size, as it was taken, made lines packed 16 to 1 look a
    # quarter as many, and their partitions four times the rows asked).
    rows = 4 * workers.HEAD_BYTES // 100
    for level, spread in ((1, 1_000), (9, 10), (9, 1)):
        lines = b"claim_id\n" + b"".join(b"C%098d\n" % (n % spread) for n in range(rows))
        packed.write_bytes(gzip.compress(lines, compresslevel=level))
        assert abs(workers.rows_by_size(str(packed)) - rows) <= rows // 20, (level, spread)


def test_a_few_long_values_among_the_first_lines_do_not_set_the_width(tmp_path: Path) -> None:
    # Four 300 KB values among a file's first lines made its 1M lines look like 527:
    # one partition (892 MB, against 294). The width is the median of nine places'.
    rows = 8 * workers.HEAD_BYTES // 100
    claims = tmp_path / "claims.csv"
    with claims.open("wb") as file:
        file.write(b"claim_id,note\n")
        for n in range(rows):
            file.write(b"C%097d,%s\n" % (n, b"y" * 300_000 if n < 4 else b""))
    # The long values' bytes count as lines of the others' width: a few more, not fewer.
    assert rows <= workers.rows_by_size(str(claims)) <= rows + 4 * 300_000 // 100 + rows // 100
    one_line = tmp_path / "one.csv"
    one_line.write_bytes(b"claim_id\n" + b"C" * (3 * workers.HEAD_BYTES))
    assert workers.rows_by_size(str(one_line)) == 1


def test_a_parquet_files_rows_are_guessed_by_its_size(tmp_path: Path) -> None:
    # A guess, made before pyarrow is loaded, of whether it holds more than a
    # partition (the engine counts its rows from its footer): the generator's
    # lines within a factor of two.
    claims = tmp_path / "claims.parquet"
    write_table(generate_tables(100_000, seed=5)[0], claims)
    assert 50_000 <= workers.rows_by_size(str(claims)) <= 200_000


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_end_when_their_run_is_killed(tmp_path: Path) -> None:
    # A run killed with SIGKILL runs no code to stop its workers: they must see it gone.
    script = (
        "import multiprocessing, os, signal\n"
        "from pipeline import workers\n"
        "pool = workers.start(2)\n"
        "pool.submit(abs, -1).result()\n"
        "print(*(p.pid for p in multiprocessing.active_children()), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    printed = tmp_path / "pids"  # a file, not a pipe: workers left behind would hold a pipe open
    with printed.open("w") as stdout:
        run = subprocess.run(
            [sys.executable, "-c", script], check=False, stdout=stdout, cwd=REPO, timeout=120
        )
    pids = [int(pid) for pid in printed.read_text().split()]
    assert run.returncode == -signal.SIGKILL and len(pids) == 2
    try:
        assert soon(lambda: not any(_running(pid) for pid in pids), every=0.1), (
            "a worker outlived its run"
        )
    finally:
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


IDLE_WORKER_KILLED = """
import os, signal, time
from concurrent.futures.process import BrokenProcessPool


def main() -> None:
    from pipeline import engine, workers

    pool = workers.start(2)
    list(pool.map(abs, [1, 2]))
    os.kill(next(iter(pool._processes.values())).pid, signal.SIGKILL)
    engine.take = lambda count: pool
    try:
        with engine._workers(2):
            time.sleep(1)  # the pool finds the worker gone
            pool.submit(abs, 1).result()
    except BrokenProcessPool:
        print("ended")


if __name__ == "__main__":
    main()
"""


def test_a_run_whose_idle_worker_is_killed_ends(tmp_path: Path) -> None:
    # The pool ends its other workers with SIGTERM, which they ignore, and waited for
    # them for ever: one waited on the task queue the killed one held.
    script = tmp_path / "killed.py"
    script.write_text(IDLE_WORKER_KILLED)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.stdout.strip() == "ended", done.stderr
