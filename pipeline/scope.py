"""Step 1 of the policy: is the line in the program, and are records required?

Also the typed view of valid claim lines that every later step reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.io import categories_of, text_at
from pipeline.rules import Rules
from schemas.checks import all_empty, arrow, coded, codes_of
from schemas.claims import DIAGNOSIS_COLUMNS, MODIFIER_COLUMNS, date_of_service


def claim_codes(claim_id: pd.Series) -> np.ndarray:
    """A dense integer per claim (or per value of any text column; a missing value has
    one of its own), for claim-level flags without text group-bys."""
    return codes_of(claim_id)


def line_facts(lines: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """The typed facts of valid claim lines that the policy's steps read.

    ``lines`` is validated text; the result has the same (positional) index.
    """
    dos = date_of_service(lines)
    claim = claim_codes(lines["claim_id"])
    modifiers = [lines[c] for c in MODIFIER_COLUMNS if c in lines]
    professional_component = np.zeros(len(lines), dtype=bool)
    for modifier in modifiers:
        professional_component |= modifier.isin(rules.professional_component_modifiers).to_numpy(
            dtype=bool
        )
    frequency = lines["claim_frequency_code"].fillna("1")
    void = frequency.eq("8").to_numpy(bool)
    bill_type = lines["bill_type_code"].str.replace(r"^0(\d{3})$", r"\1", regex=True)
    units = _numbers(lines["service_unit_quantity"], pa.float64()).fillna(1.0)
    rendered_by = pd.Series(
        pd.arrays.ArrowExtensionArray(
            pc.coalesce(
                *(arrow(lines[c]) for c in ("rendering_npi", "facility_npi", "billing_npi"))
            )
        ),
        index=lines.index,
    )
    return pd.DataFrame(
        {
            "claim": claim,
            "claim_id": lines["claim_id"],
            "line_number": _numbers(lines["claim_line_number"], pa.int64()).astype("int64"),
            "claim_type": lines["claim_type"],
            "member_id": lines["member_id"],
            "plan_type": lines["plan_type"],
            "date_of_service": dos,
            "place_of_service": lines["place_of_service_code"],
            "bill_type": bill_type,
            "revenue_code": lines["revenue_center_code"],
            "hcpcs_code": lines["hcpcs_code"],
            "professional_component": professional_component,
            "void": void,
            "takes_no_units": professional_component | void | _released(lines, frequency),
            "units": units.astype("float64"),
            "rendering_npi": lines["rendering_npi"],
            "facility_npi": lines["facility_npi"],
            "billing_npi": lines["billing_npi"],
            "rendered_by": rendered_by,
            "prior_authorization_number": reported_numbers(lines, claim),
            "behavioral_health": behavioral_health(lines, rules),
        },
        index=lines.index,
    )


def reported_numbers(lines: pd.DataFrame, claim: np.ndarray) -> pd.Series:
    """The authorization number each line reports: its own, else its claim's, where the
    claim's lines report one number (POLICY §3: "where the claim reports" one). A claim
    whose lines report several leaves a line without one to the usual preference.
    ``claim``: each line's claim code (:func:`claim_codes`)."""
    own = lines["prior_authorization_number"]
    given = own.notna().to_numpy(bool)
    if given.all() or not given.any():
        return own
    numbers, number = coded(arrow(own))  # a missing number: past the end
    claims = int(claim.max()) + 1
    # Each claim's number (the last given), none where it gave another too.
    its_number = np.full(claims, len(numbers))
    its_number[claim[given]] = number[given]
    differs = number[given] != its_number[claim[given]]
    its_number[np.bincount(claim[given][differs], minlength=claims) > 0] = len(numbers)
    filled = np.where(given, number, its_number[claim])
    taken = pa.array(filled, mask=filled == len(numbers))
    return pd.Series(pd.arrays.ArrowExtensionArray(numbers.take(taken)), index=lines.index)


def _numbers(text: pd.Series, kind: pa.DataType) -> pd.Series:
    """Validated numeric text as numbers (an empty value is missing)."""
    try:
        values = pc.cast(arrow(text), kind).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(text, errors="coerce")
    return pd.Series(values, index=text.index)


def _released(lines: pd.DataFrame, frequency: pd.Series) -> np.ndarray:
    """True on lines of a claim that a replacement (7) or void (8) of the same member names.
    A claim naming its own id (a resubmission under the same id) replaces its earlier
    decision, not its own lines.

    Only the lines of a named claim are matched by member: few, where coding every
    line's member and claim took ~35 ms per 200,000 lines.
    """
    released = np.zeros(len(lines), dtype=bool)
    itself = lines["original_claim_id"].eq(lines["claim_id"]).fillna(False).to_numpy(bool)
    releasing = frequency.isin(["7", "8"]).to_numpy(bool) & ~itself
    if not releasing.any():
        return released
    named = lines.loc[releasing, ["member_id", "original_claim_id"]].dropna()
    maybe = np.flatnonzero(lines["claim_id"].isin(named["original_claim_id"]).to_numpy(bool))
    if len(maybe):
        pairs = pd.MultiIndex.from_arrays(
            [lines["member_id"].iloc[maybe], lines["claim_id"].iloc[maybe]]
        )
        releases = pd.MultiIndex.from_arrays([named["member_id"], named["original_claim_id"]])
        released[maybe] = pairs.isin(releases)
    return released


def behavioral_health(lines: pd.DataFrame, rules: Rules) -> np.ndarray:
    """True where any diagnosis on the line is a behavioral-health one (chapter F)."""
    found = np.zeros(len(lines), dtype=bool)
    pattern = rules.behavioral_health_diagnosis
    for column in DIAGNOSIS_COLUMNS:
        if column in lines and not all_empty(lines[column]):
            matched = pc.match_substring_regex(arrow(lines[column]), pattern)
            found |= np.asarray(pc.fill_null(matched, False).to_numpy(zero_copy_only=False), bool)
    return found


def code_in_force(facts: pd.DataFrame, rules: Rules) -> np.ndarray:
    """Where the code table row in force for each line's code on its date of service is
    in the table (-1 for none): of a code's rows, the one whose dates hold (a code table
    with two rows of one code in force on one day is refused as it is read).

    A line meets its code's rows one version at a time (most codes have one row), by
    position: a join of the lines with the table took twice as long.
    """
    table = rules.code_table
    codes = pa.array(pd.unique(table["hcpcs_code"]), pa.string())
    code_of_row = position_in(arrow(table["hcpcs_code"]), codes)
    version = pd.Series(code_of_row).groupby(code_of_row).cumcount().to_numpy()
    code_of_line = position_in(arrow(facts["hcpcs_code"]), codes)  # -1: not in the table
    listed = np.flatnonzero(code_of_line >= 0)
    dos = facts["date_of_service"].to_numpy()[listed]
    starts = table["effective_from"].to_numpy()
    ends = table["effective_to"].to_numpy()
    chosen = np.full(len(facts), -1, dtype=np.int64)
    for number in range(int(version.max(initial=-1)) + 1):
        row_of_code = np.full(len(codes), -1, dtype=np.int64)
        row_of_code[code_of_row[version == number]] = np.flatnonzero(version == number)
        row = row_of_code[code_of_line[listed]]
        open_ = (row >= 0) & (chosen[listed] < 0)
        at = row[open_]
        holds = (np.isnat(starts[at]) | (starts[at] <= dos[open_])) & (
            np.isnat(ends[at]) | (dos[open_] <= ends[at])
        )
        chosen[listed[open_][holds]] = at[holds]
    return chosen


def position_in(values: pa.ChunkedArray, codes: pa.Array) -> np.ndarray:
    """Where each value is among ``codes``; -1 where it is not there (or missing)."""
    found = pc.fill_null(pc.index_in(values, value_set=codes), -1)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


def _with_none(column: pd.Series) -> list[str | None]:
    """A code table column's values, missing as None, and None after the last row
    (where a line without a row in force is shown, at -1)."""
    return [*arrow(column).to_pylist(), None]


def in_program(facts: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Whether each line is in the program, with its modality, region, family and records.

    A code the table marks behavioral-health-only (SPECT) is in the program only
    with a behavioral-health diagnosis on the line. The table's columns are read at
    each line's row in force, by position.
    """
    table = rules.code_table
    at = code_in_force(facts, rules)
    listed = at >= 0

    def on_lines(flags: pd.Series) -> np.ndarray:
        """A flag of the table's rows on each line (False on a line without a row)."""
        return listed & flags.to_numpy(bool)[at]

    bh = facts["behavioral_health"].to_numpy(bool)
    program = listed & (~on_lines(table["behavioral_health_only"]) | bh)
    records_with_bh = (
        on_lines(
            table["modality"].isin(rules.records_with_behavioral_health_modalities)
            | table["code_family"].isin(rules.records_with_behavioral_health_families)
        )
        & bh
    )
    records = program & (on_lines(table["records_required"]) | records_with_bh)
    shown = np.where(program, at, -1)
    return pd.DataFrame(
        {
            "in_program": program,
            "records_required": records,
            "modality": categories_of(shown, _with_none(table["modality"]), facts.index),
            "body_region": categories_of(shown, _with_none(table["body_region"]), facts.index),
            "code_family": text_at(arrow(table["code_family"]), shown, facts.index),
        },
        index=facts.index,
    )
