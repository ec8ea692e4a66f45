"""A whole run over data/samples/, compared column by column with the committed answers.

``expected_decisions.csv`` was worked out by hand from POLICY.md, line by line;
a failure names the lines and the column that changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from pipeline.engine import execute
from pipeline.rules import load_rules
from schemas.outputs import REJECT_COLUMNS, AdjudicatedLine, RejectRow

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
KEY = ["claim_id", "claim_line_number"]


@dataclass(frozen=True)
class SampleRun:
    adjudicated: pd.DataFrame
    rejects: pd.DataFrame


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    out = tmp_path_factory.mktemp("golden")
    execute(
        [str(SAMPLES / "claims.csv")],
        str(SAMPLES / "authorizations.csv"),
        datetime(2026, 6, 30, 23, 59, 59),
        load_rules(),
        out,
    )
    return SampleRun(
        adjudicated=pd.read_parquet(out / "adjudicated.parquet"),
        rejects=pd.read_parquet(out / "rejects.parquet"),
    )


def expected(name: str) -> pd.DataFrame:
    return pd.read_csv(SAMPLES / name, dtype=str, keep_default_na=False)


def as_text(series: pd.Series) -> pd.Series:
    text = series.astype("object").map(lambda v: "" if v is None or pd.isna(v) else str(v))
    return text.str.replace("^True$", "true", regex=True).str.replace(
        "^False$", "false", regex=True
    )


EXPECTED_COLUMNS = list(expected("expected_decisions.csv").columns.drop(KEY))


@pytest.mark.parametrize("column", EXPECTED_COLUMNS)
def test_every_line_matches_the_worked_answer(sample_run: SampleRun, column: str) -> None:
    want = expected("expected_decisions.csv").set_index(KEY)[column]
    got = sample_run.adjudicated.set_index(KEY)[column]
    assert sorted(got.index) == sorted(want.index), "the valid lines differ"
    got_text = as_text(got).reindex(want.index)
    wrong = want[got_text != want]
    assert wrong.empty, "\n".join(
        f"{claim}/{line}: expected {want[(claim, line)]!r}, got {got_text[(claim, line)]!r}"
        for claim, line in wrong.index
    )


def test_bad_rows_are_rejected_with_the_named_checks(sample_run: SampleRun) -> None:
    want = expected("expected_rejects.csv")
    got = sample_run.rejects
    got_keys = set(
        zip(got["source"], got["source_row"].astype(str), got["column"], got["check"], strict=True)
    )
    want_keys = set(
        zip(want["source"], want["source_row"], want["column"], want["check"], strict=True)
    )
    assert got_keys == want_keys


def test_every_row_is_in_exactly_one_output(sample_run: SampleRun) -> None:
    claims = sample_run.rejects.query("source == 'claims'")
    rejected = set(claims["source_row"])
    adjudicated = set(sample_run.adjudicated["source_row"])
    assert not rejected & adjudicated
    assert rejected | adjudicated == set(range(1, 78))


def test_the_published_lines_meet_the_output_contract(sample_run: SampleRun) -> None:
    AdjudicatedLine.validate(sample_run.adjudicated, lazy=True)
    RejectRow.validate(sample_run.rejects, lazy=True)
    assert list(sample_run.rejects.columns) == list(REJECT_COLUMNS)
