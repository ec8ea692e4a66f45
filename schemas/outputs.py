"""What the run publishes: the rejects table and the adjudicated lines (CONTRACT §4)."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from schemas.values import DENIAL_REASONS, SETTING_REASONS

SOURCES = ("claims", "authorizations")
DECISIONS = ("NOT_APPLICABLE", "EXEMPT", "AUTHORIZED", "PEND", "DENY")
REASONS = (
    *(reason for reason in SETTING_REASONS if reason != "OBSERVATION"),
    "PLAN_EXCEPTION",
    "OBSERVATION",
    "AUTHORIZATION_MATCHED",
    "AUTHORIZATION_PENDING",
    "AUTHORIZATION_RECORD_INVALID",
    *DENIAL_REASONS,
)
"""Every reason, in the order of the output's categories (EMERGENCY_ROOM first)."""


class RejectRow(pa.DataFrameModel):
    """One row per failed check of one input row; a row with several failures has several."""

    source: Series[str] = pa.Field(
        isin=SOURCES, description="`claims` or `authorizations`: which input the row came from."
    )
    source_file: Series[str] = pa.Field(description="The input file, as named on the command line.")
    source_row: Series[int] = pa.Field(ge=1, description="The row's 1-based data row in that file.")
    claim_id: Series[str] = pa.Field(
        nullable=True, description="The line's claim_id as written (empty for the register)."
    )
    claim_line_number: Series[str] = pa.Field(
        nullable=True,
        description="The line's claim_line_number as written (empty for the register).",
    )
    column: Series[str] = pa.Field(description="The column the failure is filed under.")
    check: Series[str] = pa.Field(description="The name of the check that failed.")
    value: Series[str] = pa.Field(
        nullable=True, description="The value as read (trimmed, codes upper-cased); empty if none."
    )
    message: Series[str] = pa.Field(
        description="What was expected, in a sentence a person can act on."
    )

    class Config:
        strict = True
        ordered = True


REJECT_COLUMNS: tuple[str, ...] = tuple(RejectRow.to_schema().columns)
REJECT_SCHEMA = pyarrow.schema(
    [
        pyarrow.field(name, pyarrow.int64() if name == "source_row" else pyarrow.string())
        for name in REJECT_COLUMNS
    ]
)
"""rejects.parquet's columns as written, whatever a run's rejects hold: text, and the
source row as a number (a column with no value at all is still text)."""


def empty_rejects() -> pd.DataFrame:
    """A rejects table with no rows and the right columns."""
    frame = pd.DataFrame({name: pd.Series(dtype="str") for name in REJECT_COLUMNS})
    return frame.astype({"source_row": "int64"})


class AdjudicatedLine(pa.DataFrameModel):
    """One row per valid claim line: its input columns (as read), lineage, and the decision.

    The claims contract's columns come first in contract order (all of them,
    empty where a file lacked one), then any columns the file carried beyond
    the contract, then ``source_file`` and ``source_row``, then these.
    """

    source_file: Series[str] = pa.Field(description="The input file the line came from.")
    source_row: Series[int] = pa.Field(
        ge=1, description="The line's 1-based data row in that file."
    )
    decision: Series[str] = pa.Field(
        isin=DECISIONS,
        description="NOT_APPLICABLE, EXEMPT, AUTHORIZED, PEND or DENY.",
    )
    reason: Series[str] = pa.Field(
        nullable=True,
        isin=REASONS,
        description="Why; empty for NOT_APPLICABLE.",
    )
    carc: Series[str] = pa.Field(
        nullable=True, description="X12 Claim Adjustment Reason Code for a DENY, else empty."
    )
    rarc: Series[str] = pa.Field(
        nullable=True, description="Remittance Advice Remark Code where one applies, else empty."
    )
    group_code: Series[str] = pa.Field(
        nullable=True,
        isin=["CO"],
        description="CO for a DENY (provider liability, member held harmless), else empty.",
    )
    liable_npi: Series[str] = pa.Field(
        nullable=True,
        description="For a DENY: the rendering provider's NPI (an institutional line without "
        "one: its facility_npi, else billing_npi); never the ordering provider's.",
    )
    denied_amount: Series[object] = pa.Field(
        description="charge_amount for a DENY, else 0 (decimal, two places)."
    )
    matched_authorization_id: Series[str] = pa.Field(
        nullable=True,
        description="The authorization used, for AUTHORIZED, PEND and DENY where one was found.",
    )
    code_substituted: Series[bool] = pa.Field(
        description="True when the authorization was for another code of the same family."
    )
    records_required: Series[bool] = pa.Field(
        description="True when the policy requires medical records with the request."
    )
    modality: Series[str] = pa.Field(
        nullable=True, description="From the program's code table, for codes in the program."
    )
    body_region: Series[str] = pa.Field(
        nullable=True, description="From the program's code table, for codes in the program."
    )
    run_id: Series[str] = pa.Field(
        description="The run's id: a digest of its inputs, --as-of and rules."
    )

    class Config:
        strict = False
