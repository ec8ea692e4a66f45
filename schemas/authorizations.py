"""The authorization register: one row per authorized code and version (CONTRACT §3).

A status change is a new row with a later ``recorded_at``; the run sees, for
each (authorization_id, hcpcs_code), the latest row recorded at or before its
``--as-of``. The model checks the text as it arrives.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.checks import (
    PRINTABLE,
    PRINTABLE_MESSAGE,
    Text,
    column_rule,
    is_iso_date,
    is_iso_datetime,
    is_one_of,
    matches,
    npi_check_digit_ok,
    parse_dates,
    parse_datetimes,
    printable,
    row_rule,
)
from schemas.claims import HCPCS_SHAPE

STATUSES = ("APPROVED", "PENDING", "DENIED", "CANCELLED")


class AuthorizationInput(pa.DataFrameModel):
    """One row per authorized code and version, as text, as it arrives in the register."""

    authorization_id: Series[Text] = pa.Field(
        nullable=False,
        description="The authorization; one authorization may cover several codes (several rows).",
        metadata={"required": "yes"},
    )
    member_id: Series[Text] = pa.Field(
        nullable=False, description="The member it was granted to.", metadata={"required": "yes"}
    )
    hcpcs_code: Series[Text] = pa.Field(
        nullable=False,
        description="The code authorized, as in claims.",
        metadata={"required": "yes"},
    )
    status: Series[Text] = pa.Field(
        nullable=False,
        description="APPROVED, PENDING, DENIED or CANCELLED (any case).",
        metadata={"required": "yes"},
    )
    valid_from: Series[Text] = pa.Field(
        nullable=False, description="First day covered, YYYY-MM-DD.", metadata={"required": "yes"}
    )
    valid_to: Series[Text] = pa.Field(
        nullable=False,
        description="Last day covered, YYYY-MM-DD, not before valid_from.",
        metadata={"required": "yes"},
    )
    units_approved: Series[Text] = pa.Field(
        nullable=False, description="Units approved, an integer >= 0.", metadata={"required": "yes"}
    )
    provider_npi: Series[Text] = pa.Field(
        nullable=True,
        description="When present, only claims whose rendering, facility or billing NPI "
        "equals it may use this authorization.",
        metadata={"required": "no"},
    )
    recorded_at: Series[Text] = pa.Field(
        nullable=False,
        description="When this version of the row was written: ISO date or date-time, UTC.",
        metadata={"required": "yes"},
    )

    class Config:
        strict = False
        coerce = False

    @column_rule("authorization_id", "member_id", check=PRINTABLE, message=PRINTABLE_MESSAGE)
    def _ids_printable(cls, s: pd.Series) -> pd.Series:
        return printable(s)

    @column_rule(
        "hcpcs_code",
        check="hcpcs_format",
        message="{column} '{value}' is not a five-character CPT or HCPCS code",
    )
    def _hcpcs(cls, s: pd.Series) -> pd.Series:
        return matches(s, HCPCS_SHAPE)

    @column_rule(
        "status",
        check="status_known",
        message="{column} '{value}' is not one of " + ", ".join(STATUSES),
    )
    def _status(cls, s: pd.Series) -> pd.Series:
        return is_one_of(s, STATUSES)

    @column_rule(
        "valid_from",
        "valid_to",
        check="iso_date",
        message="{column} '{value}' is not a real date written YYYY-MM-DD",
    )
    def _dates(cls, s: pd.Series) -> pd.Series:
        return is_iso_date(s)

    @column_rule(
        "units_approved",
        check="non_negative_integer",
        message="{column} '{value}' is not a whole number from 0 to 999999999",
    )
    def _units(cls, s: pd.Series) -> pd.Series:
        return matches(s, r"0*\d{1,9}")  # zeros before it, as an extract pads: 0000000001

    @column_rule(
        "provider_npi",
        check="npi_format",
        message="{column} '{value}' is not a ten-digit NPI",
    )
    def _npi_format(cls, s: pd.Series) -> pd.Series:
        return matches(s, r"\d{10}")

    @column_rule(
        "provider_npi",
        check="npi_check_digit",
        message="{column} '{value}' fails the NPI check digit (Luhn over 80840 and the "
        "first nine digits); is a digit mistyped?",
    )
    def _npi_luhn(cls, s: pd.Series) -> pd.Series:
        return npi_check_digit_ok(s)

    @column_rule(
        "recorded_at",
        check="iso_datetime",
        message="{column} '{value}' is not an ISO date-time in UTC "
        "(YYYY-MM-DDTHH:MM:SS, optionally with Z)",
    )
    def _recorded_at(cls, s: pd.Series) -> pd.Series:
        return is_iso_datetime(s)

    @row_rule(
        column="valid_to",
        check="not_before_start",
        reads=("valid_from", "valid_to"),
        message="{column} '{value}' is before valid_from",
    )
    def _dates_ordered(cls, df: pd.DataFrame) -> pd.Series:
        start = parse_dates(df["valid_from"])
        end = parse_dates(df["valid_to"])
        return ~(end < start).fillna(False).astype(bool)

    @row_rule(
        column="recorded_at",
        check="duplicate_version",
        reads=("authorization_id", "hcpcs_code", "recorded_at"),
        message="two rows record (authorization_id, hcpcs_code) at the same moment {value}; "
        "every copy is rejected since neither can be said to be the later",
    )
    def _unique_version(cls, df: pd.DataFrame) -> pd.Series:
        moment = parse_datetimes(df["recorded_at"])
        key = pd.DataFrame(
            {
                "authorization_id": df["authorization_id"],
                "hcpcs_code": df["hcpcs_code"],
                "recorded_at": moment,
                # A value that is not a moment (rejected by its format check)
                # is compared as written: "yesterday" and "last week" differ.
                "unparsed": df["recorded_at"].where(moment.isna()),
            }
        )
        return ~key.duplicated(keep=False)


CONTRACT_COLUMNS: tuple[str, ...] = tuple(AuthorizationInput.to_schema().columns)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    name for name in CONTRACT_COLUMNS if name != "provider_npi"
)
UPPER_CASE_COLUMNS: tuple[str, ...] = ("hcpcs_code", "status")
