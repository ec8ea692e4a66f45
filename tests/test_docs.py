"""The README's column reference is the one the schemas generate."""

from __future__ import annotations

from pathlib import Path

from schemas.docs import BEGIN, END, column_reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_column_reference_matches_the_schemas() -> None:
    text = README.read_text(encoding="utf-8")
    between = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert between.strip() == column_reference().strip(), "run `make docs` and commit README.md"


def test_every_input_column_has_a_description() -> None:
    reference = column_reference()
    assert "| None |" not in reference
