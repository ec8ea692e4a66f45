"""What the run publishes: the rejects table and the adjudicated lines (CONTRACT §4)."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

SOURCES = ("claims", "authorizations")
DECISIONS = ("NOT_APPLICABLE", "EXEMPT", "AUTHORIZED", "PEND", "DENY")
REASONS = (
    "EMERGENCY_ROOM",
    "HOSPITAL_URGENT_CARE",
    "INPATIENT",
    "AMBULATORY_SURGERY",
    "PLAN_EXCEPTION",
    "AUTHORIZATION_MATCHED",
    "AUTHORIZATION_PENDING",
    "AUTHORIZATION_RECORD_INVALID",
    "NO_AUTHORIZATION",
    "AUTHORIZATION_DENIED",
    "OUTSIDE_AUTHORIZED_DATES",
    "CODE_NOT_AUTHORIZED",
    "PROVIDER_NOT_AUTHORIZED",
    "UNITS_EXCEEDED",
)


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
        nullable=True, description="The line's claim_line_number as written (empty for the register)."
    )
    column: Series[str] = pa.Field(description="The column the failure is filed under.")
    check: Series[str] = pa.Field(description="The name of the check that failed.")
    value: Series[str] = pa.Field(
        nullable=True, description="The value as read (trimmed, codes upper-cased); empty if none."
    )
    message: Series[str] = pa.Field(description="What was expected, in a sentence a person can act on.")

    class Config:
        strict = True
        ordered = True


REJECT_COLUMNS: tuple[str, ...] = tuple(RejectRow.to_schema().columns)


def empty_rejects() -> pd.DataFrame:
    """A rejects table with no rows and the right columns."""
    frame = pd.DataFrame({name: pd.Series(dtype="str") for name in REJECT_COLUMNS})
    return frame.astype({"source_row": "int64"})
