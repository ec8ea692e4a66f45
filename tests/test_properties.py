"""Invariants of claims validation over messy, generated files (STYLE §14).

Hypothesis writes claim files that mix good values with junk in most columns,
shares claim ids and line numbers between rows, and copies whole rows; the
validator must put every row in exactly one of valid or rejected, explain
every reject, and say the same thing twice.
"""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.io import SOURCE_ROW
from pipeline.run import read_claims
from pipeline.validate import validate_claims
from schemas.claims import CLAIM_TYPES, PLAN_TYPES, REQUIRED_COLUMNS

AS_OF = datetime(2026, 6, 30, 23, 59, 59)
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "25"))
"""Each example validates twice (~0.2 s each, mostly pandera's fixed cost); raise for a deep run."""
VALID_NPIS = ["1234567893", "1467498014", "1003811290", "1999999992", "1555555550", "1777777776"]
BAD_NPIS = ["1234567890", "123456789", "12345678930", "NPI1234567"]

junk = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
    max_size=8,
)
"""Any short text without control characters: blanks, commas, quotes, letters, digits."""


def column(good: list[str], bad: list[str]) -> tuple[list[str], st.SearchStrategy[str]]:
    """A column's good values, and what it holds when it is messy: good, bad or junk."""
    return good, st.one_of(st.sampled_from(good), st.sampled_from(bad), junk)


NPI_GOOD, NPI_MESSY = column(VALID_NPIS, [*BAD_NPIS, ""])

COLUMNS: dict[str, tuple[list[str], st.SearchStrategy[str]]] = {
    "claim_type": column(["professional", "institutional", "Institutional"], ["dental", ""]),
    "plan_type": column(["HMO", "ppo", "MEDICARE"], ["HMOX", ""]),
    "claim_frequency_code": column(["", "1"], ["7", "8", "9"]),
    "original_claim_id": column(["", "C0"], [""]),
    "claim_start_date": column(["2026-03-01"], ["", "2026-02-30", "2026-07-01"]),
    "claim_end_date": column(["", "2026-03-31"], ["2026-02-01"]),
    "claim_line_start_date": column(["2026-03-10", "2026-06-30"], ["", "2026-07-01", "13/01/2025"]),
    "claim_line_end_date": column(["", "2026-06-30"], ["2026-03-09"]),
    "place_of_service_code": column(["11", "02", " 23 "], ["2", "98", ""]),
    "bill_type_code": column(["131", "0131"], ["13I", "999", "13", ""]),
    "revenue_center_code": column(["", "0450", "0001"], ["450", "0002"]),
    "hcpcs_code": column(["70553", "g0204"], ["70553.0", "", "7055"]),
    "hcpcs_modifier_1": column(["", "26", "tc"], ["X"]),
    "service_unit_quantity": column(["", "0", "1", "2.5"], ["-1", "one"]),
    "rendering_npi": (NPI_GOOD, NPI_MESSY),
    "billing_npi": (NPI_GOOD, NPI_MESSY),
    "facility_npi": (NPI_GOOD, NPI_MESSY),
    "ordering_npi": (["", *VALID_NPIS], NPI_MESSY),
    "diagnosis_code_1": column(["", "F32.A", "F329", "G4489"], ["123"]),
    "diagnosis_code_25": column(["", "F329"], ["123"]),
    "charge_amount": column(["1200.00", "0", "7.5"], ["12.345", "-5.00", "1,000.00", ""]),
}
"""Every other contract column: its good values, and a strategy for when it is messy."""

KEYS: dict[str, tuple[list[str], st.SearchStrategy[str]]] = {
    "claim_id": column(["C1", "C2", "C3", "C4", " C1 "], ["", "C" * 51]),
    "claim_line_number": column(["1", "2", "3", "01"], ["0", "x", "1.0", ""]),
    "member_id": column(["M1"], [" M1 ", "M2", ""]),
}
"""Drawn from small sets even when good, so that rows share claims and lines."""

HEADER = [*KEYS, *COLUMNS, "payer"]


@st.composite
def claim_files(draw: st.DrawFn) -> list[dict[str, str]]:
    """Rows of a claims file: a few messy columns, the rest good; some rows copied.

    ``payer`` is outside the contract and always junk. Few messy columns per
    file keep an example cheap (pandera's cost grows with the failing checks)
    while the examples between them reach every column.
    """
    every = KEYS | COLUMNS
    messy = draw(st.sets(st.sampled_from(sorted(every)), min_size=1, max_size=4))
    row = st.fixed_dictionaries(
        {
            name: messy_values if name in messy else st.sampled_from(good)
            for name, (good, messy_values) in every.items()
        }
        | {"payer": junk}
    )
    rows = draw(st.lists(row, min_size=1, max_size=20))
    copies = draw(st.lists(st.integers(0, len(rows) - 1), max_size=3))
    return rows + [dict(rows[i]) for i in copies]


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rows=claim_files())
def test_every_row_lands_in_exactly_one_place(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, str]]
) -> None:
    path = tmp_path_factory.mktemp("messy") / "claims.csv"
    write_csv(path, rows)
    lines, files = read_claims([str(path)])
    assert files[0].rows == len(rows)

    first = validate_claims(lines, AS_OF)
    valid, rejects = first.valid, first.rejects

    # Exactly one place per row.
    valid_rows = valid[SOURCE_ROW]
    rejected_rows = set(rejects["source_row"])
    assert valid_rows.is_unique
    assert rejected_rows.isdisjoint(valid_rows)
    assert rejected_rows | set(valid_rows) == set(range(1, len(rows) + 1))

    # Every reject is filed and explained.
    for name in ("column", "check", "message"):
        assert rejects[name].notna().all()
        assert rejects[name].str.len().gt(0).all()
    # Every placeholder is filled; a value that is itself "{column}" is quoted as written.
    braced = rejects["value"].fillna("").str.contains("{", regex=False)
    messages = rejects["message"][~braced]
    assert not messages.str.contains("{value}", regex=False).any()
    assert not messages.str.contains("{column}", regex=False).any()
    for value, message in zip(rejects["value"][braced], rejects["message"][braced], strict=True):
        assert value in message
    assert not rejects[["source_row", "column", "check"]].duplicated().any()

    # What the contract promises of every valid line.
    assert valid[list(REQUIRED_COLUMNS)].notna().all().all()
    assert valid["claim_type"].isin(CLAIM_TYPES).all()
    assert valid["plan_type"].isin(PLAN_TYPES).all()
    line_key = pd.DataFrame(
        {"claim": valid["claim_id"], "line": valid["claim_line_number"].astype("int64")}
    )
    assert not line_key.duplicated().any()
    for name in ("member_id", "claim_type", "plan_type"):
        assert valid.groupby("claim_id")[name].nunique(dropna=False).le(1).all()
    # An empty CSV cell is read as empty (null), in passed-through columns too.
    payer = [None if pd.isna(v) else v for v in valid["payer"].tolist()]
    assert payer == [rows[r - 1]["payer"] or None for r in valid_rows]

    # The same input twice gives the same frames.
    again = validate_claims(lines, AS_OF)
    pd.testing.assert_frame_equal(again.valid, valid)
    pd.testing.assert_frame_equal(again.rejects, rejects)
