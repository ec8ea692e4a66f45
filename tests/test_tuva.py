"""A file nobody on the team wrote: the Tuva Project's synthetic claims, plus plan_type.

CONTRACT §2 promises that a Tuva-shaped ``medical_claim`` file plus a
``plan_type`` column is a valid input. The seed and its licence are in
``tests/data/tuva/`` (source in its README).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from pipeline.io import SOURCE_ROW
from pipeline.run import read_claims
from pipeline.validate import Validated, validate_claims
from schemas import claims as claims_contract

SEED = Path(__file__).parent / "data" / "tuva" / "medical_claim_seed.csv"
AS_OF = datetime(2026, 6, 30, 23, 59, 59)
LINES = 2075


@dataclass(frozen=True)
class Seed:
    header: list[str]
    rows: list[dict[str, str]]  # as written, in file order
    result: Validated

    def rows_where(self, **conditions: str) -> set[int]:
        """1-based data rows whose values equal ``conditions``."""
        return {
            number
            for number, row in enumerate(self.rows, start=1)
            if all(row[k] == v for k, v in conditions.items())
        }


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    with SEED.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    assert "plan_type" not in header
    path = tmp_path_factory.mktemp("tuva") / "medical_claim.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*header, "plan_type"])
        writer.writeheader()
        writer.writerows(row | {"plan_type": "MEDICARE"} for row in rows)
    lines, files = read_claims([str(path)])
    assert files[0].rows == len(lines)
    return Seed(header, rows, validate_claims(lines, AS_OF))


def test_every_line_is_read(seed: Seed) -> None:
    assert len(seed.rows) == LINES
    assert len(seed.header) == 148
    valid, rejects = seed.result.valid, seed.result.rejects
    assert len(valid) + seed.result.rejected_rows == LINES
    assert set(valid[SOURCE_ROW]).isdisjoint(rejects["source_row"])
    assert set(valid[SOURCE_ROW]) | set(rejects["source_row"]) == set(range(1, LINES + 1))


def test_only_the_eight_13I_bill_types_are_rejected(seed: Seed) -> None:
    rejects = seed.result.rejects
    assert len(rejects) == 8
    assert set(rejects["source_row"]) == seed.rows_where(bill_type_code="13I")
    assert rejects["column"].eq("bill_type_code").all()
    assert rejects["check"].eq("bill_type_format").all()
    assert rejects["value"].eq("13I").all()
    assert rejects["message"].str.startswith("bill_type_code '13I' is not a three-digit").all()
    assert set(rejects["claim_id"]) == {"586910", "909563", "1501126", "1377962"}
    assert len(seed.result.valid) == LINES - 8


def test_institutional_lines_without_hcpcs_are_valid(seed: Seed) -> None:
    no_code = seed.rows_where(claim_type="institutional", hcpcs_code="")
    assert len(no_code) == 149
    bad_bill_type = seed.rows_where(bill_type_code="13I")
    valid = set(seed.result.valid[SOURCE_ROW])
    assert no_code - bad_bill_type <= valid
    assert len(no_code - bad_bill_type) == 146


def test_institutional_lines_without_line_dates_are_valid(seed: Seed) -> None:
    no_date = seed.rows_where(claim_type="institutional", claim_line_start_date="")
    assert len(no_date) == 500
    valid = set(seed.result.valid[SOURCE_ROW])
    assert no_date - seed.rows_where(bill_type_code="13I") <= valid


def test_lines_with_empty_or_zero_units_are_valid(seed: Seed) -> None:
    valid = set(seed.result.valid[SOURCE_ROW])
    for units in ("", "0"):
        rows = seed.rows_where(service_unit_quantity=units) - seed.rows_where(bill_type_code="13I")
        assert rows
        assert rows <= valid


def test_columns_outside_the_contract_are_kept_unchanged(seed: Seed) -> None:
    valid = seed.result.valid
    extra = [c for c in seed.header if c not in claims_contract.CONTRACT_COLUMNS]
    assert {"payer", "hcpcs_modifier_5", "paid_amount", "person_id"} <= set(extra)
    assert len(extra) == 102
    assert set(claims_contract.CONTRACT_COLUMNS) - set(seed.header) == {
        "plan_type",
        "claim_frequency_code",
        "original_claim_id",
        "ordering_npi",
        "prior_authorization_number",
    }
    written = pd.DataFrame(seed.rows).iloc[valid[SOURCE_ROW].to_numpy() - 1]
    for name in extra:
        # As written; an empty cell is read as empty (null), as in every column.
        assert valid[name].fillna("").tolist() == written[name].tolist(), name


def test_contract_columns_keep_their_text(seed: Seed) -> None:
    valid = seed.result.valid
    written = pd.DataFrame(seed.rows).iloc[valid[SOURCE_ROW].to_numpy() - 1]
    for name in ("claim_id", "revenue_center_code", "rendering_npi", "charge_amount"):
        # Empty is read as missing; everything else exactly as written.
        assert valid[name].fillna("").tolist() == written[name].tolist(), name
    assert valid["revenue_center_code"].dropna().str.fullmatch(r"\d{4}").all()
    assert valid["plan_type"].eq("MEDICARE").all()
