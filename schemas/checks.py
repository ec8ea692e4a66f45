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
from typing import Annotated, Any, Final, TypeVar

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc

_R = TypeVar("_R")

NOT_NULLABLE = "not_nullable"
"""pandera's own name for an empty value in a required column."""


@dataclass(frozen=True)
class Rule:
    """What a reject says: the column it is filed under, the check, the message."""

    column: str | None
    check: str
    message: str
    reads: tuple[str, ...]
    """The only columns the rule reads (see :func:`row_rule`)."""


_MESSAGES: dict[str, str] = {NOT_NULLABLE: "{column} is required and is empty"}
_ROW_RULES: dict[str, Rule] = {}


def column_rule(
    *columns: str, check: str, message: str, regex: bool = False
) -> Callable[[Any], Any]:
    """Register a pandera column check under ``check`` with its message.

    A check name means one thing wherever it is used, so it has one message. The
    check sees the whole column, empty values included (they pass: see the
    primitives below): left to pandera, each check's column would be copied without
    its empty values first, and the columns the checks compute once
    (:func:`remembered`) would differ from check to check.
    """
    _MESSAGES[check] = message
    return pandera.check(*columns, regex=regex, name=check, ignore_na=False)


def row_rule(
    *, column: str, check: str, message: str, reads: tuple[str, ...]
) -> Callable[[Any], Any]:
    """Register a pandera dataframe check whose rejects are filed under ``column``.

    ``reads``: the only columns the rule reads; it is checked on those columns alone.
    Pandera reshapes every column it is given for each failing row (for Arrow text,
    0.5 s per 12,000 rows of 18 columns), and a rule over a whole claim fails every
    line of it. A rule that reads a column it does not name fails every validation
    ("validation failed without naming rows").
    """
    key = f"{column}/{check}"
    _ROW_RULES[key] = Rule(column, check, message, reads)
    return pandera.dataframe_check(name=key, ignore_na=False)


def register_row_rule(column: str, check: str, message: str, reads: tuple[str, ...]) -> str:
    """Register a dataframe check built at run time; returns its pandera name."""
    key = f"{column}/{check}"
    _ROW_RULES[key] = Rule(column, check, message, reads)
    return key


def row_rule_for(pandera_name: str) -> Rule | None:
    """The rule behind a dataframe check's pandera name, if it is one of ours."""
    return _ROW_RULES.get(pandera_name)


def message_template(check: str) -> str:
    """The message template for a failure of column check ``check``."""
    return _MESSAGES.get(check, "{column} '{value}' failed check " + check)


# --- vectorised primitives ---------------------------------------------------
# Each returns a boolean Series that is True where the value is acceptable.
# Empty values are pandera's business (``nullable``), so they pass here. Text
# columns are Arrow strings; the work is done by Arrow compute kernels.

TEXT_DTYPE = pd.ArrowDtype(pa.string())
Text = Annotated[pd.ArrowDtype, pa.string()]
"""The type of every input column: Arrow-backed text, read without conversion."""


def arrow(series: pd.Series) -> pa.ChunkedArray:
    """The Arrow text behind a Series (no copy for Arrow-backed columns)."""
    if series.dtype == TEXT_DTYPE:
        return series.array.__arrow_array__()
    if isinstance(series.array, pd.arrays.ArrowStringArray):  # pandas' "str": large_string
        return series.array.__arrow_array__().cast(pa.string())
    values = series.astype("object").where(series.notna(), None)
    return pa.chunked_array([pa.array(values, type=pa.string(), from_pandas=True)])


def one_array(text: pa.ChunkedArray) -> pa.Array:
    """A text column's chunks as one array (no chunk at all: empty text)."""
    return pa.chunked_array(text.chunks, pa.string()).combine_chunks()


def text_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A text array's UTF-8 bytes and where its values start in them: ``len(text) + 1``
    offsets counted from 0, and the bytes they index (read in place, not copied)."""
    text = text.cast(pa.large_string())
    _, offset_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[
        text.offset : text.offset + len(text) + 1
    ]
    if data_buffer is None:
        return np.zeros(len(text) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return offsets - offsets[0], data


def as_mask(values: pa.ChunkedArray | pa.Array, index: pd.Index, empty: bool) -> pd.Series:
    """An Arrow boolean array as a pandas boolean Series; nulls become ``empty``."""
    filled = pc.fill_null(values, empty)
    return pd.Series(np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool), index=index)


PRINTABLE = "printable_text"
PRINTABLE_MESSAGE = "{column} '{value}' holds a control character (a byte below 0x20, or DEL)"


def printable(series: pd.Series) -> pd.Series:
    """True where a value holds no control character (a byte below 0x20, or DEL): a NUL
    in a member id is no id the register can name, and would be decided as one. One
    look at the column's bytes; its rows only where one is found."""
    offsets, data = text_bytes(one_array(arrow(series)))
    control = (data < 0x20) | (data == 0x7F)
    keep = np.ones(len(series), dtype=bool)
    if control.any():
        keep[np.searchsorted(offsets, np.flatnonzero(control), side="right") - 1] = False
    return pd.Series(keep, index=series.index)


def all_empty(series: pd.Series) -> bool:
    """True for a column with no value at all (most of the 25 diagnosis columns)."""
    return bool(arrow(series).null_count == len(series))


def matches(series: pd.Series, pattern: str) -> pd.Series:
    """True where the whole value matches ``pattern`` (or is empty)."""
    if all_empty(series):
        return pd.Series(np.ones(len(series), dtype=bool), index=series.index)
    if digits := _DIGITS.fullmatch(pattern):
        shaped, _ = digit_values(series, int(digits[1]))
        return pd.Series(shaped | series.isna().to_numpy(bool), index=series.index)
    if (coded := distinct_values(series)) is not None:
        values, position = coded
        return _spread(whole_match(values, pattern), position, series.index)
    return as_mask(whole_match(arrow(series), pattern), series.index, True)


FEW_VALUES_SAMPLE = 2048
"""How many values of a column are looked at to tell whether it holds few distinct ones."""


def distinct_values(series: pd.Series) -> tuple[pa.Array, np.ndarray] | None:
    """A column's distinct values and each row's place among them (the empty value past
    the end), where they are few: a column of codes is checked a value at a time, and
    each row takes its value's answer (200,000 diagnoses of 31 values: regular
    expression 6.5 ms -> 3.2 ms). None where the first values read are mostly distinct
    (amounts, ids), which are checked row by row: the coding would cost more than it
    saves. Either way the answers are the same."""
    return remembered(series, "distinct", _distinct)


def _distinct(series: pd.Series) -> tuple[pa.Array, np.ndarray] | None:
    text = one_array(arrow(series))
    sample = text.slice(0, FEW_VALUES_SAMPLE)
    if len(pc.unique(sample)) * 8 > len(sample):
        return None
    return coded(text)


def coded(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Text's distinct values, in the order first met, and each row's place among them
    (a missing value: past the end), by Arrow's dictionary encoding."""
    if isinstance(text, pa.ChunkedArray):
        text = one_array(text)
    encoded = pc.dictionary_encode(text)
    position = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return encoded.dictionary, np.asarray(position, dtype=np.int64)


def codes_of(series: pd.Series) -> np.ndarray:
    """Each row's place among a text column's distinct values (see :func:`coded`),
    computed once for the same column (see :func:`remembered`): the checks' claim codes
    and the kernel's are one computation where a validation's rows are decided."""
    return remembered(series, "codes", _codes_of)


def _codes_of(series: pd.Series) -> np.ndarray:
    return coded(arrow(series))[1]


def _spread(answers: pa.Array, position: np.ndarray, index: pd.Index) -> pd.Series:
    """Each row's answer from its value's (``answers``, one per distinct value; the
    empty value, past the end, passes)."""
    per_value = np.asarray(pc.fill_null(answers, True).to_numpy(zero_copy_only=False), bool)
    return pd.Series(np.append(per_value, True)[position], index=index)


def fixed_width(values: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the values of ``width`` bytes, and their bytes, a row each (read in
    place where no other value holds a byte, as in a column of one width and empties)."""
    offsets, data = text_bytes(values)
    present = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(present & (np.diff(offsets) == width))
    if len(data) == width * len(rows):
        return rows, data.reshape(len(rows), width)
    # Those values alone, taken by Arrow, lie end to end: a million ten-byte values
    # among a few others, 27 ms against 40-175 ms for NumPy's gather of each byte.
    _, packed = text_bytes(values.take(pa.array(rows)))
    return rows, packed.reshape(len(rows), width)


def digit_values(series: pd.Series, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Which values are ``count`` ASCII digits, and those values' digits, a row each.

    Read from the bytes once a column, for the format check and the NPI check digit
    alike (four NPI columns of 200,000 lines, both checks: 34 ms -> 15 ms).
    """
    return remembered(series, f"digits-{count}", lambda s: _digit_values(arrow(s), count))


def digits_as_numbers(series: pd.Series) -> np.ndarray | None:
    """The numbers written, where every value is 1 to 18 ASCII digits (leading zeros
    read as numbers do: ``01`` is 1); None where any value is anything else."""
    values = one_array(arrow(series))
    if values.null_count or not len(values):
        return None
    offsets, data = text_bytes(values)
    lengths = np.diff(offsets)
    if lengths.min() < 1 or lengths.max() > 18:  # 19 digits may not fit in 64 bits
        return None
    if not bool(((data - np.uint8(ord("0"))) < 10).all()):
        return None
    return np.asarray(pc.cast(values, pa.int64()).to_numpy(), dtype=np.int64)


def _digit_values(text: pa.ChunkedArray, count: int) -> tuple[np.ndarray, np.ndarray]:
    values = one_array(text)
    rows, matrix = fixed_width(values, count)
    digits = matrix - np.uint8(ord("0"))  # below "0" wraps past 9
    ok = np.ones(len(rows), dtype=bool)
    for place in range(count):  # a place at a time: along the short axis is slow
        ok &= digits[:, place] < 10
    shaped = np.zeros(len(values), dtype=bool)
    shaped[rows[ok]] = True
    return shaped, digits if ok.all() else digits[ok]


_DIGITS = re.compile(r"\\d\{(\d+)\}")
_ANY_CHARACTERS = re.compile(r"\(\?s\)\.\{(\d+),(\d+)\}")


def whole_match(text: pa.ChunkedArray | pa.Array, pattern: str) -> pa.ChunkedArray | pa.Array:
    """Whether each value matches ``pattern`` as a whole (null where it is null).

    The commonest shapes are tested without the regular expression engine, with the
    same answers: ``\\d{n}`` (n ASCII digits; NPIs in 3.2 ms instead of 8.5 ms per
    200,000 values) and ``(?s).{m,n}`` (m to n characters; 1.7 ms instead of 10.3 ms).
    """
    if digits := _DIGITS.fullmatch(pattern):
        count = int(digits[1])
        return pc.and_(pc.ascii_is_decimal(text), pc.equal(pc.binary_length(text), count))
    if length := _ANY_CHARACTERS.fullmatch(pattern):
        characters = pc.utf8_length(text)
        return pc.and_(
            pc.greater_equal(characters, int(length[1])),
            pc.less_equal(characters, int(length[2])),
        )
    return pc.match_substring_regex(text, f"^(?:{pattern})$")


ISO_DATETIME = (
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
    r"(?:Z|[+-]00:?00)?"
)

_REMEMBERED: dict[tuple[int, str], tuple[pa.ChunkedArray, pd.Index, Any]] = {}
"""Results computed lately, by the Arrow array they came from and what was computed.

Several checks read one column (dates parsed four times, claim ids coded four
times); each is computed once. The entry holds the array itself, so an id is
never reused while its entry lives.
"""


def remembered(series: pd.Series, what: str, compute: Callable[[pd.Series], _R]) -> _R:
    """``compute(series)``, computed once for the same Arrow column and index."""
    if series.dtype != TEXT_DTYPE:
        return compute(series)
    text = series.array.__arrow_array__()
    key = (id(text), what)
    seen = _REMEMBERED.get(key)
    if seen is not None and seen[0] is text and seen[1].equals(series.index):
        return seen[2]
    result = compute(series)
    if len(_REMEMBERED) >= 32:
        _REMEMBERED.pop(next(iter(_REMEMBERED)))
    _REMEMBERED[key] = (text, series.index, result)
    return result


def forget() -> None:
    """Let go of what :func:`remembered` holds, once a validation is done: each entry
    keeps a column of the rows validated alive (up to 32 of them, ~120 MB a worker
    between partitions of 200,000 lines)."""
    _REMEMBERED.clear()


_DATE_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]
"""Where YYYY-MM-DD holds its digits (a ``-`` at 4 and 7)."""
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31])


def _calendar_days(text: pa.ChunkedArray) -> np.ndarray:
    """Each value of the shape YYYY-MM-DD (ASCII digits) naming a real day, as a
    datetime64[s]; anything else NaT.

    The shape and the day are read from the bytes of the ten-byte values, a place at a
    time, and the real days then cast by Arrow, which takes them all (a million values,
    2,000 of them not days: 139-147 ms -> 72-77 ms with :func:`fixed_width`'s take,
    where the days were also computed from the digits).
    """
    values = one_array(text)
    rows, matrix = fixed_width(values, 10)
    days = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[s]")
    if not len(rows):
        return days
    places = np.ascontiguousarray(matrix.T).astype(np.int32)  # a place's bytes together
    digit = places[_DATE_DIGITS] - ord("0")  # the eight digits, year's first to day's last
    shaped = (places[4] == ord("-")) & (places[7] == ord("-"))
    shaped &= ((digit >= 0) & (digit <= 9)).all(axis=0)
    year = digit[0] * 1000 + digit[1] * 100 + digit[2] * 10 + digit[3]
    month = digit[4] * 10 + digit[5]
    day = digit[6] * 10 + digit[7]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    last = _MONTH_DAYS[np.where(month_ok, month - 1, 12)] + (leap & (month == 2))
    real = rows[shaped & month_ok & (day >= 1) & (day <= last)]
    if len(real):
        found = values.take(pa.array(real)).cast(pa.date32()).cast(pa.timestamp("s"))
        days[real] = found.to_numpy()
    return days


def parse_dates(series: pd.Series) -> pd.Series:
    """ISO ``YYYY-MM-DD`` text to datetime64[s]; anything else, impossible days included, NaT."""
    return remembered(series, "dates", _parse_dates)


def _parse_dates(series: pd.Series) -> pd.Series:
    text = arrow(series)
    try:
        moments = text.cast(pa.date32()).cast(pa.timestamp("s")).to_numpy()
    except pa.ArrowInvalid:  # at least one value is not a real day: sort them out
        moments = _calendar_days(text)
    # Year 0000 is a day to Arrow, none to Python's dates (the summary's weeks).
    early = moments < _FIRST_DAY
    if early.any():
        moments = np.where(early, np.datetime64("NaT", "s"), moments)
    return pd.Series(moments, index=series.index, dtype="datetime64[s]")


_FIRST_DAY = np.datetime64("0001-01-01", "s")


MOMENT: Final = "datetime64[us]"
"""A moment (``recorded_at``, ``--as-of``), to the microsecond as Python's datetime holds
it: a fraction of a second orders two versions of a register row, and sets one recorded
half a second after ``--as-of`` after it."""


def parse_datetimes(series: pd.Series) -> pd.Series:
    """ISO date or date-time text (UTC) to naive UTC datetime64[us]; anything else NaT.
    Parsed once for the format check and the duplicate versions (the register's 170,000
    rows a partition: 64 ms each)."""
    return remembered(series, "datetimes", _parse_datetimes)


def _parse_datetimes(series: pd.Series) -> pd.Series:
    text = arrow(series)
    shaped = whole_match(text, ISO_DATETIME)
    kept = pd.Series(pc.if_else(shaped, text, pa.scalar(None, pa.string())), dtype=TEXT_DTYPE)
    kept.index = series.index
    cleaned = kept.str.replace(r"(?:Z|[+-]00:?00)$", "", regex=True).str.replace(" ", "T")
    # To the microsecond, as --as-of is read: digits past the sixth are cut here (or
    # pandas would read the whole column to the nanosecond, and a year past 2262
    # elsewhere in it as no time at all), and a moment they put after a microsecond is
    # taken to the next: recorded after an as-of on that microsecond, it stays after it.
    later = np.zeros(len(cleaned), dtype=bool)
    if cleaned.str.contains(r"\.\d{7}", regex=True).any():  # one pass where none has
        later = cleaned.str.contains(r"\.\d{6}\d*[1-9]", regex=True).fillna(False).to_numpy(bool)
        cleaned = cleaned.str.replace(r"(\.\d{6})\d+$", r"\1", regex=True)
    parsed = pd.to_datetime(cleaned.astype("object"), format="ISO8601", errors="coerce")
    moments = parsed.astype(MOMENT)
    moments[later] += pd.Timedelta(microseconds=1)
    return moments.where(~(moments < _FIRST_DAY))  # year 0000, as for dates


def is_iso_date(series: pd.Series) -> pd.Series:
    """A real calendar day written ``YYYY-MM-DD``."""
    return parse_dates(series).notna() | series.isna()


def is_iso_datetime(series: pd.Series) -> pd.Series:
    """A real moment written as an ISO date or date-time in UTC."""
    return parse_datetimes(series).notna() | series.isna()


_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.uint8)
"""A digit's Luhn contribution where it is doubled (the digits of twice it, summed)."""


def npi_check_digit_ok(series: pd.Series) -> pd.Series:
    """The NPI's tenth digit is the Luhn check digit over ``80840`` and the first nine.

    Values that are not ten digits pass here; the format check reports them. Summed a
    digit position at a time (along the short axis was 4x slower), in bytes: the sum is
    at most 24 + 9 * 9.
    """
    ten_digits, digits = digit_values(series, 10)
    result = np.ones(len(series), dtype=bool)
    if not len(digits):
        return pd.Series(result, index=series.index)
    total = np.full(len(digits), 24, dtype=np.uint8)  # the Luhn sum of the 80840 prefix
    for position in range(0, 9, 2):
        total += np.take(_DOUBLED, digits[:, position])
    for position in range(1, 9, 2):
        total += digits[:, position]
    result[ten_digits] = (10 - total % 10) % 10 == digits[:, 9]
    return pd.Series(result, index=series.index)


def in_code_set(
    series: pd.Series,
    codes: frozenset[str],
    shape: str,
    read: Callable[[pa.Array], pa.Array] | None = None,
) -> pd.Series:
    """Values of the right shape are in ``codes``; values of the wrong shape pass here.
    ``read``: how a value is read before it is looked at (on each distinct value where
    they are few)."""
    coded = distinct_values(series)
    text = arrow(series) if coded is None else coded[0]
    if read is not None:
        text = read(text)
    shaped = pc.fill_null(whole_match(text, shape), False)
    known = pc.is_in(text, value_set=pa.array(sorted(codes), pa.string()))
    if coded is not None:
        return _spread(pc.or_(pc.invert(shaped), known), coded[1], series.index)
    return as_mask(pc.or_(pc.invert(shaped), known), series.index, True)


def is_one_of(series: pd.Series, values: Iterable[str]) -> pd.Series:
    """True where the value is one of ``values`` (or is empty)."""
    known = pc.is_in(arrow(series), value_set=pa.array(sorted(values), pa.string()))
    return as_mask(pc.or_(known, pc.is_null(arrow(series))), series.index, True)
