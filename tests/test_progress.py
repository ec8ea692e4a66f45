"""Progress for people, JSON lines for schedulers, and no personal data in either."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from pipeline.progress import STAGES, JsonLog, TerminalProgress

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def run_job(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The job as a scheduler runs it: a child process whose output is not a terminal."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "--claims",
            str(SAMPLES / "claims.csv"),
            "--authorizations",
            str(SAMPLES / "authorizations.csv"),
            "--as-of",
            "2026-06-30",
            "--max-reject-rate",
            "0.15",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_progress_when_output_is_not_a_terminal(tmp_path: Path) -> None:
    done = run_job(tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "\r" not in done.stdout
    assert not any(stage in done.stdout for stage in ("[1/4]", "validating", "deciding"))


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    done = run_job(tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_json_log_lines_parse_and_name_every_stage(tmp_path: Path) -> None:
    done = run_job(tmp_path / "out", "--log-format", "json", "--quiet")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [r["stage"] for r in records] == list(STAGES)
    assert all(isinstance(r["seconds"], float) and r["seconds"] >= 0 for r in records)
    assert records[0]["rows"] == 77
    assert records[2]["rows"] == 67
    assert records[2]["decisions"] == {
        "AUTHORIZED": 20,
        "DENY": 16,
        "EXEMPT": 13,
        "NOT_APPLICABLE": 15,
        "PEND": 3,
    }


def test_no_member_id_or_npi_in_any_output_a_person_or_log_reads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_job(out, "--log-format", "json")
    claims = pd.read_csv(SAMPLES / "claims.csv", dtype=str, keep_default_na=False)
    members = set(claims["member_id"]) - {""}
    npis = set(claims["rendering_npi"]) | set(claims["facility_npi"]) | set(claims["billing_npi"])
    npis -= {""}
    said = done.stdout + done.stderr
    assert not [m for m in members if m in said]
    assert not [n for n in npis if n in said]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert not [m for m in members if m in report]


def test_terminal_progress_rewrites_one_line_per_stage() -> None:
    screen = io.StringIO()
    progress = TerminalProgress(screen)
    progress.advance("reading", 1_000)
    progress.advance("reading", 500)
    progress.finish("reading")
    text = screen.getvalue()
    assert "\r[1/4] reading" in text
    assert "1,500 rows" in text
    assert text.endswith("\n")


def test_json_log_writes_one_object_per_finished_stage() -> None:
    stream = io.StringIO()
    log = JsonLog(stream)
    log.advance("deciding", 10)
    assert stream.getvalue() == ""
    log.finish("deciding", {"DENY": 1})
    record = json.loads(stream.getvalue())
    assert (record["stage"], record["rows"], record["decisions"]) == ("deciding", 10, {"DENY": 1})
