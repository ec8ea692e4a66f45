"""Claims validation (CONTRACT §2): every defect it names, one small case each.

All cases are written to one CSV file and read by the real reader, so that
source rows, trimming and text-as-written are exercised too. Each case has its
own claim_id, so that the rules over several lines only meet where a case
means them to.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline import engine, validate
from pipeline.io import SOURCE_ROW
from pipeline.rejects import sort_rejects
from pipeline.run import read_claims
from pipeline.setting import _Lines
from pipeline.validate import Validated, validate_claims
from schemas import checks
from schemas import claims as claims_contract
from schemas.checks import parse_dates
from schemas.outputs import REJECT_COLUMNS

AS_OF = datetime(2026, 6, 30, 23, 59, 59)
NPI_A, NPI_B, NPI_C, NPI_D, NPI_E, NPI_F = (
    "1234567893",
    "1467498014",
    "1003811290",
    "1999999992",
    "1555555550",
    "1777777776",
)
NPI_BAD_CHECK_DIGIT = "1234567890"
NPI_NINE_DIGITS = "123456789"

Row = dict[str, str | None]
Expected = frozenset[tuple[str, str]]
VALID: Expected = frozenset()


def prof(claim_id: str, **values: str | None) -> Row:
    """A clean professional MRI line; anything overridden."""
    base: Row = {
        "claim_id": claim_id,
        "claim_line_number": "1",
        "claim_type": "professional",
        "member_id": "M-" + claim_id[:20],
        "plan_type": "HMO",
        "claim_line_start_date": "2026-03-10",
        "place_of_service_code": "11",
        "hcpcs_code": "70553",
        "rendering_npi": NPI_A,
        "billing_npi": NPI_E,
        "diagnosis_code_1": "G4489",
        "charge_amount": "1200.00",
    }
    return base | values


def inst(claim_id: str, **values: str | None) -> Row:
    """A clean institutional MRI line from a hospital outpatient claim; anything overridden."""
    base: Row = {
        "claim_id": claim_id,
        "claim_line_number": "1",
        "claim_type": "institutional",
        "member_id": "M-" + claim_id[:20],
        "plan_type": "PPO",
        "claim_start_date": "2026-03-10",
        "claim_end_date": "2026-03-10",
        "claim_line_start_date": "2026-03-10",
        "bill_type_code": "131",
        "revenue_center_code": "0610",
        "hcpcs_code": "70553",
        "facility_npi": NPI_B,
        "billing_npi": NPI_C,
        "charge_amount": "2400.00",
    }
    return base | values


def rejected(*pairs: str) -> Expected:
    """``rejected("column/check", ...)``: the rejects a row must have, no more, no fewer."""
    return frozenset(tuple(p.split("/")) for p in pairs)  # type: ignore[misc]


@dataclass(frozen=True)
class Case:
    """Rows written together, and for each row the (column, check) pairs it must fail."""

    id: str
    rows: list[Row]
    expected: list[Expected]


def case(id: str, rows: Row | list[Row], *expected: Expected) -> Case:
    """One case; a single expectation applies to every row of the case."""
    rows = rows if isinstance(rows, list) else [rows]
    expectations = list(expected) if len(expected) > 1 else [expected[0]] * len(rows)
    assert len(expectations) == len(rows), id
    return Case(id, rows, expectations)


CASES: list[Case] = [
    # The first row of the file is a defect, so that source_row 1 is checked.
    case("claim_id of 51 characters", prof("C" * 51), rejected("claim_id/text_1_to_50")),
    case("claim_id of 50 characters", prof("L" * 50), VALID),
    case("claim_id empty", prof("", member_id="M-EMPTY"), rejected("claim_id/not_nullable")),
    # Lines without a claim id belong to no claim: not one another's copies, nor lines
    # of one claim that disagree (with the row above too, in the same file).
    case(
        "claim_id empty on lines of other members and plans",
        [prof("", member_id="M-EMPTY-2"), prof("", member_id="M-EMPTY-3", plan_type="PPO")],
        rejected("claim_id/not_nullable"),
    ),
    # claim_line_number
    case(
        "line number 0",
        prof("LN0", claim_line_number="0"),
        rejected("claim_line_number/positive_integer"),
    ),
    case(
        "line number x",
        prof("LNX", claim_line_number="x"),
        rejected("claim_line_number/positive_integer"),
    ),
    case(
        "line number 1.5",
        prof("LN15", claim_line_number="1.5"),
        rejected("claim_line_number/positive_integer"),
    ),
    case(
        "line number empty",
        prof("LNE", claim_line_number=""),
        rejected("claim_line_number/not_nullable"),
    ),
    case("line number 01 alone", prof("LN01", claim_line_number="01"), VALID),
    case(
        "line number past 999999999",
        prof("LNBIG", claim_line_number="1000000000"),
        rejected("claim_line_number/positive_integer"),
    ),
    case(
        "lines x and y are malformed, not duplicates",
        [prof("LNXY", claim_line_number="x"), prof("LNXY", claim_line_number="y")],
        rejected("claim_line_number/positive_integer"),
    ),
    case(
        "line 1 beside a malformed 1.0 is not its duplicate",
        [prof("LN10"), prof("LN10", claim_line_number="1.0")],
        VALID,
        rejected("claim_line_number/positive_integer"),
    ),
    # claim_type, member_id, plan_type
    case(
        "claim_type dental",
        prof("CTD", claim_type="dental"),
        rejected("claim_type/claim_type_known"),
    ),
    case("claim_type empty", prof("CTE", claim_type=""), rejected("claim_type/not_nullable")),
    case("member_id empty", prof("MBE", member_id=""), rejected("member_id/not_nullable")),
    case("member_id blanks only", prof("MBB", member_id="   "), rejected("member_id/not_nullable")),
    case("plan_type HMOX", prof("PTX", plan_type="HMOX"), rejected("plan_type/plan_type_known")),
    case("plan_type ppo lower case", prof("PTL", plan_type="ppo"), VALID),
    case("plan_type Medicare with blanks", prof("PTB", plan_type=" Medicare "), VALID),
    case("plan_type empty", prof("PTE", plan_type=""), rejected("plan_type/not_nullable")),
    # frequency and the claim it replaces
    case(
        "frequency 9",
        prof("FQ9", claim_frequency_code="9"),
        rejected("claim_frequency_code/frequency_code_known"),
    ),
    case(
        "frequency 7 without original_claim_id",
        prof("FQ7", claim_frequency_code="7"),
        rejected("original_claim_id/required_for_replacement_or_void"),
    ),
    case(
        "frequency 8 without original_claim_id",
        prof("FQ8", claim_frequency_code="8"),
        rejected("original_claim_id/required_for_replacement_or_void"),
    ),
    case(
        "frequency 7 naming the original",
        prof("FQ7OK", claim_frequency_code="7", original_claim_id="FQ1"),
        VALID,
    ),
    case("frequency 1", prof("FQ1", claim_frequency_code="1"), VALID),
    # dates
    case(
        "impossible date 2026-02-30",
        prof("DT230", claim_line_start_date="2026-02-30"),
        rejected("claim_line_start_date/iso_date"),
    ),
    case(
        "day-first date 13/01/2025",
        prof("DTDMY", claim_line_start_date="13/01/2025"),
        rejected("claim_line_start_date/iso_date"),
    ),
    case(
        "a NUL in the member id, a tab in the claim id",
        [prof("NUL1", member_id="M-NUL1\x00"), prof("TAB\t1", member_id="M-TAB1")],
        rejected("member_id/printable_text"),
        rejected("claim_id/printable_text"),
    ),
    case(
        "year 0000, a day to Arrow and none to Python",
        inst("DTYEAR0", claim_line_start_date="0000-01-01", claim_start_date="0000-01-01"),
        rejected("claim_line_start_date/iso_date", "claim_start_date/iso_date"),
    ),
    case(
        "claim_start_date 2026-3-1",
        inst("DTSHORT", claim_start_date="2026-3-1"),
        rejected("claim_start_date/iso_date"),
    ),
    case(
        "line end before line start",
        prof("DTEND", claim_line_end_date="2026-03-09"),
        rejected("claim_line_end_date/not_before_start"),
    ),
    case("line end on line start", prof("DTSAME", claim_line_end_date="2026-03-10"), VALID),
    case(  # its own start is rejected for itself, not compared in its claim's stead
        "line start not a date, line end before the claim's start",
        inst("DTENDBAD", claim_line_start_date="2026-13-01", claim_line_end_date="2026-03-05"),
        rejected("claim_line_start_date/iso_date"),
    ),
    case(  # the line dated by its claim: its end was compared with nothing
        "line end before the claim's start, the line undated",
        inst("DTENDCL", claim_line_start_date=None, claim_line_end_date="2026-03-01"),
        rejected("claim_line_end_date/not_before_start"),
    ),
    case(
        "claim end before claim start",
        inst("DTCLEND", claim_end_date="2026-03-01"),
        rejected("claim_end_date/not_before_start"),
    ),
    case(
        "no date of service at all",
        prof("DTNONE", claim_line_start_date=None),
        rejected("claim_line_start_date/date_of_service_required"),
    ),
    case(
        "service the day after as-of",
        prof("ASOF1", claim_line_start_date="2026-07-01"),
        rejected("claim_line_start_date/service_after_as_of"),
    ),
    case(
        "service after as-of by its claim date",
        inst(
            "ASOF2", claim_line_start_date=None, claim_start_date="2026-07-01", claim_end_date=None
        ),
        rejected("claim_start_date/service_after_as_of"),
    ),
    case(
        "claim starts after as-of, its line on the as-of day",
        inst(
            "ASOF3",
            claim_line_start_date="2026-06-30",
            claim_start_date="2026-07-01",
            claim_end_date=None,
        ),
        VALID,
    ),
    case("service on the as-of day", prof("ASOF0", claim_line_start_date="2026-06-30"), VALID),
    # place of service
    case(
        "POS 2 lost its leading zero",
        prof("POS2", place_of_service_code="2"),
        rejected("place_of_service_code/place_of_service_format"),
    ),
    case(
        "POS 98 unknown",
        prof("POS98", place_of_service_code="98"),
        rejected("place_of_service_code/place_of_service_known"),
    ),
    case("POS 02 with blanks", prof("POS02", place_of_service_code=" 02 "), VALID),
    # what a professional line must carry
    case(
        "professional line without POS",
        prof("PRNOPOS", place_of_service_code=None),
        rejected("place_of_service_code/required_on_professional_line"),
    ),
    case(
        "professional line without HCPCS",
        prof("PRNOCPT", hcpcs_code=None),
        rejected("hcpcs_code/required_on_professional_line"),
    ),
    case(
        "professional line without rendering NPI",
        prof("PRNONPI", rendering_npi=None),
        rejected("rendering_npi/required_on_professional_line"),
    ),
    # what an institutional line must carry
    case(
        "institutional line without bill type",
        inst("INNOBT", bill_type_code=None),
        rejected("bill_type_code/required_on_institutional_line"),
    ),
    case(
        "bill type 13I",
        inst("BT13I", bill_type_code="13I"),
        rejected("bill_type_code/bill_type_format"),
    ),
    case("bill type 0131", inst("BT0131", bill_type_code="0131"), VALID),
    case(
        "bill type 13",
        inst("BT13", bill_type_code="13"),
        rejected("bill_type_code/bill_type_format"),
    ),
    case(
        "bill type 999",
        inst("BT999", bill_type_code="999"),
        rejected("bill_type_code/bill_type_known"),
    ),
    case(
        "revenue 450 lost its leading zero",
        inst("RV450", revenue_center_code="450"),
        rejected("revenue_center_code/revenue_code_format"),
    ),
    case("revenue 0450", inst("RV0450", revenue_center_code="0450"), VALID),
    case(
        "revenue 0002 unknown",
        inst("RV0002", revenue_center_code="0002"),
        rejected("revenue_center_code/revenue_code_known"),
    ),
    case(
        "institutional line without any NPI",
        inst("INNONPI", facility_npi=None, billing_npi=None),
        rejected("rendering_npi/provider_npi_required"),
    ),
    case("institutional line with only facility NPI", inst("INFAC", billing_npi=None), VALID),
    case("institutional line with only billing NPI", inst("INBIL", facility_npi=None), VALID),
    case(
        "Tuva-shaped room line: no HCPCS, no line date",
        inst(
            "TUVA",
            hcpcs_code=None,
            claim_line_start_date=None,
            revenue_center_code="0001",
            service_unit_quantity="0",
        ),
        VALID,
    ),
    # codes
    case(
        "HCPCS 70553.0", prof("CPTFLT", hcpcs_code="70553.0"), rejected("hcpcs_code/hcpcs_format")
    ),
    case("HCPCS g0204 lower case", prof("CPTLOW", hcpcs_code="g0204"), VALID),
    case(
        "modifier X",
        prof("MODX", hcpcs_modifier_1="X"),
        rejected("hcpcs_modifier_1/modifier_format"),
    ),
    case(
        "modifier 4 of TCX",
        prof("MOD4", hcpcs_modifier_4="TCX"),
        rejected("hcpcs_modifier_4/modifier_format"),
    ),
    case("modifiers 26 and tc", prof("MODOK", hcpcs_modifier_1="26", hcpcs_modifier_2="tc"), VALID),
    case(
        "units -1",
        prof("UN1", service_unit_quantity="-1"),
        rejected("service_unit_quantity/units_non_negative_number"),
    ),
    case(
        "units one",
        prof("UNONE", service_unit_quantity="one"),
        rejected("service_unit_quantity/units_non_negative_number"),
    ),
    case(
        "units past 15 characters, which a double would round to 1",
        prof("UNLONG", service_unit_quantity="1.00000000000000000000001"),
        rejected("service_unit_quantity/units_non_negative_number"),
    ),
    case(
        "units of 15 characters",
        prof("UN15", service_unit_quantity="1.0000000000001"),
        VALID,
    ),
    case(
        "units 0 and 2.5",
        [prof("UN0", service_unit_quantity="0"), prof("UN25", service_unit_quantity="2.5")],
        VALID,
    ),
    # NPIs
    case(
        "rendering NPI with a wrong check digit",
        prof("NPICK", rendering_npi=NPI_BAD_CHECK_DIGIT),
        rejected("rendering_npi/npi_check_digit"),
    ),
    case(
        "rendering NPI of nine digits",
        prof("NPI9", rendering_npi=NPI_NINE_DIGITS),
        rejected("rendering_npi/npi_format"),
    ),
    case(
        "ordering NPI with a wrong check digit",
        prof("NPIORD", ordering_npi="1999999999"),
        rejected("ordering_npi/npi_check_digit"),
    ),
    case(
        "facility NPI of nine digits",
        inst("NPIFAC", facility_npi="146749801"),
        rejected("facility_npi/npi_format"),
    ),
    case(
        "every valid NPI",
        prof(
            "NPIOK", rendering_npi=NPI_D, billing_npi=NPI_E, facility_npi=NPI_C, ordering_npi=NPI_F
        ),
        VALID,
    ),
    # diagnoses
    case(
        "diagnosis F32.A and F329",
        prof("DXOK", diagnosis_code_1="F32.A", diagnosis_code_2="F329"),
        VALID,
    ),
    case(
        "diagnosis 123 in the 25th position",
        prof("DX25", diagnosis_code_25="123"),
        rejected("diagnosis_code_25/icd10cm_format"),
    ),
    case(
        "diagnosis 123 first",
        prof("DX1", diagnosis_code_1="123"),
        rejected("diagnosis_code_1/icd10cm_format"),
    ),
    # money
    case(
        "charge 12.345",
        prof("CH3", charge_amount="12.345"),
        rejected("charge_amount/money_two_places"),
    ),
    case(
        "charge -5.00",
        prof("CHNEG", charge_amount="-5.00"),
        rejected("charge_amount/money_two_places"),
    ),
    case("charge empty", prof("CHE", charge_amount=""), rejected("charge_amount/not_nullable")),
    case(
        "charge 0 and 7.5",
        [prof("CH0", charge_amount="0"), prof("CH75", charge_amount="7.5")],
        VALID,
    ),
    # rules over several lines
    case(
        "the same line twice",
        [prof("DUP"), prof("DUP", charge_amount="99.00")],
        rejected("claim_line_number/duplicate_claim_line"),
    ),
    case(
        "line 1 and line 01",
        [prof("DUP01"), prof("DUP01", claim_line_number="01")],
        rejected("claim_line_number/duplicate_claim_line"),
    ),
    case(
        "a duplicate beside a good line of the same claim",
        [prof("DUP3"), prof("DUP3", claim_line_number="2"), prof("DUP3", claim_line_number="2")],
        VALID,
        rejected("claim_line_number/duplicate_claim_line"),
        rejected("claim_line_number/duplicate_claim_line"),
    ),
    case(
        "lines differ in member_id",
        [prof("DIFFM", member_id="M1"), prof("DIFFM", claim_line_number="2", member_id="M2")],
        rejected("member_id/differs_within_claim"),
    ),
    case(
        "lines differ in claim_type",
        [prof("DIFFT"), inst("DIFFT", claim_line_number="2", member_id="M-DIFFT", plan_type="HMO")],
        rejected("claim_type/differs_within_claim"),
    ),
    case(
        "lines differ in plan_type",
        [prof("DIFFP", plan_type="HMO"), prof("DIFFP", claim_line_number="2", plan_type="PPO")],
        rejected("plan_type/differs_within_claim"),
    ),
    case(
        "lines differ only in the case of plan_type",
        [prof("SAMEP", plan_type="ppo"), prof("SAMEP", claim_line_number="2", plan_type="PPO")],
        VALID,
    ),
    case(
        "one line lacks the member_id the other has",
        [prof("DIFFMN"), prof("DIFFMN", claim_line_number="2", member_id="")],
        rejected("member_id/differs_within_claim"),
        rejected("member_id/differs_within_claim", "member_id/not_nullable"),
    ),
    # several defects in one row
    case(
        "four defects in one row",
        prof(
            "MANY",
            place_of_service_code="2",
            hcpcs_code="70553.0",
            rendering_npi=NPI_NINE_DIGITS,
            charge_amount="-5.00",
        ),
        rejected(
            "place_of_service_code/place_of_service_format",
            "hcpcs_code/hcpcs_format",
            "rendering_npi/npi_format",
            "charge_amount/money_two_places",
        ),
    ),
    case("a clean professional line", prof("GOOD1", claim_line_number="3"), VALID),
    case(
        "a clean institutional claim", [inst("GOOD2"), inst("GOOD2", claim_line_number="2")], VALID
    ),
]

EXTRA_COLUMN = "payer"
"""A column the contract does not name; it must pass through as written."""


@dataclass(frozen=True)
class Run:
    path: Path
    rows: list[Row]
    expected: dict[int, Expected]  # by source_row
    cases: dict[str, list[int]]  # case id -> its source rows
    result: Validated


def write_claims_csv(path: Path, rows: list[Row], extra: str | None = EXTRA_COLUMN) -> None:
    """Rows as a claims CSV with every contract column they use, in contract order."""
    used = {key for row in rows for key in row}
    header = [c for c in claims_contract.CONTRACT_COLUMNS if c in used]
    header += sorted(used - set(header))
    if extra is not None:
        header.append(extra)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for number, row in enumerate(rows, start=1):
            values = row | ({extra: f" payer {number} "} if extra else {})
            writer.writerow(["" if values.get(c) is None else values[c] for c in header])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    rows: list[Row] = []
    expected: dict[int, Expected] = {}
    cases: dict[str, list[int]] = {}
    for c in CASES:
        assert c.id not in cases, f"duplicate case id {c.id}"
        cases[c.id] = []
        for row, want in zip(c.rows, c.expected, strict=True):
            rows.append(row)
            expected[len(rows)] = want
            cases[c.id].append(len(rows))
    path = tmp_path_factory.mktemp("claims") / "claims_defects.csv"
    write_claims_csv(path, rows)
    lines, files = read_claims([str(path)])
    assert files[0].rows == len(rows)
    return Run(path, rows, expected, cases, validate_claims(lines, AS_OF))


def rejects_of(run: Run, source_row: int) -> pd.DataFrame:
    return run.result.rejects[run.result.rejects["source_row"].eq(source_row)]


# --- every case --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(run: Run, case: Case) -> None:
    valid_rows = set(run.result.valid[SOURCE_ROW])
    for source_row, want in zip(run.cases[case.id], case.expected, strict=True):
        got = rejects_of(run, source_row)
        pairs = set(zip(got["column"], got["check"], strict=True))
        assert pairs == want, f"row {source_row}: {got[['column', 'check', 'value']]}"
        assert (source_row in valid_rows) is (not want)


# --- what holds for every row and every reject ---------------------------------------


def test_every_row_is_valid_or_rejected_never_both(run: Run) -> None:
    valid = run.result.valid[SOURCE_ROW]
    rejected_rows = set(run.result.rejects["source_row"])
    assert valid.is_unique
    assert set(valid).isdisjoint(rejected_rows)
    assert set(valid) | rejected_rows == set(range(1, len(run.rows) + 1))
    assert run.result.rejected_rows == len(rejected_rows)


def test_rejects_have_the_contract_columns(run: Run) -> None:
    assert tuple(run.result.rejects.columns) == REJECT_COLUMNS
    assert run.result.rejects["source"].eq("claims").all()
    assert run.result.rejects["source_file"].eq(str(run.path)).all()


def test_one_reject_per_row_column_and_check(run: Run) -> None:
    keys = run.result.rejects[["source_row", "column", "check"]]
    assert not keys.duplicated().any()


def test_source_row_is_the_1_based_data_row(run: Run) -> None:
    first = rejects_of(run, 1)
    assert first["claim_id"].tolist() == ["C" * 51]
    # Each reject carries the claim_id and line number written on its own source row.
    for source_row, claim_id, number in run.result.rejects[
        ["source_row", "claim_id", "claim_line_number"]
    ].itertuples(index=False):
        written = run.rows[source_row - 1]
        for got, column in ((claim_id, "claim_id"), (number, "claim_line_number")):
            if written[column]:
                assert got == written[column]
            else:
                assert pd.isna(got)


def test_messages_are_filled_in(run: Run) -> None:
    rejects = run.result.rejects
    for column in ("column", "check", "message"):
        assert rejects[column].notna().all()
        assert rejects[column].str.len().gt(0).all()
    assert not rejects["message"].str.contains("{", regex=False).any()
    assert not rejects["message"].str.contains("}", regex=False).any()


def test_messages_name_the_rule_broken(run: Run) -> None:
    (row,) = run.cases["line number past 999999999"]
    assert rejects_of(run, row)["message"].tolist() == [
        "claim_line_number '1000000000' is not a whole number from 1 to 999999999"
    ]
    (row,) = run.cases["line end before the claim's start, the line undated"]
    assert rejects_of(run, row)["message"].tolist() == [
        "claim_line_end_date '2026-03-01' is before the line's start (claim_line_start_date, "
        "or claim_start_date where that is empty)"
    ]


def test_messages_quote_the_value_as_read(run: Run) -> None:
    row = run.cases["charge 12.345"][0]
    (message,) = rejects_of(run, row)["message"]
    assert message == (
        "charge_amount '12.345' is not an amount >= 0 of at most 13 digits before the point "
        "and two after it"
    )
    (value,) = rejects_of(run, row)["value"]
    assert value == "12.345"


def test_empty_required_value_says_so(run: Run) -> None:
    reject: Any  # pandas' stubs type a row's fields as any scalar
    (reject,) = rejects_of(run, run.cases["member_id empty"][0]).itertuples()
    assert reject.message == "member_id is required and is empty"
    assert pd.isna(reject.value)


def test_pos_without_leading_zero_says_what_was_expected(run: Run) -> None:
    (message,) = rejects_of(run, run.cases["POS 2 lost its leading zero"][0])["message"]
    assert "'2'" in message
    assert "two-digit" in message
    assert "leading zero" in message


def test_unknown_pos_is_not_blamed_on_a_leading_zero(run: Run) -> None:
    (message,) = rejects_of(run, run.cases["POS 98 unknown"][0])["message"]
    assert "'98'" in message
    assert "leading zero" not in message


MESSAGE_CASES = [
    ("claim_id of 51 characters", ["50 characters"]),
    ("impossible date 2026-02-30", ["'2026-02-30'", "YYYY-MM-DD"]),
    ("day-first date 13/01/2025", ["'13/01/2025'", "YYYY-MM-DD"]),
    ("HCPCS 70553.0", ["'70553.0'", "five-character"]),
    ("bill type 13I", ["'13I'", "three-digit"]),
    ("rendering NPI with a wrong check digit", [NPI_BAD_CHECK_DIGIT, "check digit"]),
    ("frequency 7 without original_claim_id", ["original_claim_id", "7 or 8"]),
    ("lines differ in member_id", ["differs", "every line"]),
    ("the same line twice", ["more than once", "every copy"]),
]


@pytest.mark.parametrize(
    ("case_id", "words"), MESSAGE_CASES, ids=[case_id for case_id, _ in MESSAGE_CASES]
)
def test_message_says_what_was_expected(run: Run, case_id: str, words: list[str]) -> None:
    for message in rejects_of(run, run.cases[case_id][0])["message"]:
        for word in words:
            assert word in message


def test_several_defects_give_several_rejects_of_one_row(run: Run) -> None:
    (row,) = run.cases["four defects in one row"]
    got = rejects_of(run, row)
    assert len(got) == 4
    assert got["claim_id"].eq("MANY").all()
    assert set(got["value"]) == {"-5.00", "70553.0", NPI_NINE_DIGITS, "2"}
    assert got["source_row"].eq(row).all()


def test_valid_lines_keep_their_text(run: Run) -> None:
    """Trimmed and case-normalised, nothing else: no number or date conversion."""
    valid = run.result.valid.set_index(SOURCE_ROW)

    def value(case_id: str, column: str, index: int = 0) -> Any:
        return valid.loc[run.cases[case_id][index], column]

    assert value("bill type 0131", "bill_type_code") == "0131"
    assert value("line number 01 alone", "claim_line_number") == "01"
    assert value("POS 02 with blanks", "place_of_service_code") == "02"
    assert value("revenue 0450", "revenue_center_code") == "0450"
    assert value("plan_type ppo lower case", "plan_type") == "PPO"
    assert value("plan_type Medicare with blanks", "plan_type") == "MEDICARE"
    assert value("HCPCS g0204 lower case", "hcpcs_code") == "G0204"
    assert value("modifiers 26 and tc", "hcpcs_modifier_2") == "TC"
    assert value("diagnosis F32.A and F329", "diagnosis_code_1") == "F32.A"
    assert value("charge 0 and 7.5", "charge_amount", 1) == "7.5"
    assert value("every valid NPI", "ordering_npi") == NPI_F
    assert pd.isna(value("Tuva-shaped room line: no HCPCS, no line date", "hcpcs_code"))


def test_columns_outside_the_contract_pass_through_as_written(run: Run) -> None:
    valid = run.result.valid
    assert valid[EXTRA_COLUMN].tolist() == [f" payer {n} " for n in valid[SOURCE_ROW]]
    for name in claims_contract.CONTRACT_COLUMNS:
        assert name in valid.columns


def test_a_file_without_optional_columns_is_valid(tmp_path: Path) -> None:
    """Only the required columns and a date of service: every other contract column is absent."""
    path = tmp_path / "minimal.csv"
    rows: list[Row] = [
        {
            "claim_id": "MIN",
            "claim_line_number": "1",
            "claim_type": "institutional",
            "member_id": "M1",
            "plan_type": "EPO",
            "claim_start_date": "2026-01-02",
            "bill_type_code": "0131",
            "billing_npi": NPI_D,
            "charge_amount": "10.00",
        }
    ]
    write_claims_csv(path, rows, extra=None)
    lines, _ = read_claims([str(path)])
    result = validate_claims(lines, AS_OF)
    assert result.rejects.empty
    assert len(result.valid) == 1


def test_validation_does_not_change_its_input(run: Run) -> None:
    lines, _ = read_claims([str(run.path)])
    before = lines.copy()
    validate_claims(lines, AS_OF)
    pd.testing.assert_frame_equal(lines, before)


def test_validation_keeps_no_column_of_its_input_once_done(run: Run) -> None:
    # The checks compute dates and codes once per column; what they remembered must
    # not outlive the validation (it kept ~120 MB a worker between partitions).
    lines, _ = read_claims([str(run.path)])
    validate_claims(lines, AS_OF)
    assert not checks._REMEMBERED
    parse_dates(lines["claim_line_start_date"])  # as the register's state does after
    assert checks._REMEMBERED
    engine._finished(None)
    assert not checks._REMEMBERED


def test_a_validation_asked_to_remember_leaves_the_kernel_its_codes(run: Run) -> None:
    # The decide task keeps what its validation computed for the kernel (the same rows):
    # the claim codes and a column's distinct values answer as computed anew.
    lines, _ = read_claims([str(run.path)])
    checked = validate_claims(lines, AS_OF, remember=True).checked
    assert checks._REMEMBERED
    claim_id = checked["claim_id"]
    kept = checks.codes_of(claim_id)
    assert checks.codes_of(claim_id) is kept  # remembered, not computed again
    facts = pd.DataFrame(
        {
            "claim": kept,
            "claim_type": checked["claim_type"].fillna("professional"),
            "place_of_service": checked["place_of_service_code"],
        }
    )
    places = frozenset({"11"})
    remembered = _Lines(facts).among("place_of_service", places)
    engine._finished(None)
    assert not checks._REMEMBERED
    assert (checks.codes_of(claim_id) == kept).all()
    anew = _Lines(facts).among("place_of_service", places)
    assert remembered.any() and (remembered == anew).all()


def test_rejects_are_sorted_by_claim_and_line(run: Run) -> None:
    rejects = run.result.rejects
    keys = pd.DataFrame(
        {
            "claim_id": rejects["claim_id"],
            "line": pd.to_numeric(rejects["claim_line_number"], errors="coerce"),
        }
    )
    ordered = keys.sort_values(["claim_id", "line"], kind="stable", na_position="last")
    assert ordered.index.tolist() == list(range(len(rejects)))


def test_rejects_of_one_line_written_two_ways_go_by_where_they_were_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "claims.csv"
    write_claims_csv(
        path, [prof("D1", claim_line_number="10"), prof("D1", claim_line_number="010")], extra=None
    )
    lines, _ = read_claims([str(path)])
    rejects = validate_claims(lines, AS_OF).rejects
    assert list(zip(rejects["source_row"], rejects["claim_line_number"], strict=True)) == [
        (1, "10"),
        (2, "010"),
    ]
    assert set(rejects["check"]) == {"duplicate_claim_line"}


@pytest.mark.filterwarnings("error")
def test_a_file_failing_only_column_checks_raises_no_warning(tmp_path: Path) -> None:
    """No row rule fails here, which once left the reject columns as floats to be filled."""
    path = tmp_path / "claims.csv"
    write_claims_csv(path, [prof("W1", place_of_service_code="2")], extra=None)
    lines, _ = read_claims([str(path)])
    rejects = validate_claims(lines, AS_OF).rejects
    assert list(zip(rejects["column"], rejects["check"], strict=True)) == [
        ("place_of_service_code", "place_of_service_format")
    ]


def test_rules_decided_over_all_lines_then_the_rest_in_pieces_give_the_same_rejects(
    run: Run,
) -> None:
    # A claim's lines set aside whole are validated a piece at a time, its claim rules
    # (lines checked against each other) applied over all of them first: the rejects
    # are those of validating them all at once. Pieces of 7 lines cut claims apart.
    lines, _ = read_claims([str(run.path)])
    decided = validate.claim_rules_passed(pa.Table.from_pandas(lines, preserve_index=False))
    assert set(decided) == set(claims_contract.claim_rules())
    assert not all(passes.all() for passes in decided.values())  # the defects' cases
    pieces = []
    for start in range(0, len(lines), 7):
        piece = {name: passes[start : start + 7] for name, passes in decided.items()}
        pieces.append(validate_claims(lines.iloc[start : start + 7], AS_OF, decided=piece))
    in_pieces = sort_rejects(pd.concat([p.rejects for p in pieces], ignore_index=True))
    whole = run.result.rejects.reset_index(drop=True)
    assert len(whole) > 20
    pd.testing.assert_frame_equal(in_pieces.astype(whole.dtypes.to_dict()), whole)
    assert list(np.concatenate([p.passed for p in pieces])) == list(run.result.passed)


def test_the_claim_rules_are_every_rule_that_reads_the_claim_id() -> None:
    # A rule that checks lines against each other reads claim_id; applied a piece at a
    # time it would miss the claim's other pieces, so each such rule is listed.
    schema = claims_contract.claims_schema(AS_OF)
    reading = {
        check.name
        for check in schema.checks
        if (rule := checks.row_rule_for(check.name)) is not None and "claim_id" in rule.reads
    }
    assert reading == set(claims_contract.claim_rules())
