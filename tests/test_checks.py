"""The checks' building blocks: shapes tested without regular expressions answer as the
regular expressions do."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from schemas import authorizations as register_contract
from schemas import claims as claims_contract
from schemas import claims as claims_module
from schemas.checks import (
    TEXT_DTYPE,
    digits_as_numbers,
    distinct_values,
    forget,
    in_code_set,
    matches,
    npi_check_digit_ok,
    parse_dates,
    row_rule_for,
    whole_match,
)
from schemas.claims import differs_within_claim, duplicated_claim_lines

VALUES = pa.array(
    [None, "", "12", "1", "123", "1a", "a1", " 12", "12 ", "\u0661\u0662", "\uff11\uff12"]
    + ["1234567893", "123456789", "12345678901", "12345\n6789", "e" * 50, "\u00e9" * 50]
    + ["\u00e9" * 51, "x\ny", "\U0001f600" * 2],
    pa.string(),
)


@pytest.mark.parametrize(
    "pattern", [r"\d{2}", r"\d{4}", r"\d{10}", r"(?s).{1,50}", r"(?s).{2,2}", r"0?\d{3}"]
)
def test_a_shape_answers_as_its_regular_expression(pattern: str) -> None:
    expected = pc.match_substring_regex(VALUES, f"^(?:{pattern})$")
    assert whole_match(VALUES, pattern).to_pylist() == expected.to_pylist()


def _text(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    """Arrow text as the checks are given it."""
    return pd.Series(pd.arrays.ArrowStringArray(values), dtype=TEXT_DTYPE)


def _with_hidden_bytes(values: list[str | None]) -> pa.Array:
    """Text whose empty slots still span bytes (Arrow leaves a null's bytes unread)."""
    data = "".join("1234567890" if v is None else v for v in values).encode()
    offsets, at = [0], 0
    for value in values:
        at += len("1234567890" if value is None else value.encode())
        offsets.append(at)
    validity = pa.array([v is not None for v in values], pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(
        pa.string(),
        len(values),
        [validity, pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]), pa.py_buffer(data)],
    )


@pytest.mark.parametrize("width", [2, 4, 10])
def test_a_digits_check_answers_as_its_regular_expression(width: int) -> None:
    """Read from the bytes: a column of one width and empties, of many widths, a slice
    over two chunks, and empties whose slots hold bytes."""
    pattern = rf"\d{{{width}}}"
    one_width = ["0" * width, None, "1234567890"[:width], "a" * width, None, "9" * width]
    one_width += ["1234567890"[: width - 1] + ":", "/" + "1234567890"[: width - 1]]  # by 0-9
    for values in (VALUES.to_pylist(), one_width):
        for text in (
            pa.array(values, pa.string()),
            pa.chunked_array([pa.array(["x", *values[:3]]).slice(1), pa.array(values[3:])]),
            _with_hidden_bytes(values),
        ):
            forget()
            series = _text(text)
            expected = [v is None or bool(re.fullmatch(pattern, v, re.ASCII)) for v in values]
            assert matches(series, pattern).tolist() == expected
            assert any(expected) and not all(expected)


def _luhn_ok(npi: str) -> bool:
    """The NPI check digit, digit by digit as the standard writes it."""
    digits = [int(d) for d in "80840" + npi[:9]]
    total = 0
    for place, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if place % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return (10 - total % 10) % 10 == int(npi[9])


def test_the_npi_check_digit_answers_as_the_standard_does() -> None:
    chance = random.Random(5)
    npis = ["".join(chance.choice("0123456789") for _ in range(10)) for _ in range(3000)]
    npis += ["1234567893", "1234567890", "0000000000", "9999999999"]
    others = [None, "", "123456789", "12345678901", "12345\n6789", "\u0661" * 10]
    values = [*others, *npis]
    # Two chunks, the first a slice: the digits are read from the Arrow buffers.
    chunked = pa.chunked_array([pa.array(["x", *values[:700]]).slice(1), pa.array(values[700:])])
    series = _text(chunked)
    assert series.array.__arrow_array__().num_chunks == 2
    assert _luhn_ok("1234567893")  # the standard's own example
    expected = [len(others) > i or _luhn_ok(str(v)) for i, v in enumerate(values)]
    assert npi_check_digit_ok(series).tolist() == expected
    # An empty value passes even where its slot holds ten digits that fail the check.
    hidden = _text(_with_hidden_bytes(values))
    assert npi_check_digit_ok(hidden).tolist() == expected
    assert sum(expected[len(others) :]) not in (0, len(npis))  # both answers are tested


def _real_day(value: str | None) -> str | None:
    """A value's day when it is YYYY-MM-DD in ASCII digits and a real day (year 1 on)."""
    if value is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def test_dates_of_a_column_holding_an_impossible_one_are_each_checked() -> None:
    chance = random.Random(11)
    made = [
        f"{chance.randint(1, 9999):04d}-{chance.randint(0, 13):02d}-{chance.randint(0, 32):02d}"
        for _ in range(3000)
    ]
    odd: list[str | None] = ["2024-02-29", "2023-02-29", "2000-02-29", "1900-02-29"]
    odd += ["2026-04-31", "2026-1-05"]
    odd += ["2026/01/05", "\u0662\u0660\u0662\u0666-01-05", "2026-01-05 ", "", None, "x" * 10]
    values = [*odd, *made]
    # Two chunks, the first a slice: the dates are read from the Arrow buffers.
    chunked = pa.chunked_array([pa.array(["x", *values[:900]]).slice(1), pa.array(values[900:])])
    series = _text(chunked)
    parsed = parse_dates(series)  # the fast cast fails on this column: value by value
    found = [None if pd.isna(day) else day.date().isoformat() for day in parsed]
    assert found == [_real_day(v) for v in values]
    assert parsed.isna().sum() not in (0, len(values))  # both answers are tested
    # Year 0 is a day to Arrow (a leap year's), none to Python's dates: not a date.
    early = parse_dates(pd.Series(["0000-02-29", "2026-02-30", "0001-01-01"], dtype=TEXT_DTYPE))
    assert early.isna().tolist() == [True, True, False]
    assert parse_dates(
        pd.Series(["0000-01-01", "0001-01-01"], dtype=TEXT_DTYPE)
    ).isna().tolist() == [
        True,
        False,
    ]  # the fast cast, every value a day to Arrow
    # Every value of ten bytes (or none): read as one matrix, with the same answers.
    tens = [v for v in values if v is None or len(v.encode()) == 10]
    parsed = parse_dates(pd.Series(tens, dtype=TEXT_DTYPE))
    found = [None if pd.isna(day) else day.date().isoformat() for day in parsed]
    assert found == [_real_day(v) for v in tens]


@pytest.mark.parametrize(
    ("schema", "contract"),
    [
        (claims_contract.claims_schema(datetime(2026, 6, 30)), claims_contract.CONTRACT_COLUMNS),
        (register_contract.AuthorizationInput.to_schema(), register_contract.CONTRACT_COLUMNS),
    ],
    ids=["claims", "register"],
)
def test_each_row_rule_runs_on_the_columns_it_names_alone(
    schema: pandera.DataFrameSchema, contract: Sequence[str]
) -> None:
    # Each rule is checked on the columns it names (see row_rule): one that reads
    # another column would fail every validation.
    assert schema.checks
    for check in schema.checks:
        rule = row_rule_for(check.name)
        assert rule is not None, check.name
        assert set(rule.reads) <= set(contract), check.name
        values = ["2026-01-02", None, "professional", "institutional", "7"]
        frame = pd.DataFrame({name: pd.Series(values, dtype=TEXT_DTYPE) for name in rule.reads})
        result = check(frame)
        forget()
        assert len(result.check_output) == len(values), check.name


def test_a_claim_whose_lines_disagree_is_found_whole() -> None:
    """Every line of a claim is flagged where its lines hold more than one value, a
    missing one counted as a value, as Python's sets say; a line without a claim id
    belongs to no claim and is never flagged."""
    chance = random.Random(5)
    for _ in range(50):
        size = chance.randrange(0, 80)
        claims = [
            None if chance.random() < 0.1 else f"C{chance.randrange(10)}" for _ in range(size)
        ]
        values = [None if chance.random() < 0.2 else chance.choice("abc") for _ in range(size)]
        frame = pd.DataFrame(
            {
                "claim_id": pd.Series(claims, dtype=TEXT_DTYPE),
                "member_id": pd.Series(values, dtype=TEXT_DTYPE),
            }
        )
        held: dict[str | None, set[str | None]] = {}
        for claim, value in zip(claims, values, strict=True):
            held.setdefault(claim, set()).add(value)
        forget()
        assert differs_within_claim(frame, "member_id").tolist() == [
            claim is not None and len(held[claim]) > 1 for claim in claims
        ]


def test_duplicate_lines_are_found_alike_read_as_numbers_or_as_text() -> None:
    """Line numbers of digits alone are read as numbers at once (1 to 18 digits); a
    column holding anything else is compared as text with its zeros stripped. Both
    find the copies Python's own reading finds."""
    chance = random.Random(11)
    claims = [f"C{chance.randrange(40)}" for _ in range(2_000)]
    lines = [
        chance.choice(["0", ""]) * chance.randrange(3) + str(chance.randrange(12)) for _ in claims
    ]
    lines = [line or "0" for line in lines]
    long = ["0" * 17 + "7", "7", "000000000000000000", "0"]  # 18 digits each, or 1
    for written in (lines, [*lines[:-1], "x"], [*lines[:-4], *long], [*lines[:-1], "0" * 19 + "5"]):
        frame = pd.DataFrame(
            {
                "claim_id": pd.Series(claims, dtype=TEXT_DTYPE),
                "claim_line_number": pd.Series(written, dtype=TEXT_DTYPE),
            }
        )
        keys = [(c, int(n) if n.isdigit() else n) for c, n in zip(claims, written, strict=True)]
        counts = Counter(keys)
        forget()
        assert duplicated_claim_lines(frame).tolist() == [counts[k] > 1 for k in keys]
    numbers = digits_as_numbers(pd.Series(["007", "18"], dtype=TEXT_DTYPE))
    assert numbers is not None
    assert numbers.tolist() == [7, 18]
    for refused in (["1", None], ["1", ""], ["1", "-2"], ["1", "+2"], ["0" * 19], ["1.0"]):
        assert digits_as_numbers(pd.Series(refused, dtype=TEXT_DTYPE)) is None


@pytest.mark.parametrize(
    "pattern", [claims_contract.HCPCS_SHAPE, r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?", r"0?\d{3}"]
)
def test_a_column_of_few_values_answers_as_one_of_many(pattern: str) -> None:
    """Checked on its distinct values (a column of codes) or row by row (mostly distinct
    values), a column gets the regular expression's answers."""
    chance = random.Random(3)
    codes = [*VALUES.to_pylist(), "70553", "G0123", "F32.9", "0131", "131", "A1", "e7055"]
    few = [chance.choice(codes) for _ in range(5_000)]
    many = [*codes, *(f"{i:05d}" for i in range(5_000))]
    for values, distinct in ((few, True), (many, False)):
        forget()
        series = _text(pa.array(values, pa.string()))
        assert (distinct_values(series) is not None) == distinct
        expected = [v is None or bool(re.fullmatch(pattern, v, re.ASCII)) for v in values]
        assert matches(series, pattern).tolist() == expected


def test_a_code_set_check_reads_each_distinct_value_as_each_row() -> None:
    known = frozenset({"131", "111"})
    chance = random.Random(4)
    codes = [
        None,
        "131",
        "0131",
        "00131",
        "111",
        "0111",
        "999",
        "0999",
        "13",
        "1a1",
        "\u0661\u0662\u0663",
    ]
    for values in (
        [chance.choice(codes) for _ in range(5_000)],
        [*codes, *(f"{i:06d}" for i in range(5_000))],
    ):
        forget()
        series = _text(pa.array(values, pa.string()))
        expected = []
        for value in values:
            read = None if value is None else re.sub(r"^0(\d{3})$", r"\1", value, flags=re.ASCII)
            shaped = read is not None and re.fullmatch(r"\d{3}", read, re.ASCII)
            expected.append(not shaped or read in known)
        got = in_code_set(series, known, r"\d{3}", read=claims_module._without_leading_zero)
        assert got.tolist() == expected
        assert not all(expected) and any(expected)
