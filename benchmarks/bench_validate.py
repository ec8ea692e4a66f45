"""What reading and validating claim lines costs, against reading the same file as text.

    python benchmarks/bench_validate.py [--lines 1000000] [--repeats 7] [--seed 20260630]

Three measurements, each run ``--repeats`` times (after one unrecorded warm-up; the clean and
the bad file by turns, and the bad one also against the clean run of its repeat), each run in a
fresh Python process so that its peak RSS is that job's alone (taken from the OS with
``os.wait4``, the same figure as ``/usr/bin/time -v``'s "Maximum resident set size"):

- baseline: ``pyarrow.csv`` reading the clean claims file with every column as text;
- read + validate: ``pipeline.run.validate_files`` on the clean claims file and its register;
- the same on a file of the same seed in which 1% of the rows carry one defect each.

"job s" is timed inside the child around the work alone; "process s" is the child's whole life
(interpreter start and imports included); "CPU s" is the child's user + system time, which
other work on a shared machine disturbs less than wall time. The generated files are kept under
``benchmarks/work/`` and reused while the line count, seed, defect share and generator are the
same.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
GENERATOR = HERE / "generate.py"
AS_OF = "2026-06-30T23:59:59"
BAD_FRACTION = 0.01
DEFAULT_SEED = 20260630


@dataclass(frozen=True)
class Dataset:
    """A generated claims file and its register."""

    claims: Path
    register: Path
    bad_rows: int


@dataclass(frozen=True)
class Measurement:
    """What to run in a child process, and on which files."""

    label: str
    kind: str
    dataset: Dataset


@dataclass(frozen=True)
class Sample:
    """One child run."""

    job_seconds: float
    process_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    report: dict[str, Any]


# --- the generated files ------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_dataset(lines: int, seed: int, bad_fraction: float) -> Dataset:
    """The files for ``lines``, ``seed`` and ``bad_fraction``, generated unless already there."""
    directory = WORK / f"lines{lines}-seed{seed}-bad{bad_fraction:g}"
    claims = directory / "claims.csv"
    register = directory / "authorizations.csv"
    meta_path = directory / "meta.json"
    wanted = {
        "lines": lines,
        "seed": seed,
        "bad_fraction": bad_fraction,
        "generator_sha256": _sha256(GENERATOR),
    }
    bad_rows = round(bad_fraction * lines)
    if meta_path.is_file() and claims.is_file() and register.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        sizes = {"claims": claims.stat().st_size, "register": register.stat().st_size}
        if meta.get("parameters") == wanted and meta.get("sizes") == sizes:
            return Dataset(claims, register, bad_rows)
    print(f"generating {lines:,} lines (seed {seed}, bad fraction {bad_fraction:g}) ...")
    started = time.perf_counter()
    command = [
        sys.executable,
        str(GENERATOR),
        "--lines",
        str(lines),
        "--seed",
        str(seed),
        "--bad-fraction",
        str(bad_fraction),
        "--out",
        str(directory),
    ]
    subprocess.run(command, check=True)
    sizes = {"claims": claims.stat().st_size, "register": register.stat().st_size}
    meta_path.write_text(
        json.dumps({"parameters": wanted, "sizes": sizes}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"  done in {time.perf_counter() - started:.1f} s: {sizes['claims'] / 2**20:,.0f} MiB")
    return Dataset(claims, register, bad_rows)


def _warm_page_cache(*paths: Path) -> None:
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass


# --- the child processes ------------------------------------------------------------------------


def _child_baseline(claims: str) -> dict[str, Any]:
    started = time.perf_counter()
    with open(claims, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    table = pacsv.read_csv(
        claims,
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": table.num_rows}


def _child_validate(claims: str, register: str) -> dict[str, Any]:
    # Imported here, not at the top: the baseline child must not pay for pandas and pandera.
    from pipeline.run import validate_files  # noqa: PLC0415

    started = time.perf_counter()
    result = validate_files(
        claims=[claims], authorizations=register, as_of=datetime.fromisoformat(AS_OF)
    )
    # The valid rows are made when first asked for; they are what a validation gives
    # the decisions, so they are timed with it.
    valid = len(result.claims.valid)
    seconds = time.perf_counter() - started
    assert result.register is not None
    rejected = result.claims.rejected_rows
    return {
        "seconds": seconds,
        "rows": valid + rejected,
        "valid": valid,
        "rejected": rejected,
        "rejects": len(result.claims.rejects),
        "register_valid": len(result.register.valid),
        "register_rejected": result.register.rejected_rows,
    }


def run_child(measurement: Measurement) -> Sample:
    """Run one measurement in a fresh interpreter; its peak RSS comes from ``wait4``."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        measurement.kind,
        "--claims",
        str(measurement.dataset.claims),
        "--authorizations",
        str(measurement.dataset.register),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        process_seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            message = err.read().decode("utf-8", errors="replace")[-4000:]
            raise RuntimeError(f"{measurement.label} failed ({child.returncode}):\n{message}")
        out.seek(0)
        report = json.loads(out.read().decode("utf-8").strip().splitlines()[-1])
    return Sample(
        job_seconds=float(report["seconds"]),
        process_seconds=process_seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        report=report,
    )


# --- the report ---------------------------------------------------------------------------------


def _median(samples: Sequence[Sample], field: str) -> float:
    return statistics.median(float(getattr(sample, field)) for sample in samples)


def _count(report: dict[str, Any], key: str) -> str:
    value = report.get(key)
    return "-" if value is None else f"{value:,}"


def print_table(
    lines: int, seed: int, repeats: int, results: dict[Measurement, list[Sample]]
) -> None:
    """Medians per measurement, with ratios against the baseline."""
    measurements = list(results)
    base = results[measurements[0]]
    base_time = _median(base, "job_seconds")
    base_rss = _median(base, "peak_rss_mib")
    print()
    print(
        f"{lines:,} claim lines, seed {seed}; median of {repeats} runs, each in a fresh process; "
        f"Python {platform.python_version()}, pandas {version('pandas')}, "
        f"pyarrow {version('pyarrow')}, pandera {version('pandera')}, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'measurement':<36}{'job s':>8}{'process s':>11}{'CPU s':>8}{'peak RSS MiB':>14}"
        f"{'x base s':>10}{'x base RSS':>12}{'rows valid':>13}{'rows rejected':>15}"
    )
    print(header)
    print("-" * len(header))
    for measurement in measurements:
        samples = results[measurement]
        job = _median(samples, "job_seconds")
        rss = _median(samples, "peak_rss_mib")
        report = samples[-1].report
        print(
            f"{measurement.label:<36}{job:>8.2f}{_median(samples, 'process_seconds'):>11.2f}"
            f"{_median(samples, 'cpu_seconds'):>8.2f}"
            f"{rss:>14,.0f}{job / base_time:>10.2f}{rss / base_rss:>12.2f}"
            f"{_count(report, 'valid'):>13}{_count(report, 'rejected'):>15}"
        )
    clean, bad = results[measurements[1]], results[measurements[2]]
    bad_report = bad[-1].report
    print()
    paired = statistics.median(
        b.job_seconds / c.job_seconds for c, b in zip(clean, bad, strict=True)
    )
    print(
        f"1% bad vs clean: x{_median(bad, 'job_seconds') / _median(clean, 'job_seconds'):.2f} "
        f"job time (paired x{paired:.2f}: the median of each run's ratio to the clean run "
        f"of its repeat), x{_median(bad, 'peak_rss_mib') / _median(clean, 'peak_rss_mib'):.2f} "
        f"peak RSS; {measurements[2].dataset.bad_rows:,} rows given one defect, "
        f"{bad_report['rejected']:,} rows rejected ({bad_report['rejects']:,} rejects rows; "
        "an empty member_id rejects every line of its claim)"
    )
    for measurement, samples in results.items():
        rows = {sample.report["rows"] for sample in samples}
        if rows != {lines}:
            print(f"WARNING: {measurement.label} accounted for {sorted(rows)} rows, not {lines:,}")
    print(
        "register rows valid/rejected: "
        f"{clean[-1].report['register_valid']:,}/{clean[-1].report['register_rejected']:,}; "
        "load average (1, 5, 15 min) at the end: "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg())
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Generate (or reuse) the files, run every measurement, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--child", choices=("baseline", "validate"), help=argparse.SUPPRESS)
    parser.add_argument("--claims", help=argparse.SUPPRESS)
    parser.add_argument("--authorizations", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "baseline":
        print(json.dumps(_child_baseline(args.claims)))
        return
    if args.child == "validate":
        print(json.dumps(_child_validate(args.claims, args.authorizations)))
        return
    if args.lines < 1 or args.repeats < 1:
        parser.error("--lines and --repeats must be at least 1")

    clean = ensure_dataset(args.lines, args.seed, 0.0)
    bad = ensure_dataset(args.lines, args.seed, BAD_FRACTION)
    measurements = [
        Measurement("baseline: pyarrow.csv, all as text", "baseline", clean),
        Measurement("read + validate, clean", "validate", clean),
        Measurement("read + validate, 1% bad rows", "validate", bad),
    ]
    _warm_page_cache(clean.claims, clean.register, bad.claims, bad.register)
    results: dict[Measurement, list[Sample]] = {m: [] for m in measurements}
    for measurement in measurements:  # warm-up: page cache, bytecode, first-touch costs
        run_child(measurement)
    for repeat in range(1, args.repeats + 1):
        # By turns (baseline, clean, bad; bad, clean, baseline; ...): a spell of the
        # machine then falls on the clean and the bad file as often.
        for measurement in measurements[:: 1 if repeat % 2 else -1]:
            sample = run_child(measurement)
            results[measurement].append(sample)
            print(
                f"run {repeat}/{args.repeats} {measurement.label}: {sample.job_seconds:.2f} s job, "
                f"{sample.process_seconds:.2f} s process, {sample.cpu_seconds:.2f} s CPU, "
                f"{sample.peak_rss_mib:,.0f} MiB",
                flush=True,
            )
    print_table(args.lines, args.seed, args.repeats, results)


if __name__ == "__main__":
    main()
