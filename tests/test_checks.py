"""The checks' building blocks: shapes tested without regular expressions answer as the
regular expressions do."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from schemas.checks import whole_match

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
