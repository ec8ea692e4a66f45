"""Worker processes: started before the engine is imported, taken by the run."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

from pipeline import workers

REPO = Path(__file__).resolve().parents[1]


def _claims_of(path: Path, rows: int) -> str:
    """A file the size of ``rows`` CSV claim lines (its content is never read here)."""
    path.write_bytes(b"x" * rows * workers.BYTES_PER_ROW)
    return str(path)


def _children_gone(timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while multiprocessing.active_children():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


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
