"""The whole nightly run against the DuckDB peer, on the same generated files.

    python benchmarks/bench_run.py [--lines 1000000 10000000] [--repeats 3] [--workers 2]
                                   [--partition-rows 200000] [--no-peer | --flat]
                                   [--peer-memory-limit 2GiB]

For each size: generate (once, seeded, under benchmarks/work/) a claims CSV and a register;
run ``adjudicate run`` (full validation, every rule, Parquet out) and the DuckDB peer
(``benchmarks/duckdb_peer.py``: the core rules) each in a fresh process under
``/usr/bin/time -v``, taking turns (see :func:`measure`); print each run's wall seconds
and the machine's disk waits and host steal meanwhile (:func:`timed`), then median wall
seconds, median peak RSS, the ratio of the medians ours / peer and the
median of each of our runs' ratio to the peer's run beside it;
then check that the two agree on every line where the core rules decide (voids and lines
whose units ran out are the only ones the peer cannot judge). ``--no-peer`` runs ours alone;
``--flat`` runs ours alone at every size given, the sizes taking turns, prints each run's
peak, wall seconds, disk waits and host steal, and sets the largest size's peak memory
against the smallest's (:func:`flatness`: ``make bench`` gives it 10M and 50M lines).
``--workers`` and ``--partition-rows`` are passed to ours (defaults: the job's own);
``--peer-memory-limit`` to the peer as DuckDB's ``memory_limit`` (default: DuckDB's own,
80% of the machine's memory): the peer held to the memory ours is held to.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from pipeline.workers import ROWS_PER_PARTITION, WORKERS

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
AS_OF = "2026-06-30"
SEED = 20261127


def generated(lines: int) -> Path:
    """The seeded inputs of ``lines`` lines, generated once."""
    folder = WORK / f"run-{lines}-{SEED}"
    if not (folder / "claims.csv").is_file():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "generate.py"),
                "--lines",
                str(lines),
                "--seed",
                str(SEED),
                "--out",
                str(folder),
            ],
            check=True,
        )
    return folder


def _tree_rss_kib(root: int) -> int:
    """The resident memory of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[pid] = int(fields.get("PPid", "0").strip())
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree)


class Run(NamedTuple):
    """One run: wall seconds, peak RSS (MiB), and the machine's cores' seconds waiting on
    the disk (``iowait``) and taken by the host (``steal``) meanwhile (NaN where
    ``/proc/stat`` is not there)."""

    wall: float
    rss: float
    waited: float
    stolen: float


def cpu_ticks() -> list[int] | None:
    """The machine's CPU time by kind, in ticks (``/proc/stat``'s first line)."""
    try:
        with open("/proc/stat") as stat:
            return [int(n) for n in stat.readline().split()[1:]]
    except OSError:
        return None


IOWAIT, STEAL = 4, 7
"""Where ``/proc/stat``'s CPU line counts the time waiting on the disk and the time the
host took (after user, nice, system, idle; iowait, irq, softirq, steal)."""


def host_seconds(before: list[int] | None, after: list[int] | None) -> tuple[float, float]:
    """The cores' seconds waiting on the disk and taken by the host between two readings
    of :func:`cpu_ticks` (NaN without both)."""
    if before is None or after is None or min(len(before), len(after)) <= STEAL:
        return math.nan, math.nan
    ticks = os.sysconf("SC_CLK_TCK")  # /proc/stat's ticks a second
    return (after[IOWAIT] - before[IOWAIT]) / ticks, (after[STEAL] - before[STEAL]) / ticks


def timed(command: list[str]) -> Run:
    """Wall seconds and peak RSS (MiB) of one command and its worker processes, and the
    disk waits and the host's steal on the machine meanwhile.

    The peak is the larger of ``/usr/bin/time -v``'s figure (one process) and the
    sum over the process tree sampled every 50 ms (workers run side by side). The waits
    and the steal are the whole machine's: where the spill's writeback runs, the host
    takes some of the cores' time (README, Performance, has the figures).
    """
    before = cpu_ticks()
    process = subprocess.Popen(
        ["/usr/bin/time", "-v", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak_tree = 0
    while process.poll() is None:
        peak_tree = max(peak_tree, _tree_rss_kib(process.pid))
        time.sleep(0.05)
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    assert wall and rss, stderr
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    waited, stolen = host_seconds(before, cpu_ticks())
    return Run(seconds, max(int(rss.group(1)), peak_tree) / 1024, waited, stolen)


def ours(
    folder: Path, out: Path, workers: int = WORKERS, partition_rows: int = ROWS_PER_PARTITION
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        "--claims",
        str(folder / "claims.csv"),
        "--authorizations",
        str(folder / "authorizations.csv"),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
        "--force",
        "--quiet",
        "--workers",
        str(workers),
        "--partition-rows",
        str(partition_rows),
    ]


def peer(folder: Path, out: Path, memory_limit: str | None = None) -> list[str]:
    limit = [] if memory_limit is None else ["--memory-limit", memory_limit]
    return [
        sys.executable,
        str(HERE / "duckdb_peer.py"),
        "--claims",
        str(folder / "claims.csv"),
        "--authorizations",
        str(folder / "authorizations.csv"),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
        *limit,
    ]


Command = tuple[Callable[[Path, Path], list[str]], Path]
"""What makes a command line from the inputs' folder and its output, and that output."""


def measure(commands: dict[str, Command], folder: Path, repeats: int) -> dict[str, list[Run]]:
    """Each command's runs (:class:`Run`), ``repeats`` each, taking turns and
    turning the order round every repeat (A B, B A, A B...): the machine's slower and
    faster spells fall on both alike, where all of one then all of the other set each
    against a different spell (10M lines, consecutive runs of the same code: 31.6 s and
    35.7 s)."""
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for repeat in range(repeats):
        turn = list(commands)
        for name in turn if repeat % 2 == 0 else reversed(turn):
            make, out = commands[name]
            if out.is_dir():
                shutil.rmtree(out)
            else:
                out.unlink(missing_ok=True)
            runs[name].append(timed(make(folder, out)))
    return runs


def flatness(sizes: list[int], repeats: int, make: Callable[[Path, Path], list[str]]) -> None:
    """Ours alone at each size, ``repeats`` runs each, the sizes taking turns as
    :func:`measure`'s commands do: each size's runs' peak RSS and wall seconds, their
    medians, and the largest size's median peak against the smallest's (with the median
    of each run's ratio to the run beside it). The peaks of one size vary by some 20 MiB
    from run to run (two workers peaking together or not), and from day to day by more
    (the machine's reclaiming of cold pages); only runs side by side tell whether
    memory grows with the input."""

    def on(folder: Path) -> Callable[[Path, Path], list[str]]:
        return lambda _, out: make(folder, out)  # each size its own inputs

    out = WORK / "ours-out"
    commands: dict[str, Command] = {f"{n:,}": (on(generated(n)), out) for n in sizes}
    runs = measure(commands, WORK, repeats)
    for name, mine in runs.items():
        peaks = " ".join(f"{run.rss:.0f}" for run in mine)
        walls = " ".join(f"{run.wall:.1f}" for run in mine)
        wall, rss = medians(mine)
        print(f"{name} lines: peaks (MiB) {peaks}, median {rss:.0f}; ", end="")
        print(f"runs (s) {walls}, median {wall:.1f}", flush=True)
        print(host_line(mine), flush=True)
    small, large = runs[f"{min(sizes):,}"], runs[f"{max(sizes):,}"]
    paired = statistics.median(b.rss / a.rss for a, b in zip(small, large, strict=True))
    print(
        f"peak memory {max(sizes):,} lines / {min(sizes):,} lines: "
        f"{medians(large)[1] / medians(small)[1]:.3f} (medians of {repeats} runs each, "
        f"by turns; paired {paired:.3f})"
    )


def host_line(runs: list[Run]) -> str:
    """The line printed under some runs' times: each run's disk waits and host steal."""
    figures = " ".join(f"{run.waited:.1f}/{run.stolen:.1f}" for run in runs)
    return f"  the cores' disk waits / host steal (core-s): {figures}"


def medians(runs: list[Run]) -> tuple[float, float]:
    """Median wall seconds and median peak MiB of some runs."""
    return statistics.median(r.wall for r in runs), statistics.median(r.rss for r in runs)


def _members_short_of_units(mine: pd.DataFrame, register: Path) -> set[str]:
    """Members whose lines needing authorization ask for more units than were approved.

    For them (and for members with a line of several units, or one whose units
    ran out) which line is authorized depends on units, which the peer ignores.
    """
    rows = pd.read_csv(register, dtype=str).sort_values("recorded_at", kind="stable")
    latest = rows.drop_duplicates(["authorization_id", "hcpcs_code"], keep="last")
    approved = latest[latest["status"].str.upper().eq("APPROVED")]
    granted = pd.to_numeric(approved["units_approved"]).groupby(approved["member_id"]).sum()
    needing = mine[mine["decision"].astype(str).isin(["AUTHORIZED", "PEND", "DENY"])]
    units = pd.to_numeric(needing["service_unit_quantity"]).fillna(1.0)
    asked = units.groupby(needing["member_id"].astype(str)).sum()
    short = asked.gt(granted.reindex(asked.index, fill_value=0))
    return set(short[short].index)


def disagreements(ours_dir: Path, peer_file: Path, register: Path) -> tuple[int, int]:
    """Lines where both judge by the core rules, and how many of them differ.

    The peer has no units, voids or never-deny-on-bad-data: the lines of members
    whose authorizations ran out of units (where an exhausted approval can fall
    back to a pending one, or deny), voids, and lines pended for an invalid
    register row are the ones it cannot judge.
    """
    key = ["claim_id", "claim_line_number"]
    mine = pd.read_parquet(
        ours_dir / "adjudicated.parquet",
        columns=[*key, "member_id", "decision", "reason", "service_unit_quantity"],
    )
    theirs = pd.read_parquet(peer_file, columns=[*key, "decision", "claim_frequency_code"])
    both = mine.merge(theirs, on=key, suffixes=("", "_peer"))
    reason = both["reason"].astype(str)
    multi_unit = pd.to_numeric(both["service_unit_quantity"]).fillna(1.0).gt(1)
    out_of_units = _members_short_of_units(mine, register) | set(
        both.loc[reason.eq("UNITS_EXCEEDED") | multi_unit, "member_id"]
    )
    judged = both[
        both["claim_frequency_code"].ne("8").fillna(True)
        & ~reason.eq("AUTHORIZATION_RECORD_INVALID")
        & ~both["member_id"].isin(out_of_units)
    ]
    differ = judged["decision"].astype(str).ne(judged["decision_peer"].astype(str))
    return len(judged), int(differ.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=WORKERS, help="ours: --workers")
    parser.add_argument(
        "--partition-rows", type=int, default=ROWS_PER_PARTITION, help="ours: --partition-rows"
    )
    parser.add_argument("--no-peer", action="store_true", help="run ours alone")
    parser.add_argument(
        "--peer-memory-limit", help="the peer's DuckDB memory_limit, e.g. 2GiB (default: its own)"
    )
    parser.add_argument(
        "--flat",
        action="store_true",
        help="ours alone, the sizes by turns: peak memory of the largest against the smallest",
    )
    args = parser.parse_args()
    make = functools.partial(ours, workers=args.workers, partition_rows=args.partition_rows)
    if args.flat:
        flatness(args.lines, args.repeats, make)
        return
    rows = []
    for lines in args.lines:
        folder = generated(lines)
        ours_out, peer_out = WORK / "ours-out", WORK / "peer.parquet"
        repeats = args.repeats if lines <= 2_000_000 else max(1, args.repeats // 3)
        # The peer runs first, as it always has: its turn, then ours, then ours, then its.
        commands: dict[str, Command] = {}
        if not args.no_peer:
            commands["duckdb"] = (
                functools.partial(peer, memory_limit=args.peer_memory_limit),
                peer_out,
            )
        commands["ours"] = (make, ours_out)
        runs = measure(commands, folder, repeats)
        for name, mine in runs.items():
            walls = " ".join(f"{run.wall:.2f}" for run in mine)
            print(f"{lines:,} lines, {name} runs (s): {walls}", flush=True)
            print(host_line(mine), flush=True)
        our_wall, our_rss = medians(runs["ours"])
        peer_wall = peer_rss = paired = math.nan
        if not args.no_peer:
            peer_wall, peer_rss = medians(runs["duckdb"])
            # Each of ours against the peer's run beside it (same spell of the machine).
            paired = statistics.median(
                o.wall / p.wall for o, p in zip(runs["ours"], runs["duckdb"], strict=True)
            )
        judged = differ = 0
        if not args.no_peer:
            judged, differ = disagreements(ours_out, peer_out, folder / "authorizations.csv")
        rows.append(
            (lines, our_wall, our_rss, peer_wall, peer_rss, paired, repeats, judged, differ)
        )
    print(
        f"{'lines':>11} {'ours s':>8} {'ours MiB':>9} {'duckdb s':>9} {'duckdb MiB':>10} "
        f"{'ratio':>6} {'paired':>6} {'runs':>5} {'agree on':>10} {'differ':>7}"
    )
    for lines, ow, orss, pw, prss, paired, repeats, judged, differ in rows:
        print(
            f"{lines:>11,} {ow:>8.2f} {orss:>9.0f} {pw:>9.2f} {prss:>10.0f} {ow / pw:>6.2f} "
            f"{paired:>6.2f} {repeats:>5} {judged:>10,} {differ:>7}"
        )
    print(
        f"medians of the runs, ours and the peer's taking turns; ours with --workers "
        f"{args.workers} --partition-rows {args.partition_rows:,}; duckdb's memory_limit "
        f"{args.peer_memory_limit or 'its default'}; ratio = ours / duckdb "
        "median wall time, paired = the median of each run's ratio to the peer's run beside "
        "it; same files, same process tree"
    )


if __name__ == "__main__":
    main()
