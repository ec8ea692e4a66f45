"""``adjudicate validate`` as a user meets it: exit codes, first lines, files written."""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import pipeline.io
import pipeline.run
from pipeline.cli import main, parse_as_of
from pipeline.io import SOURCE_FILE
from pipeline.progress import JsonLog
from pipeline.run import read_claims
from pipeline.validate import validate_claims
from schemas.outputs import REJECT_COLUMNS, REJECT_SCHEMA

PROJECT = Path(__file__).resolve().parents[1]
MEMBERS = ("MBR-7Q2X-0001", "MBR-7Q2X-0002", "MBR-7Q2X-0003")
CLAIM_COLUMNS = [
    "claim_id",
    "claim_line_number",
    "claim_type",
    "member_id",
    "plan_type",
    "claim_start_date",
    "claim_line_start_date",
    "place_of_service_code",
    "bill_type_code",
    "revenue_center_code",
    "hcpcs_code",
    "rendering_npi",
    "facility_npi",
    "charge_amount",
    "payer",
]
CLAIM_ROWS = [
    # two valid lines: a telehealth professional line and an institutional room line
    [
        "P1",
        "1",
        "professional",
        MEMBERS[0],
        "HMO",
        "",
        "2026-03-10",
        "02",
        "",
        "",
        "70553",
        "1234567893",
        "",
        "1200.00",
        "ACME",
    ],
    [
        "I1",
        "1",
        "institutional",
        MEMBERS[1],
        "ppo",
        "2026-03-12",
        "",
        "",
        "0131",
        "0001",
        "",
        "",
        "1467498014",
        "300.00",
        "ACME",
    ],
    # POS that lost its leading zero
    [
        "P2",
        "1",
        "professional",
        MEMBERS[0],
        "HMO",
        "",
        "2026-03-10",
        "2",
        "",
        "",
        "70553",
        "1234567893",
        "",
        "1200.00",
        "ACME",
    ],
    # a claim whose lines name two members
    [
        "P3",
        "1",
        "professional",
        MEMBERS[0],
        "HMO",
        "",
        "2026-03-10",
        "11",
        "",
        "",
        "70553",
        "1003811290",
        "",
        "900.00",
        "ACME",
    ],
    [
        "P3",
        "2",
        "professional",
        MEMBERS[2],
        "HMO",
        "",
        "2026-03-10",
        "11",
        "",
        "",
        "70551",
        "1003811290",
        "",
        "900.00",
        "ACME",
    ],
]
REGISTER_COLUMNS = [
    "authorization_id",
    "member_id",
    "hcpcs_code",
    "status",
    "valid_from",
    "valid_to",
    "units_approved",
    "provider_npi",
    "recorded_at",
]
REGISTER_ROWS = [
    [
        "A1",
        MEMBERS[0],
        "70553",
        "approved",
        "2026-03-01",
        "2026-03-31",
        "1",
        "1234567893",
        "2026-02-20T09:00:00Z",
    ],
    ["A2", MEMBERS[2], "70553", "MAYBE", "2026-03-01", "2026-03-31", "1", "", "2026-02-20"],
]
AS_OF = "2026-06-30"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def claims(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "claims.csv", CLAIM_COLUMNS, CLAIM_ROWS)


@pytest.fixture
def register(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "register.csv", REGISTER_COLUMNS, REGISTER_ROWS)


def validate(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def publish(command: str, claims: Path, register: Path, out: Path, *extra: str) -> Result:
    """``validate`` or ``run`` of one claims file and a register, publishing to ``out``."""
    return CliRunner().invoke(
        main,
        [command, "--claims", str(claims), "--authorizations", str(register)]
        + ["--as-of", AS_OF, "--out", str(out), *extra],
    )


def assert_no_member_ids(result: Result) -> None:
    for member in MEMBERS:
        assert member not in result.stdout
        assert member not in result.stderr


# --- success ---------------------------------------------------------------------


def test_validate_prints_counts_per_file_and_check(claims: Path) -> None:
    result = validate("--claims", claims, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"claims {claims}: 5 rows read, 2 valid, 3 rejected"
    checks = {tuple(line.split()) for line in lines[1:]}
    assert checks == {
        ("member_id", "differs_within_claim", "2"),
        ("place_of_service_code", "place_of_service_format", "1"),
    }
    assert result.stderr == ""
    assert_no_member_ids(result)


def test_validate_counts_the_register_too(claims: Path, register: Path) -> None:
    result = validate("--claims", claims, "--authorizations", register, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert (
        f"authorizations {register}: 2 rows read, 1 valid, 1 rejected" in result.stdout.splitlines()
    )
    assert_no_member_ids(result)


def test_several_claims_files_are_one_run(claims: Path, tmp_path: Path) -> None:
    """(claim_id, claim_line_number) is unique in a run, not only in a file."""
    more = write_csv(tmp_path / "more.csv", CLAIM_COLUMNS, [CLAIM_ROWS[0]])
    result = validate("--claims", claims, "--claims", more, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"claims {claims}: 5 rows read, 1 valid, 4 rejected" in lines
    assert f"claims {more}: 1 rows read, 0 valid, 1 rejected" in lines


@pytest.mark.parametrize(
    ("as_of", "valid"),
    [
        ("2026-03-12", 2),
        ("2026-03-10", 1),
        ("2026-03-10T00:00:00Z", 1),
        ("2026-03-10T04:00:00+05:00", 0),
        ("2026-03-09", 0),
    ],
    ids=[
        "after both services",
        "a bare date is the whole day",
        "midnight UTC stands on the day",
        "an offset is converted to UTC",
        "before both services",
    ],
)
def test_as_of_decides_which_services_have_happened(claims: Path, as_of: str, valid: int) -> None:
    result = validate("--claims", claims, "--as-of", as_of)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith(
        f"5 rows read, {valid} valid, {5 - valid} rejected"
    )


# --- the files --out writes -----------------------------------------------------------


def test_out_publishes_rejects_and_summary(claims: Path, register: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = validate(
        "--claims", claims, "--authorizations", register, "--as-of", AS_OF, "--out", out
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"published {out}"
    assert sorted(p.name for p in out.iterdir()) == ["rejects.parquet", "summary.json"]

    rejects = pd.read_parquet(out / "rejects.parquet")
    assert tuple(rejects.columns) == REJECT_COLUMNS
    assert list(zip(rejects["source"], rejects["source_row"], rejects["check"], strict=True)) == [
        ("claims", 3, "place_of_service_format"),
        ("claims", 4, "differs_within_claim"),
        ("claims", 5, "differs_within_claim"),
        ("authorizations", 2, "status_known"),
    ]
    assert rejects.loc[0, "value"] == "2"

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["as_of"] == "2026-06-30T23:59:59.999999"
    counts = {
        (e["source"], e["path"]): (e["rows_read"], e["valid"], e["rejected"])
        for e in summary["inputs"]
    }
    assert counts == {
        ("claims", str(claims)): (5, 2, 3),
        ("authorizations", str(register)): (2, 1, 1),
    }
    assert_no_member_ids(result)


@pytest.mark.parametrize("rejected", ["none", "one with no value", "one with a value"])
def test_rejects_parquet_has_one_schema_and_no_library_metadata(
    claims: Path, register: Path, tmp_path: Path, rejected: str
) -> None:
    rows = [CLAIM_ROWS[0]]
    if rejected != "none":
        bad = list(CLAIM_ROWS[0])
        bad[CLAIM_COLUMNS.index("claim_id")] = "P9"
        at = "plan_type" if rejected == "one with no value" else "place_of_service_code"
        bad[CLAIM_COLUMNS.index(at)] = "" if rejected == "one with no value" else "2"
        rows.append(bad)
    path = write_csv(tmp_path / "few.csv", CLAIM_COLUMNS, rows)
    out = {command: tmp_path / command for command in ("validate", "run")}
    for command, where in out.items():
        extra = ["--force"] if command == "run" else []
        result = publish(command, path, register, where, *extra)
        assert result.exit_code == 0, result.output
        written = pq.read_schema(where / "rejects.parquet")
        assert written.metadata is None
        assert written == REJECT_SCHEMA
        rejects = pq.read_table(where / "rejects.parquet")
        claims_rejects = rejects.filter(pa.compute.equal(rejects["source"], "claims"))
        assert claims_rejects.num_rows == (0 if rejected == "none" else 1)


def test_out_refuses_an_existing_directory(claims: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    result = validate("--claims", claims, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {out} already exists; a run never overwrites a published directory"
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert result.stdout == ""


def test_out_refuses_an_existing_file_as_it_does_a_directory(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.write_text("mine", encoding="utf-8")
    for command in ("validate", "run"):
        result = publish(command, claims, register, out)
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[0] == (
            f"Error: {out} already exists; a run never overwrites a published directory"
        )
        assert out.read_text(encoding="utf-8") == "mine"


# --- failures ----------------------------------------------------------------------


def test_missing_required_columns_are_all_named_on_the_first_line(tmp_path: Path) -> None:
    dropped = {"member_id", "plan_type", "charge_amount"}
    keep = [i for i, c in enumerate(CLAIM_COLUMNS) if c not in dropped]
    path = write_csv(
        tmp_path / "claims.csv",
        [CLAIM_COLUMNS[i] for i in keep],
        [[row[i] for i in keep] for row in CLAIM_ROWS],
    )
    out = tmp_path / "out"
    result = validate("--claims", path, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path} is missing required columns: member_id, plan_type, charge_amount"
    )
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]  # no staging directory left behind


def test_a_required_column_named_in_another_case_is_named_beside_it(tmp_path: Path) -> None:
    header = ["Claim_ID" if c == "claim_id" else c for c in CLAIM_COLUMNS]
    header = ["CLAIM_START_DATE" if c == "claim_start_date" else c for c in header]
    header = [c for c in header if c != "claim_line_start_date"]
    keep = [i for i, c in enumerate(CLAIM_COLUMNS) if c != "claim_line_start_date"]
    path = write_csv(
        tmp_path / "claims.csv", header, [[row[i] for i in keep] for row in CLAIM_ROWS]
    )
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path} is missing required columns: claim_id, claim_line_start_date or "
        "claim_start_date (names are matched as the contract writes them, in lower case; "
        "the file has Claim_ID, CLAIM_START_DATE)"
    )


def test_a_file_with_no_date_column_names_both(tmp_path: Path) -> None:
    dropped = {"claim_start_date", "claim_line_start_date"}
    keep = [i for i, c in enumerate(CLAIM_COLUMNS) if c not in dropped]
    path = write_csv(
        tmp_path / "claims.csv",
        [CLAIM_COLUMNS[i] for i in keep],
        [[row[i] for i in keep] for row in CLAIM_ROWS],
    )
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path} is missing required columns: claim_line_start_date or claim_start_date"
    )


@pytest.mark.parametrize(
    ("column", "named"),
    [
        ("decision", "decision"),
        ("run_id", "run_id"),
        ("source_row", "source_row"),
        ("_span", "_span"),
        # A reader that folds case would take it for the job's own.
        ("Decision", "Decision (as decision)"),
        ("DENIED_AMOUNT", "DENIED_AMOUNT (as denied_amount)"),
        ("Source_File", "Source_File (as source_file)"),
    ],
)
def test_a_column_named_like_one_the_job_adds_is_refused(
    column: str, named: str, register: Path, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "claims.csv", [*CLAIM_COLUMNS, column], [[*r, "x"] for r in CLAIM_ROWS]
    )
    out = tmp_path / "out"
    for command in ("validate", "run"):
        result = publish(command, path, register, out)
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[0] == (
            f"Error: {path} has columns the job writes itself: {named}; "
            "rename them to pass them through"
        )
        assert "Traceback" not in result.output
        assert not out.exists()


def test_a_claims_file_given_twice_is_refused(claims: Path, register: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.csv"
    again.symlink_to(claims)
    out = tmp_path / "out"
    for twice, named in [
        ((claims, claims), f"{claims}"),
        ((claims, again), f"{claims} and {again}"),
    ]:
        for command in ("validate", "run"):
            result = CliRunner().invoke(
                main,
                [command, "--claims", str(twice[0]), "--claims", str(twice[1])]
                + ["--authorizations", str(register), "--as-of", AS_OF, "--out", str(out)],
            )
            assert result.exit_code == 1, result.output
            assert result.stderr.splitlines()[0] == (
                f"Error: {named}: the same file is given twice; give it once"
            )
            assert not out.exists()


def test_a_register_missing_columns_fails_the_run(claims: Path, tmp_path: Path) -> None:
    header = [c for c in REGISTER_COLUMNS if c not in ("status", "recorded_at")]
    path = write_csv(tmp_path / "register.csv", header, [])
    result = validate("--claims", claims, "--authorizations", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path} is missing required columns: status, recorded_at"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    "ending", ["", "\n", "\r\n", "\n\n"], ids=["none", "LF", "CRLF", "blank line"]
)
@pytest.mark.parametrize("bom", ["", "\ufeff"], ids=["", "BOM"])
def test_a_file_of_a_header_alone_is_a_file_of_no_rows(
    tmp_path: Path, ending: str, bom: str
) -> None:
    claims = tmp_path / "claims.csv"
    claims.write_text(bom + ",".join(CLAIM_COLUMNS) + ending, encoding="utf-8")
    zipped = tmp_path / "more.csv.gz"
    zipped.write_bytes(gzip.compress(claims.read_bytes()))
    register = tmp_path / "register.csv"
    register.write_text(bom + ",".join(REGISTER_COLUMNS) + ending, encoding="utf-8")
    result = validate("--claims", claims, "--claims", zipped, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        f"claims {claims}: 0 rows read, 0 valid, 0 rejected",
        f"claims {zipped}: 0 rows read, 0 valid, 0 rejected",
    ]
    result = publish("run", claims, register, tmp_path / "out")
    assert result.exit_code == 3, result.output  # held: the register has no valid rows
    assert "the authorization register has no valid rows" in result.stderr


def test_a_row_of_blanks_after_the_header_is_a_broken_row_not_no_row(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(",".join(CLAIM_COLUMNS) + "\n   \n", encoding="utf-8")
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1, result.output
    assert "columns, got 1 in a row" in result.stderr


def test_a_file_with_old_mac_line_breaks_is_read(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    lines = [",".join(CLAIM_COLUMNS), ",".join(CLAIM_ROWS[0])]
    path.write_bytes(("\r".join(lines) + "\r").encode("utf-8"))
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"claims {path}: 1 rows read, 1 valid, 0 rejected"


def test_a_value_longer_than_pythons_csv_field_limit_is_read(tmp_path: Path) -> None:
    # The header alone is read by Python's csv module, which refuses fields over 131,072
    # characters; the rows are Arrow's to read.
    long_note = "x" * 200_000
    path = write_csv(
        tmp_path / "claims.csv", [*CLAIM_COLUMNS, "note"], [[*CLAIM_ROWS[0], long_note]]
    )
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"claims {path}: 1 rows read, 1 valid, 0 rejected"


def test_a_file_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"Error: {path}: no such file"


def test_a_directory_given_as_a_file_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.mkdir()
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path}: not a regular file (a directory, a pipe or a device)"
    )


def test_an_unsupported_file_type(tmp_path: Path) -> None:
    path = tmp_path / "claims.xlsx"
    path.write_bytes(b"not a spreadsheet")
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path}: unsupported file type; expected .csv, .csv.gz or .parquet"
    )


def test_a_broken_row_fails_the_file_without_quoting_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "claims.csv", CLAIM_COLUMNS, [[*CLAIM_ROWS[0], "stray"]])
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(f"Error: {path}: cannot be read as a UTF-8 CSV")
    assert_no_member_ids(result)


def test_a_row_longer_than_the_readers_block_is_named_as_such(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    header, first, *rest = claims.read_text().splitlines(keepends=True)
    path = tmp_path / "long.csv"
    long = "x" * (2 * 2**20)
    path.write_text(
        header.rstrip("\n")
        + ",note\n"
        + first.rstrip("\n")
        + f",{long}\n"
        + "".join(line.rstrip("\n") + ",n\n" for line in rest)
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "--claims", str(path), "--authorizations", str(register), "--as-of", AS_OF]
        + ["--out", str(out)],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path}: cannot be read as a UTF-8 CSV file: a row lies across more than two "
        "of the reader's 1 MiB blocks (a row longer than 1 to 2 MiB, by where it falls: a "
        "value that long in a column the job passes through?)"
    )
    assert not out.exists()


@pytest.mark.parametrize("kept", [0.5, 0.9], ids=["cut in its header's MiB", "cut past it"])
def test_a_gzip_file_cut_short_fails_the_run(
    claims: Path, register: Path, tmp_path: Path, kept: float
) -> None:
    header, *rows = claims.read_bytes().splitlines(keepends=True)
    lines = header + b"".join(rows) * (3 * 2**20 // len(b"".join(rows)))
    packed = gzip.compress(lines, compresslevel=1)
    path = tmp_path / "claims.csv.gz"
    path.write_bytes(packed[: int(len(packed) * kept)])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "--claims", str(path), "--authorizations", str(register), "--as-of", AS_OF]
        + ["--out", str(out), "--partition-rows", "1000", "--workers", "2"],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path}: cannot be read as a UTF-8 CSV file: Truncated compressed stream"
    )
    assert not out.exists()


def test_a_csv_gz_file_that_is_not_gzip_says_so(claims: Path, tmp_path: Path) -> None:
    path = tmp_path / "claims.csv.gz"
    shutil.copyfile(claims, path)  # plain text, named as gzip
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path}: cannot be read as a UTF-8 CSV file: not gzip"
    )
    assert_no_member_ids(result)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-06-30", datetime(2026, 6, 30, 23, 59, 59, 999999)),
        ("20260630", datetime(2026, 6, 30, 23, 59, 59, 999999)),
        ("2026-06-30T06:00:00Z", datetime(2026, 6, 30, 6)),
        ("2026-06-30t06:00:00+05:00", datetime(2026, 6, 30, 1)),
        ("2026-06-30 06:00:00.250", datetime(2026, 6, 30, 6, 0, 0, 250000)),
    ],
    ids=["a date", "a date, basic", "a moment", "a lowercase t", "a fraction of a second"],
)
def test_as_of_is_a_moment_to_the_microsecond(text: str, moment: datetime) -> None:
    def fail(message: str) -> None:
        raise AssertionError(message)

    assert parse_as_of(text, fail) == moment


@pytest.mark.parametrize(
    "as_of",
    ["2026-13-01", "30/06/2026", "yesterday", "", "9999-12-31T23:59:59-05:00"],
    ids=["month 13", "day first", "a word", "empty", "past year 9999 in UTC"],
)
def test_a_malformed_as_of_is_a_usage_error(claims: Path, as_of: str) -> None:
    result = validate("--claims", claims, "--as-of", as_of)
    assert result.exit_code == 2
    assert "--as-of" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("option", ["--max-reject-rate", "--max-denial-rate"])
@pytest.mark.parametrize("rate", ["nan", "1.5", "-0.1"])
def test_a_guard_rate_not_from_0_to_1_is_a_usage_error(
    claims: Path, register: Path, tmp_path: Path, option: str, rate: str
) -> None:
    # nan most of all: no share is above it, so the guard would never hold a run.
    result = publish("run", claims, register, tmp_path / "out", option, rate)
    assert result.exit_code == 2, result.output
    assert option in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["run", "validate"])
def test_an_out_the_file_system_refuses_is_a_message_not_a_traceback(
    claims: Path, register: Path, tmp_path: Path, command: str
) -> None:
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "out"  # through a file: no directory can be made there
    result = publish(command, claims, register, out, *(["--force"] if command == "run" else []))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ")
    assert f"nothing was published to {out}" in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_a_file_without_its_header_names_no_value(tmp_path: Path) -> None:
    # Its first row read as the header: a member id twice in it (as member and as payer's
    # own reference, say) must not be echoed as a column named twice.
    row = [*CLAIM_ROWS[0][:-1], MEMBERS[0]]
    assert row.count(MEMBERS[0]) == 2
    headless = tmp_path / "headless.csv"
    headless.write_text("\n".join(",".join(r) for r in [row, *CLAIM_ROWS[1:]]) + "\n")
    result = validate("--claims", headless, "--as-of", AS_OF)
    assert result.exit_code == 1, result.output
    assert f"{headless} is missing required columns: claim_id" in result.stderr
    assert_no_member_ids(result)


def test_a_utf16_file_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(",".join(CLAIM_COLUMNS) + "\n", encoding="utf-16")
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 1, result.output
    assert f"{path}: cannot be read as a UTF-8 CSV file: it is UTF-16 text" in result.stderr


def test_a_header_naming_a_column_twice_names_it(tmp_path: Path) -> None:
    doubled = write_csv(tmp_path / "doubled.csv", [*CLAIM_COLUMNS, "payer"], [])
    result = validate("--claims", doubled, "--as-of", AS_OF)
    assert result.exit_code == 1, result.output
    assert f"{doubled}: the header names a column twice: payer" in result.stderr
    blank = write_csv(tmp_path / "blank.csv", [*CLAIM_COLUMNS, "", ""], [])
    result = validate("--claims", blank, "--as-of", AS_OF)
    assert result.exit_code == 1, result.output
    assert f"{blank}: the header names a column twice: (an empty name)" in result.stderr


def test_claims_are_required(tmp_path: Path) -> None:
    result = validate("--as-of", AS_OF)
    assert result.exit_code == 2
    assert "--claims" in result.stderr


def test_python_dash_m_pipeline_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: python -m pipeline")
    for command in ("run", "validate", "check-code", "verify"):
        assert command in done.stdout


# --- the same claims in every file format -------------------------------------------


def formats(claims: Path) -> dict[str, Path]:
    """The claims file as CSV, gzipped CSV (named in lower and in upper case) and
    Parquet with text columns."""
    gz = claims.with_name("claims.csv.gz")
    with claims.open("rb") as plain, gzip.open(gz, "wb") as packed:
        shutil.copyfileobj(plain, packed)
    shouted = shutil.copyfile(gz, claims.with_name("CLAIMS.CSV.GZ"))
    table = pacsv.read_csv(
        claims,
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(CLAIM_COLUMNS, pa.string()),
            strings_can_be_null=False,
        ),
    )
    parquet = claims.with_name("claims.parquet")
    pq.write_table(table, parquet)
    padded = claims.with_name("padded.parquet")  # blanks around names, as a header may have
    names = [
        f" {n} " if n in ("claim_id", "place_of_service_code") else n for n in table.column_names
    ]
    pq.write_table(table.rename_columns(names), padded)
    return {
        "csv": claims,
        "csv.gz": gz,
        "CSV.GZ": shouted,
        "parquet": parquet,
        "parquet, names padded": padded,
    }


def test_csv_gz_and_parquet_are_read_like_the_csv(claims: Path, tmp_path: Path) -> None:
    frames = {}
    for kind, path in formats(claims).items():
        out = tmp_path / f"out-{kind}"
        result = validate("--claims", path, "--as-of", AS_OF, "--out", out)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == f"claims {path}: 5 rows read, 2 valid, 3 rejected"
        rejects = pd.read_parquet(out / "rejects.parquet").drop(columns="source_file")
        lines, _ = read_claims([str(path)])
        valid = validate_claims(lines, pd.Timestamp(AS_OF).to_pydatetime()).valid
        frames[kind] = (valid.drop(columns=SOURCE_FILE), rejects)
    csv_valid, csv_rejects = frames["csv"]
    assert csv_valid["place_of_service_code"].tolist()[0] == "02"
    assert csv_valid["bill_type_code"].tolist()[1] == "0131"
    assert csv_rejects.loc[0, "value"] == "2"
    for kind in ("csv.gz", "CSV.GZ", "parquet", "parquet, names padded"):
        valid, rejects = frames[kind]
        pd.testing.assert_frame_equal(valid, csv_valid, obj=f"{kind} valid lines")
        pd.testing.assert_frame_equal(rejects, csv_rejects, obj=f"{kind} rejects")


def test_typed_parquet_columns_are_read_as_their_text(tmp_path: Path) -> None:
    """A Parquet writer's dates, integers and decimals arrive as the text a CSV would hold."""
    table = pa.table(
        {
            "claim_id": ["P1"],
            "claim_line_number": pa.array([1], pa.int32()),
            "claim_type": ["professional"],
            "member_id": [MEMBERS[0]],
            "plan_type": ["HMO"],
            "claim_line_start_date": pa.array([pd.Timestamp("2026-03-10").date()], pa.date32()),
            "place_of_service_code": ["02"],
            "hcpcs_code": ["70553"],
            "rendering_npi": pa.array([1234567893], pa.int64()),
            "charge_amount": pa.array([Decimal("1200.00")], pa.decimal128(10, 2)),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    result = validate("--claims", path, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"claims {path}: 1 rows read, 1 valid, 0 rejected"
    lines, _ = read_claims([str(path)])
    row = lines.iloc[0]
    assert (row["claim_line_number"], row["claim_line_start_date"]) == ("1", "2026-03-10")
    assert (row["rendering_npi"], row["charge_amount"]) == ("1234567893", "1200.00")


def test_floating_point_parquet_values_keep_their_point_and_are_rejected(
    tmp_path: Path,
) -> None:
    """``70553.0`` is rejected in a Parquet file of doubles as in a CSV file, not read as
    ``70553``; a double that is not whole reads as its digits."""
    table = pa.table(
        {
            "claim_id": ["P1", "P2"],
            "claim_line_number": pa.array([1.0, 1.0], pa.float64()),
            "claim_type": ["professional"] * 2,
            "member_id": [MEMBERS[0]] * 2,
            "plan_type": ["HMO"] * 2,
            "claim_line_start_date": ["2026-03-10"] * 2,
            "place_of_service_code": pa.array([23.0, 11.0], pa.float32()),
            "hcpcs_code": pa.array([70553.0, 70553.0], pa.float64()),
            "rendering_npi": ["1234567893"] * 2,
            "charge_amount": pa.array([1200.5, 1200.0], pa.float64()),
        }
    )
    path = tmp_path / "doubles.parquet"
    pq.write_table(table, path)
    out = tmp_path / "out"
    result = validate("--claims", path, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"claims {path}: 2 rows read, 0 valid, 2 rejected"
    rejects = pd.read_parquet(out / "rejects.parquet")
    found = set(zip(rejects["source_row"], rejects["column"], rejects["value"], strict=True))
    for row in (1, 2):
        assert (row, "hcpcs_code", "70553.0") in found
        assert (row, "claim_line_number", "1.0") in found
    assert (1, "place_of_service_code", "23.0") in found
    assert not {column for _, column, _ in found} & {"charge_amount"}
    lines, _ = read_claims([str(path)])
    assert lines["charge_amount"].tolist() == ["1200.5", "1200.0"]


def test_a_claim_date_after_as_of_is_rejected_naming_the_claim_date(tmp_path: Path) -> None:
    """A line without its own date is dated by its claim: the reject names the claim's
    date and its value, not the empty line date."""
    claims = tmp_path / "claims.csv"
    claims.write_text(
        "claim_id,claim_line_number,claim_type,member_id,plan_type,claim_start_date,"
        "bill_type_code,revenue_center_code,hcpcs_code,facility_npi,charge_amount\n"
        f"I1,1,institutional,{MEMBERS[0]},HMO,2026-07-01,131,0610,70553,1234567893,10.00\n"
    )
    out = tmp_path / "out"
    result = validate("--claims", claims, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 0, result.output
    rejects = pd.read_parquet(out / "rejects.parquet")
    after = rejects[rejects["check"] == "service_after_as_of"]
    assert after[["column", "value"]].values.tolist() == [["claim_start_date", "2026-07-01"]]


def test_a_parquet_text_column_that_is_not_utf8_fails_the_run(tmp_path: Path) -> None:
    """Arrow does not check a Parquet file's text as it reads it: bytes that are not
    UTF-8 were published, in a file Arrow's own validation then refused."""
    offsets = pa.py_buffer(np.array([0, 5, 8], dtype=np.int32).tobytes())
    ids = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"C0001C\xff2")])
    path = tmp_path / "claims.parquet"
    columns = {
        "claim_id": ids,
        "claim_line_number": ["1", "1"],
        "claim_type": ["professional"] * 2,
        "member_id": [MEMBERS[0]] * 2,
        "plan_type": ["HMO"] * 2,
        "claim_line_start_date": ["2026-03-10"] * 2,
        "charge_amount": ["10.00"] * 2,
    }
    pq.write_table(pa.table(columns), path)
    out = tmp_path / "out"
    result = validate("--claims", path, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"Error: {path}: column claim_id is not UTF-8 text"
    assert not out.exists()


@pytest.mark.parametrize("option", ["--claims", "--rules"])
def test_a_pipe_is_refused_not_waited_on(
    option: str, claims: Path, register: Path, tmp_path: Path
) -> None:
    # Nothing ever writes to it: opening it would wait for a writer, the night long.
    pipe = tmp_path / ("pipe.csv" if option == "--claims" else "pipe.toml")
    os.mkfifo(pipe)
    read = pipe if option == "--claims" else claims
    command = [sys.executable, "-m", "pipeline", "run", "--claims", str(read)]
    command += ["--authorizations", str(register), "--as-of", AS_OF, "--out"]
    command += [str(tmp_path / "out"), *(["--rules", str(pipe)] if option == "--rules" else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert f"{pipe}: not a regular file (a directory, a pipe or a device)" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("ledger", ["", "  "])
def test_an_empty_ledger_path_is_a_usage_error(
    ledger: str, claims: Path, register: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unset variable in a scheduler's template would make the working directory the
    # ledger, which the next night, given the right one, would not count.
    monkeypatch.chdir(tmp_path)
    result = publish("run", claims, register, tmp_path / "out", "--ledger", ledger, "--force")
    assert result.exit_code == 2, result.output
    assert "is empty (an unset variable?); name a path" in result.stderr
    assert not list(tmp_path.glob("*.parquet"))


@pytest.mark.parametrize("inside", [".", "ledger", "../out/ledger", "through a link"])
def test_a_ledger_inside_the_output_is_a_usage_error(
    inside: str, claims: Path, register: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ledger = out if inside == "." else out / inside
    if inside == "through a link":
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        out, ledger = tmp_path / "link" / "out", tmp_path / "real" / "out" / "ledger"
    result = publish("run", claims, register, out, "--ledger", str(ledger), "--force")
    assert result.exit_code == 2, result.output
    assert f"{ledger} is inside --out {out}" in result.stderr
    assert not out.exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_published_run_whose_account_cannot_be_printed_still_exits_0(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipeline", "run", "--claims", str(claims)]
    command += ["--authorizations", str(register), "--as-of", AS_OF, "--out", str(out)]
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*command, "--force"], stdout=full, stderr=subprocess.PIPE, text=True, check=False
        )
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.json").exists()
    assert "its account could not be printed: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (BrokenProcessPool("A child process terminated abruptly"), "a worker process ended"),
        (MemoryError(), "the run ran out of memory"),
        (RuntimeError("can't start new thread"), "the run ran out of memory"),
    ],
)
def test_a_worker_s_end_or_want_of_memory_is_told_in_a_sentence(
    *,
    error: BaseException,
    words: str,
    claims: Path,
    register: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(pipeline.run, "publish_run", broken)
    result = publish("run", claims, register, tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {words}")
    assert f"nothing was published to {tmp_path / 'out'}" in result.stderr


def test_a_file_the_system_will_not_open_is_named_with_the_system_s_words() -> None:
    # As Arrow raises it for a file without read permission (root reads any file, so the
    # error is made here rather than by a file's mode).
    error = PermissionError(13, "Failed to open local file 'c.csv'. Detail: [errno 13]")
    assert (
        str(pipeline.io._unreadable("c.csv", error)) == "c.csv: cannot be read: Permission denied"
    )


def test_validate_stopped_by_sigterm_publishes_nothing_and_exits_1(
    claims: Path, register: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json = pipeline.run.write_json
    staged: list[Path] = []

    def stopped_as_it_publishes(document: Any, path: Path) -> None:
        write_json(document, path)  # into the staging directory, which exists now
        staged.append(path.parent)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at once, in this thread

    monkeypatch.setattr(pipeline.run, "write_json", stopped_as_it_publishes)
    out = tmp_path / "checked"
    result = validate("--claims", claims, "--authorizations", register, "--out", out)
    assert result.exit_code == 1, result.output
    assert f"stopped (SIGTERM); nothing was published to {out}" in result.stderr
    assert staged and staged[0].name.endswith(".partial")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.csv", "register.csv"]


def test_folders_made_for_a_run_that_is_held_are_removed(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    # One bad row, and no rejects allowed.
    out = tmp_path / "nights" / "2026" / "out"
    bad = tmp_path / "bad.csv"
    rows = [dict(zip(CLAIM_COLUMNS, row, strict=True)) for row in CLAIM_ROWS]
    rows[0]["charge_amount"] = "x"
    write_csv(bad, CLAIM_COLUMNS, [[r[c] for c in CLAIM_COLUMNS] for r in rows])
    result = publish("run", bad, register, out, "--max-reject-rate", "0")
    assert result.exit_code == 3, result.output
    assert not (tmp_path / "nights").exists()
    # A folder that was there, named through one that was not, is no folder made.
    (tmp_path / "runs").mkdir()
    result = publish(
        "run", bad, register, tmp_path / "nothere" / ".." / "runs" / "out", "--max-reject-rate", "0"
    )
    assert result.exit_code == 3, result.output
    assert (tmp_path / "runs").is_dir()


def test_a_link_to_nothing_as_out_is_refused_before_any_work(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "nowhere")
    result = publish("run", claims, register, out)
    assert result.exit_code == 1, result.output
    assert f"{out} already exists" in result.stderr


@pytest.mark.parametrize(
    ("closed", "log"),
    [("2>&-", "--log-format json"), ("2>&-", ""), (">&-", "")],
    ids=["stderr closed, a JSON log", "stderr closed", "stdout closed"],
)
def test_a_run_with_a_closed_stream_publishes_and_exits_0(
    closed: str, log: str, claims: Path, register: Path, tmp_path: Path
) -> None:
    # A log or an account that cannot be written does not fail the run.
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipeline", "run", "--claims", str(claims)]
    command += ["--authorizations", str(register), "--as-of", AS_OF, "--out", str(out)]
    line = " ".join(f"'{part}'" for part in command) + f" --force {log} {closed}"
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.json").exists()
    if closed == ">&-":
        assert "its account could not be printed: standard output is closed" in done.stderr


def test_a_json_log_that_cannot_be_written_stops_logging_without_failing() -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    log = JsonLog(Full())
    log.advance("reading", 10)
    log.finish("reading")
    log.finish("deciding")
    assert log.stream is None


@pytest.mark.parametrize("ignored", [False, True], ids=["heard", "ignored as the run began"])
def test_ctrl_c_stops_a_run_as_sigterm_does_unless_the_run_began_ignoring_it(
    ignored: bool, claims: Path, register: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shell's background job begins with SIGINT ignored: Ctrl-C is not for it.
    publish_run = pipeline.run.publish_run

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)  # a handler raises at once, in this thread
        return publish_run(*args, **kwargs)

    monkeypatch.setattr(pipeline.run, "publish_run", interrupted)
    out = tmp_path / "out"
    before = signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.default_int_handler)
    try:
        result = publish("run", claims, register, out, "--force")
    finally:
        signal.signal(signal.SIGINT, before)
    if ignored:
        assert result.exit_code == 0, result.output
        assert (out / "manifest.json").exists()
        return
    assert result.exit_code == 1, result.output
    assert f"stopped (SIGINT); nothing was published to {out}" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("verifying", [False, True], ids=["run", "verify of a relative DIR"])
def test_a_working_directory_that_is_gone_is_told_in_a_sentence(
    verifying: bool, claims: Path, register: Path, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    command = [sys.executable, "-m", "pipeline", "run", "--claims", str(claims)]
    command += ["--authorizations", str(register), "--as-of", AS_OF, "--out"]
    command += [str(tmp_path / "out")]
    if verifying:  # told before the relative DIR is looked for
        command = [sys.executable, "-m", "pipeline", "verify", "out"]
    line = f"cd '{gone}' && rmdir '{gone}' && " + " ".join(f"'{part}'" for part in command)
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("Error: the working directory is gone"), done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_path_that_is_not_utf8_is_told_in_a_sentence(
    command: str, claims: Path, register: Path, tmp_path: Path
) -> None:
    named = os.path.join(os.fsencode(tmp_path), b"cl\xe9ims.csv")
    Path(os.fsdecode(named)).write_bytes(claims.read_bytes())
    out = tmp_path / "out"
    result = publish(command, Path(os.fsdecode(named)), register, out)
    assert result.exit_code == 1, result.output
    assert "is not UTF-8 text and cannot be given to the reader or the system" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_validate_publishes_and_exits_0_when_its_account_cannot_be_printed(
    claims: Path, tmp_path: Path
) -> None:
    out = tmp_path / "checked"
    command = [sys.executable, "-m", "pipeline", "validate", "--claims", str(claims)]
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*command, "--out", str(out)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        alone = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (out / "summary.json").exists()
    assert "its account could not be printed: No space left on device" in done.stderr
    # Without --out the counts are all it makes: not printed, it failed.
    assert alone.returncode == 1
    assert alone.stderr == "Error: No space left on device\n"


@pytest.mark.parametrize(
    ("rename", "source", "words"),
    [
        (
            ("revenue_center_code", "Revenue_Center_Code"),
            "claims",
            "names contract columns in another case: Revenue_Center_Code (as revenue_center_code)",
        ),
        (
            ("provider_npi", "Provider_NPI"),
            "register",
            "names contract columns in another case: Provider_NPI (as provider_npi)",
        ),
        (
            ("charge_amount", "charge_amount,"),
            "claims",
            "the header has a column without a name (a comma at its start or end",
        ),
    ],
    ids=["a claims column", "a register column", "a header cell without a name"],
)
def test_a_header_a_reader_would_misread_is_refused(
    *,
    rename: tuple[str, str],
    source: str,
    words: str,
    claims: Path,
    register: Path,
    tmp_path: Path,
) -> None:
    # Read as another column, a contract column's values were lost without a word.
    path = claims if source == "claims" else register
    header, rest = path.read_text().split("\n", 1)
    if rename[0] not in header.split(","):
        header += f",{rename[0]}"
        rest = "".join(f"{line}," + "\n" for line in rest.splitlines())
    path.write_text(header.replace(rename[0], rename[1]) + "\n" + rest)
    out = tmp_path / "out"
    result = publish("run", claims, register, out, "--force")
    assert result.exit_code == 1, result.output
    assert f"Error: {path} {words}" in result.stderr or f"Error: {path}: {words}" in result.stderr
    assert not out.exists()


def test_columns_passed_through_that_differ_in_case_alone_are_refused(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    header, rest = claims.read_text().split("\n", 1)
    lines = rest.splitlines()
    claims.write_text(f"{header},Notes\n" + "".join(f"{line},a\n" for line in lines[:1]))
    other.write_text(f"{header},notes\n" + "".join(f"{line},b\n" for line in lines[1:]))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "--claims", str(claims), "--claims", str(other), "--authorizations", str(register)]
        + ["--as-of", AS_OF, "--out", str(out), "--force"],
    )
    assert result.exit_code == 1, result.output
    assert "columns passed through differ in case alone: Notes and notes" in result.stderr
    assert not out.exists()


def test_a_copy_of_a_claims_file_under_another_name_is_refused(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.csv"
    shutil.copy(claims, copy)
    out = tmp_path / "out"
    arguments = ["run", "--claims", str(claims), "--claims", str(copy)]
    arguments += ["--authorizations", str(register), "--as-of", AS_OF, "--force"]
    result = CliRunner().invoke(main, [*arguments, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"{claims} and {copy} hold the same bytes" in result.stderr
    assert not out.exists()
    # Two feeds with no lines tonight may well be alike.
    header = claims.read_text().split("\n", 1)[0] + "\n"
    claims.write_text(header)
    copy.write_text(header)
    result = CliRunner().invoke(main, [*arguments, "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_a_gzip_file_with_bytes_after_its_end_is_told_so(claims: Path, tmp_path: Path) -> None:
    packed = tmp_path / "claims.csv.gz"
    packed.write_bytes(gzip.compress(claims.read_bytes()) + bytes(512))
    result = validate("--claims", packed)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {packed}: cannot be read as a UTF-8 CSV file: its gzip data cannot be "
        "unpacked: damaged, or followed by bytes that are not gzip (zeros padding a copy?)"
    )


def test_a_parquet_file_of_no_rows_with_a_nested_column_is_refused_as_one_with_rows(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    names = claims.read_text().split("\n", 1)[0].split(",")
    empty = pa.table({name: pa.array([], pa.string()) for name in names})
    nested = tmp_path / "nested.parquet"
    pq.write_table(empty.append_column("tags", pa.array([], pa.list_(pa.string()))), nested)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "--claims", str(nested), "--claims", str(claims), "--authorizations"]
        + [str(register), "--as-of", AS_OF, "--out", str(out), "--force"],
    )
    assert result.exit_code == 1, result.output
    assert f"{nested}: column tags of type list<element: string> cannot be read as text" in (
        result.stderr
    )
    assert not out.exists()


TWICE = {
    "register": ["--authorizations", "{register}"],
    "as-of": ["--as-of", "2025-01-01"],
    "out as --out=": ["--out={out}-2"],
}


@pytest.mark.parametrize(
    ("command", "repeated"),
    [
        *(("validate", twice) for twice in TWICE.values()),
        *(("run", twice) for twice in TWICE.values()),
        ("run", ["--max-reject-rate", "0.5", "--max-reject-rate", "0.9"]),
        ("run", ["--force"]),
    ],
    ids=[*(f"validate {name}" for name in TWICE), *(f"run {name}" for name in TWICE)]
    + ["run a guard", "run a flag"],
)
def test_an_option_given_twice_is_a_usage_error(
    command: str, repeated: list[str], claims: Path, register: Path, tmp_path: Path
) -> None:
    # The last one given was taken and the first dropped without a word: a register
    # split in two files had its first half ignored, and its members' lines denied.
    out = tmp_path / "out"
    extra = [part.format(register=register, out=out) for part in repeated]
    force = ["--force"] if command == "run" else []
    result = publish(command, claims, register, out, *force, *extra)
    assert result.exit_code == 2, result.output
    assert f"{extra[0].split('=')[0]} is given twice; give it once" in result.stderr
    assert not out.exists() and not Path(f"{out}-2").exists()
    once = publish(command, claims, register, out, *force)  # each once: accepted
    assert once.exit_code == 0, once.output


def test_help_and_completion_are_not_refused_for_an_option_given_twice(tmp_path: Path) -> None:
    shown = CliRunner().invoke(main, ["run", "--out", "a", "--out", "b", "--help"])
    assert shown.exit_code == 0, shown.output
    assert "--partition-rows" in shown.stdout
    command = Path(sys.executable).parent / "adjudicate"  # completion goes by its name
    completing = subprocess.run(
        [str(command)],
        env=os.environ
        | {
            "_ADJUDICATE_COMPLETE": "bash_complete",
            "COMP_WORDS": "adjudicate run --out a --out b --wor",
            "COMP_CWORD": "6",
        },
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert completing.returncode == 0, completing.stderr
    assert "--workers" in completing.stdout


def test_an_option_that_takes_several_values_may_be_repeated(
    claims: Path, register: Path, tmp_path: Path
) -> None:
    second = tmp_path / "more.csv"
    second.write_text(claims.read_text().replace("P1,", "P9,"))
    result = publish("validate", claims, register, tmp_path / "out", "--claims", str(second))
    assert result.exit_code == 0, result.output
