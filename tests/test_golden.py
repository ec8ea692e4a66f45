"""A whole run over data/samples/, compared column by column with the committed answers.

``expected_decisions.csv`` was worked out by hand from POLICY.md, line by line;
a failure names the lines and the column that changed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from pipeline.rules import load_rules
from pipeline.run import RunOptions, RunResult, adjudicate

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
KEY = ["claim_id", "claim_line_number"]


@pytest.fixture(scope="module")
def sample_run() -> RunResult:
    options = RunOptions(
        claims=(str(SAMPLES / "claims.csv"),),
        authorizations=str(SAMPLES / "authorizations.csv"),
        as_of=datetime(2026, 6, 30, 23, 59, 59),
    )
    return adjudicate(options, load_rules())


def expected(name: str) -> pd.DataFrame:
    return pd.read_csv(SAMPLES / name, dtype=str, keep_default_na=False)


def as_text(series: pd.Series) -> pd.Series:
    text = series.astype("object").map(lambda v: "" if v is None or pd.isna(v) else str(v))
    return text.str.replace("^True$", "true", regex=True).str.replace("^False$", "false", regex=True)


EXPECTED_COLUMNS = list(expected("expected_decisions.csv").columns.drop(KEY))


@pytest.mark.parametrize("column", EXPECTED_COLUMNS)
def test_every_line_matches_the_worked_answer(sample_run: RunResult, column: str) -> None:
    want = expected("expected_decisions.csv").set_index(KEY)[column]
    got = sample_run.adjudicated.set_index(KEY)[column]
    assert sorted(got.index) == sorted(want.index), "the valid lines differ"
    got_text = as_text(got).reindex(want.index)
    wrong = want[got_text != want]
    assert wrong.empty, "\n".join(
        f"{claim}/{line}: expected {want[(claim, line)]!r}, got {got_text[(claim, line)]!r}"
        for claim, line in wrong.index
    )


def test_bad_rows_are_rejected_with_the_named_checks(sample_run: RunResult) -> None:
    want = expected("expected_rejects.csv")
    got = sample_run.validation.rejects
    got_keys = set(zip(got["source"], got["source_row"].astype(str), got["column"], got["check"], strict=True))
    want_keys = set(zip(want["source"], want["source_row"], want["column"], want["check"], strict=True))
    assert got_keys == want_keys


def test_every_row_is_in_exactly_one_output(sample_run: RunResult) -> None:
    claims = sample_run.validation.rejects.query("source == 'claims'")
    rejected = set(claims["source_row"])
    adjudicated = set(sample_run.adjudicated["source_row"])
    assert not rejected & adjudicated
    assert rejected | adjudicated == set(range(1, 78))
