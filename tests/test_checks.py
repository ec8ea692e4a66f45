"""The checks' building blocks: shapes tested without regular expressions answer as the
regular expressions do."""

from __future__ import annotations

import random

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from schemas.checks import TEXT_DTYPE, npi_check_digit_ok, whole_match

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
    series = pd.Series(pd.arrays.ArrowStringArray(chunked), dtype=TEXT_DTYPE)
    assert series.array.__arrow_array__().num_chunks == 2
    assert _luhn_ok("1234567893")  # the standard's own example
    expected = [len(others) > i or _luhn_ok(v) for i, v in enumerate(values)]
    assert npi_check_digit_ok(series).tolist() == expected
    assert sum(expected[len(others) :]) not in (0, len(npis))  # both answers are tested
