"""Authorization register validation (CONTRACT §3): every defect, one small case each.

As for claims, every case is written to one CSV file and read by the real
reader. Each case has its own authorization_id unless it means to share one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import InputError
from pipeline.io import SOURCE_ROW
from pipeline.run import read_register
from pipeline.validate import Validated, validate_authorizations
from schemas import authorizations as register_contract
from schemas.outputs import REJECT_COLUMNS

NPI_A = "1234567893"
NPI_B = "1467498014"

Row = dict[str, str | None]
Expected = frozenset[tuple[str, str]]
VALID: Expected = frozenset()


def auth(authorization_id: str, **values: str | None) -> Row:
    """An approved one-unit authorization for an MRI of the brain; anything overridden."""
    base: Row = {
        "authorization_id": authorization_id,
        "member_id": "M1",
        "hcpcs_code": "70553",
        "status": "APPROVED",
        "valid_from": "2026-03-01",
        "valid_to": "2026-03-31",
        "units_approved": "1",
        "provider_npi": NPI_A,
        "recorded_at": "2026-02-20T09:00:00Z",
    }
    return base | values


def rejected(*pairs: str) -> Expected:
    return frozenset(tuple(p.split("/")) for p in pairs)  # type: ignore[misc]


@dataclass(frozen=True)
class Case:
    id: str
    rows: list[Row]
    expected: list[Expected]


def case(id: str, rows: Row | list[Row], *expected: Expected) -> Case:
    rows = rows if isinstance(rows, list) else [rows]
    expectations = list(expected) if len(expected) > 1 else [expected[0]] * len(rows)
    assert len(expectations) == len(rows), id
    return Case(id, rows, expectations)


CASES: list[Case] = [
    case("status GRANTED", auth("ST1", status="GRANTED"), rejected("status/status_known")),
    case("status approved lower case", auth("ST2", status="approved"), VALID),
    case("status Pending with blanks", auth("ST3", status=" Pending "), VALID),
    case(
        "status DENIED and CANCELLED",
        [auth("ST4", status="DENIED"), auth("ST5", status="CANCELLED")],
        VALID,
    ),
    case("status empty", auth("ST6", status=""), rejected("status/not_nullable")),
    case(
        "valid_to before valid_from",
        auth("DT1", valid_to="2026-02-28"),
        rejected("valid_to/not_before_start"),
    ),
    case("valid_to on valid_from", auth("DT2", valid_to="2026-03-01"), VALID),
    case(
        "valid_from 2026-02-30",
        auth("DT3", valid_from="2026-02-30"),
        rejected("valid_from/iso_date"),
    ),
    case("valid_to 31/03/2026", auth("DT4", valid_to="31/03/2026"), rejected("valid_to/iso_date")),
    case("valid_to empty", auth("DT5", valid_to=""), rejected("valid_to/not_nullable")),
    case(
        "units -1",
        auth("UN1", units_approved="-1"),
        rejected("units_approved/non_negative_integer"),
    ),
    case(
        "units 1.5",
        auth("UN2", units_approved="1.5"),
        rejected("units_approved/non_negative_integer"),
    ),
    case("units 0", auth("UN3", units_approved="0"), VALID),
    case("units padded with zeros", auth("UNPAD", units_approved="0000000001"), VALID),
    case("units empty", auth("UN4", units_approved=""), rejected("units_approved/not_nullable")),
    case(
        "provider NPI wrong check digit",
        auth("NP1", provider_npi="1234567890"),
        rejected("provider_npi/npi_check_digit"),
    ),
    case(
        "provider NPI of nine digits",
        auth("NP2", provider_npi="123456789"),
        rejected("provider_npi/npi_format"),
    ),
    case("provider NPI empty", auth("NP3", provider_npi=""), VALID),
    case("provider NPI other valid", auth("NP4", provider_npi=NPI_B), VALID),
    case("hcpcs 70553.0", auth("CD1", hcpcs_code="70553.0"), rejected("hcpcs_code/hcpcs_format")),
    case("hcpcs lower case", auth("CD2", hcpcs_code="g0204"), VALID),
    case("hcpcs empty", auth("CD3", hcpcs_code=""), rejected("hcpcs_code/not_nullable")),
    case("member_id empty", auth("MB1", member_id=""), rejected("member_id/not_nullable")),
    case(
        "authorization_id empty",
        auth("", member_id="M-NOID"),
        rejected("authorization_id/not_nullable"),
    ),
    case(
        "recorded_at malformed",
        auth("RA1", recorded_at="yesterday"),
        rejected("recorded_at/iso_datetime"),
    ),
    case(
        "a control character in the authorization id",
        auth("RA\x01"),
        rejected("authorization_id/printable_text"),
    ),
    case(
        "recorded_at in year 0000",
        auth("RA0", recorded_at="0000-01-01T00:00:00Z"),
        rejected("recorded_at/iso_datetime"),
    ),
    case(
        "valid_from in year 0000",
        auth("RA00", valid_from="0000-01-01"),
        rejected("valid_from/iso_date"),
    ),
    case(
        "recorded_at day-first",
        auth("RA2", recorded_at="05/01/2026 14:30"),
        rejected("recorded_at/iso_datetime"),
    ),
    case(
        "recorded_at hour 25",
        auth("RA3", recorded_at="2026-01-05T25:00:00Z"),
        rejected("recorded_at/iso_datetime"),
    ),
    case(
        "recorded_at month 13",
        auth("RA4", recorded_at="2026-13-05"),
        rejected("recorded_at/iso_datetime"),
    ),
    case("recorded_at with Z", auth("RA5", recorded_at="2026-01-05T14:30:00Z"), VALID),
    case("recorded_at a date", auth("RA6", recorded_at="2026-01-05"), VALID),
    case("recorded_at +00:00", auth("RA7", recorded_at="2026-01-05T14:30:00+00:00"), VALID),
    case("recorded_at no seconds", auth("RA8", recorded_at="2026-01-05T14:30"), VALID),
    case("recorded_at empty", auth("RA9", recorded_at=""), rejected("recorded_at/not_nullable")),
    case(
        "the same version twice",
        [auth("DV1"), auth("DV1", status="DENIED")],
        rejected("recorded_at/duplicate_version"),
    ),
    case(
        "the same moment written two ways",
        [
            auth("DV2", recorded_at="2026-01-05T14:30:00Z"),
            auth("DV2", recorded_at="2026-01-05T14:30:00"),
        ],
        rejected("recorded_at/duplicate_version"),
    ),
    case(
        "the same version, code in two cases",
        [auth("DV3", hcpcs_code="g0204"), auth("DV3", hcpcs_code="G0204")],
        rejected("recorded_at/duplicate_version"),
    ),
    case(
        "three copies beside a later version",
        [
            auth("DV4"),
            auth("DV4"),
            auth("DV4"),
            auth("DV4", recorded_at="2026-02-21T09:00:00Z", status="CANCELLED"),
        ],
        rejected("recorded_at/duplicate_version"),
        rejected("recorded_at/duplicate_version"),
        rejected("recorded_at/duplicate_version"),
        VALID,
    ),
    case(
        "two versions in one second",
        [
            auth("HS1", recorded_at="2026-01-05T14:30:00.250Z", status="PENDING"),
            auth("HS1", recorded_at="2026-01-05T14:30:00.750Z"),
        ],
        VALID,
    ),
    case(
        # Beside the year 2300 below, in the same file: read to the nanosecond, pandas
        # had made that one unreadable.
        "recorded_at to the nanosecond",
        auth("HS2", recorded_at="2026-01-05T14:30:00.123456789Z"),
        VALID,
    ),
    case("recorded_at in the year 2300", auth("HS3", recorded_at="2300-01-01T00:00:00Z"), VALID),
    case(
        "a history: one code, two moments",
        [auth("HI1", status="PENDING"), auth("HI1", recorded_at="2026-02-21T09:00:00Z")],
        VALID,
    ),
    case(
        "one authorization, two codes, one moment",
        [auth("HI2"), auth("HI2", hcpcs_code="70551")],
        VALID,
    ),
    case(
        "two malformed moments are not the same moment",
        [auth("DV5", recorded_at="yesterday"), auth("DV5", recorded_at="last week")],
        rejected("recorded_at/iso_datetime"),
    ),
    case(
        "three defects in one row",
        auth("MANY", status="OK", units_approved="-1", valid_to="2026-02-01"),
        rejected(
            "status/status_known",
            "units_approved/non_negative_integer",
            "valid_to/not_before_start",
        ),
    ),
]


@dataclass(frozen=True)
class Run:
    path: Path
    rows: list[Row]
    cases: dict[str, list[int]]
    result: Validated


def write_register_csv(path: Path, rows: list[Row], columns: tuple[str, ...]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "note"])
        for number, row in enumerate(rows, start=1):
            writer.writerow([row.get(c) or "" for c in columns] + [f"note {number}"])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    rows: list[Row] = []
    cases: dict[str, list[int]] = {}
    for c in CASES:
        assert c.id not in cases, f"duplicate case id {c.id}"
        cases[c.id] = list(range(len(rows) + 1, len(rows) + 1 + len(c.rows)))
        rows.extend(c.rows)
    path = tmp_path_factory.mktemp("register") / "register.csv"
    write_register_csv(path, rows, register_contract.CONTRACT_COLUMNS)
    frame, files = read_register(str(path))
    assert files[0].rows == len(rows)
    return Run(path, rows, cases, validate_authorizations(frame))


def rejects_of(run: Run, source_row: int) -> pd.DataFrame:
    return run.result.rejects[run.result.rejects["source_row"].eq(source_row)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(run: Run, case: Case) -> None:
    valid_rows = set(run.result.valid[SOURCE_ROW])
    for source_row, want in zip(run.cases[case.id], case.expected, strict=True):
        got = rejects_of(run, source_row)
        assert set(zip(got["column"], got["check"], strict=True)) == want, (
            f"row {source_row}: {got[['column', 'check', 'value']]}"
        )
        assert (source_row in valid_rows) is (not want)


def test_every_row_is_valid_or_rejected_never_both(run: Run) -> None:
    valid = run.result.valid[SOURCE_ROW]
    rejected_rows = set(run.result.rejects["source_row"])
    assert valid.is_unique
    assert set(valid).isdisjoint(rejected_rows)
    assert set(valid) | rejected_rows == set(range(1, len(run.rows) + 1))


def test_rejects_are_filed_as_register_rejects(run: Run) -> None:
    rejects = run.result.rejects
    assert tuple(rejects.columns) == REJECT_COLUMNS
    assert rejects["source"].eq("authorizations").all()
    assert rejects["source_file"].eq(str(run.path)).all()
    assert rejects["claim_id"].isna().all()
    assert rejects["claim_line_number"].isna().all()
    assert not rejects[["source_row", "column", "check"]].duplicated().any()


def test_source_row_is_the_1_based_data_row(run: Run) -> None:
    assert rejects_of(run, 1)["value"].tolist() == ["GRANTED"]
    (row,) = run.cases["units 1.5"]
    assert rejects_of(run, row)["value"].tolist() == ["1.5"]
    assert run.rows[row - 1]["authorization_id"] == "UN2"


def test_messages_are_filled_in(run: Run) -> None:
    rejects = run.result.rejects
    for column in ("column", "check", "message"):
        assert rejects[column].notna().all()
        assert rejects[column].str.len().gt(0).all()
    assert not rejects["message"].str.contains("[{}]", regex=True).any()


@pytest.mark.parametrize(
    ("case_id", "message"),
    [
        ("status GRANTED", "status 'GRANTED' is not one of APPROVED, PENDING, DENIED, CANCELLED"),
        ("valid_to before valid_from", "valid_to '2026-02-28' is before valid_from"),
        ("units 1.5", "units_approved '1.5' is not a whole number from 0 to 999999999"),
        ("recorded_at malformed", "recorded_at 'yesterday' is not an ISO date-time in UTC"),
        ("status empty", "status is required and is empty"),
    ],
    ids=["status", "valid_to", "units", "recorded_at", "empty"],
)
def test_message_says_what_was_expected(run: Run, case_id: str, message: str) -> None:
    (got,) = rejects_of(run, run.cases[case_id][0])["message"]
    assert got.startswith(message)


def test_valid_rows_keep_their_text(run: Run) -> None:
    valid = run.result.valid.set_index(SOURCE_ROW)
    assert valid.loc[run.cases["status approved lower case"][0], "status"] == "APPROVED"
    assert valid.loc[run.cases["hcpcs lower case"][0], "hcpcs_code"] == "G0204"
    assert valid.loc[run.cases["recorded_at with Z"][0], "recorded_at"] == "2026-01-05T14:30:00Z"
    assert valid["note"].tolist() == [f"note {n}" for n in valid.index]


# --- the file's shape --------------------------------------------------------------


def test_missing_required_columns_are_all_named(tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    columns = tuple(
        c
        for c in register_contract.CONTRACT_COLUMNS
        if c not in ("member_id", "status", "recorded_at")
    )
    write_register_csv(path, [auth("A1")], columns)
    with pytest.raises(InputError) as raised:
        read_register(str(path))
    assert (
        str(raised.value) == f"{path} is missing required columns: member_id, status, recorded_at"
    )


def test_provider_npi_may_be_absent(tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    columns = tuple(c for c in register_contract.CONTRACT_COLUMNS if c != "provider_npi")
    write_register_csv(path, [auth("A1"), auth("A2", status="pending")], columns)
    frame, _ = read_register(str(path))
    result = validate_authorizations(frame)
    assert result.rejects.empty
    assert len(result.valid) == 2
    assert result.valid["provider_npi"].isna().all()


def test_an_empty_register_is_valid_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    write_register_csv(path, [], register_contract.CONTRACT_COLUMNS)
    frame, files = read_register(str(path))
    result = validate_authorizations(frame)
    assert files[0].rows == 0
    assert result.valid.empty
    assert result.rejects.empty
