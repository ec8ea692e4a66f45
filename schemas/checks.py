"""Named, vectorised checks shared by the input contracts.

Every check carries the name an analyst reads in ``rejects.parquet`` and a
message template that says what was expected. Column checks are registered
with :func:`column_rule`; rules that need several columns of a row (or several
rows) are registered with :func:`row_rule` and name the one column the reject
is filed under.

Templates use ``{column}`` and ``{value}``; :func:`message_template` returns
them for the validator, which fills them for every failure at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

NOT_NULLABLE = "not_nullable"
"""pandera's own name for an empty value in a required column."""


@dataclass(frozen=True)
class Rule:
    """What a reject says: the column it is filed under, the check, the message."""

    column: str | None
    check: str
    message: str


_MESSAGES: dict[str, str] = {NOT_NULLABLE: "{column} is required and is empty"}
_ROW_RULES: dict[str, Rule] = {}


def column_rule(
    *columns: str, check: str, message: str, regex: bool = False
) -> Callable[[Any], Any]:
    """Register a pandera column check under ``check`` with its message.

    A check name means one thing wherever it is used, so it has one message.
    """
    _MESSAGES[check] = message
    return pa.check(*columns, regex=regex, name=check)


def row_rule(*, column: str, check: str, message: str) -> Callable[[Any], Any]:
    """Register a pandera dataframe check whose rejects are filed under ``column``."""
    key = f"{column}/{check}"
    _ROW_RULES[key] = Rule(column, check, message)
    return pa.dataframe_check(name=key, ignore_na=False)


def register_row_rule(column: str, check: str, message: str) -> str:
    """Register a dataframe check built at run time; returns its pandera name."""
    key = f"{column}/{check}"
    _ROW_RULES[key] = Rule(column, check, message)
    return key


def row_rule_for(pandera_name: str) -> Rule | None:
    """The rule behind a dataframe check's pandera name, if it is one of ours."""
    return _ROW_RULES.get(pandera_name)


def message_template(check: str) -> str:
    """The message template for a failure of column check ``check``."""
    return _MESSAGES.get(check, "{column} '{value}' failed check " + check)


def row_rules() -> list[Rule]:
    """Every registered row rule, for the generated column reference."""
    return list(_ROW_RULES.values())


# --- vectorised primitives ---------------------------------------------------
# Each returns a boolean Series that is True where the value is acceptable.
# Empty values are pandera's business (``nullable``), so they pass here.


def matches(series: pd.Series, pattern: str) -> pd.Series:
    """True where the whole value matches ``pattern`` (or is empty)."""
    return series.str.fullmatch(pattern).fillna(True).astype(bool) | series.isna()


ISO_DATE = r"\d{4}-\d{2}-\d{2}"
ISO_DATETIME = (
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
    r"(?:Z|[+-]00:?00)?"
)


def parse_dates(series: pd.Series) -> pd.Series:
    """ISO ``YYYY-MM-DD`` text to datetime64; anything else, impossible days included, NaT."""
    shaped = series.where(series.str.fullmatch(ISO_DATE).fillna(False).astype(bool))
    return pd.to_datetime(shaped, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


def parse_datetimes(series: pd.Series) -> pd.Series:
    """ISO date or date-time text (UTC) to naive UTC datetime64; anything else NaT."""
    shaped = series.where(series.str.fullmatch(ISO_DATETIME).fillna(False).astype(bool))
    text = shaped.str.replace(r"(?:Z|[+-]00:?00)$", "", regex=True).str.replace(" ", "T")
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    return parsed.astype("datetime64[s]")


def is_iso_date(series: pd.Series) -> pd.Series:
    """A real calendar day written ``YYYY-MM-DD``."""
    return parse_dates(series).notna() | series.isna()


def is_iso_datetime(series: pd.Series) -> pd.Series:
    """A real moment written as an ISO date or date-time in UTC."""
    return parse_datetimes(series).notna() | series.isna()


def npi_check_digit_ok(series: pd.Series) -> pd.Series:
    """The NPI's tenth digit is the Luhn check digit over ``80840`` and the first nine.

    Values that are not ten digits pass here; the format check reports them.
    """
    ten_digits = series.str.fullmatch(r"\d{10}").fillna(False).astype(bool).to_numpy()
    result = np.ones(len(series), dtype=bool)
    if not ten_digits.any():
        return pd.Series(result, index=series.index)
    numbers = series[ten_digits].astype("int64").to_numpy()
    digits = (numbers[:, None] // 10 ** np.arange(9, -1, -1)) % 10
    body, check_digit = digits[:, :9], digits[:, 9]
    doubled = body[:, 0::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    # 24 is the Luhn sum of the 80840 prefix in these positions.
    total = 24 + doubled.sum(axis=1) + body[:, 1::2].sum(axis=1)
    result[ten_digits] = (10 - total % 10) % 10 == check_digit
    return pd.Series(result, index=series.index)


def in_code_set(series: pd.Series, codes: frozenset[str], shape: str) -> pd.Series:
    """Values of the right shape are in ``codes``; values of the wrong shape pass here."""
    shaped = series.str.fullmatch(shape).fillna(False).astype(bool)
    return ~shaped | series.isin(codes) | series.isna()


def regex_escape(values: Iterable[str]) -> str:
    """An alternation that matches exactly one of ``values``."""
    return "|".join(re.escape(v) for v in sorted(values))
