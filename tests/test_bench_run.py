"""The whole-run benchmark's reading of the machine's disk waits and the host's steal, the
lines that print them, and the peer's command line."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

from benchmarks import bench_run
from benchmarks.bench_run import Run, cpu_ticks, host_line, host_seconds, peer


def test_the_disk_waits_and_the_steal_are_read_from_their_own_fields() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice, in ticks
    before = [100, 0, 50, 900, 20, 0, 1, 30, 0, 0]
    after = [700, 0, 90, 950, 520, 0, 3, 330, 0, 0]
    ticks = os.sysconf("SC_CLK_TCK")
    assert host_seconds(before, after) == (500 / ticks, 300 / ticks)


@pytest.mark.parametrize(
    "before, after",
    [(None, [0] * 10), ([0] * 10, None), ([0] * 7, [1] * 7)],
)
def test_without_both_readings_there_is_no_figure(
    before: list[int] | None, after: list[int] | None
) -> None:
    assert all(math.isnan(x) for x in host_seconds(before, after))


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc/stat here")
def test_this_machine_reports_both() -> None:
    ticks = cpu_ticks()
    assert ticks is not None and len(ticks) > 7


def test_the_peer_is_given_a_memory_limit_only_when_asked() -> None:
    folder, out = Path("inputs"), Path("peer.parquet")
    default = peer(folder, out)
    limited = peer(folder, out, memory_limit="2GiB")
    assert "--memory-limit" not in default
    assert limited == [*default, "--memory-limit", "2GiB"]


def test_each_run_has_its_waits_and_steal_in_order() -> None:
    runs = [Run(1.0, 2.0, 0.26, 3.04), Run(1.0, 2.0, math.nan, math.nan)]
    assert host_line(runs).split(": ")[1] == "0.3/3.0 nan/nan"


@pytest.mark.skipif(
    not (Path("/usr/bin/time").exists() and Path("/proc/stat").exists()),
    reason="no /usr/bin/time or /proc/stat here",
)
def test_the_flat_runs_print_their_waits_and_steal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_run, "WORK", tmp_path)
    monkeypatch.setattr(bench_run, "generated", lambda lines: tmp_path / str(lines))
    bench_run.flatness([10, 50], 1, lambda folder, out: [sys.executable, "-c", "pass"])
    printed = capsys.readouterr().out.splitlines()
    sizes = [at for at, line in enumerate(printed) if " lines: peaks (MiB) " in line]
    assert [printed[at].split(" lines")[0] for at in sizes] == ["10", "50"]
    for at in sizes:  # each size's runs, then their waits and steal
        figures = printed[at + 1].split("(core-s): ")[1].split("/")
        assert len(figures) == 2 and all(float(x) >= 0 for x in figures)
