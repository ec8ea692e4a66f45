"""The same decisions whether a claim's lines arrive in one file or two, in any order."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.engine import execute
from pipeline.rules import load_rules

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
AS_OF = datetime(2026, 6, 30, 23, 59, 59)
KEY = ["claim_id", "claim_line_number"]
DECIDED = [
    "decision",
    "reason",
    "carc",
    "rarc",
    "liable_npi",
    "denied_amount",
    "matched_authorization_id",
    "code_substituted",
    "records_required",
]
CLAIMS = pd.read_csv(SAMPLES / "claims.csv", dtype=str, keep_default_na=False)
RULES = load_rules()


def decisions(files: list[pd.DataFrame], rows_per_partition: int = 200_000) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        paths = []
        for number, frame in enumerate(files):
            path = where / f"claims-{number}.csv"
            frame.to_csv(path, index=False)
            paths.append(str(path))
        out = where / "out"
        out.mkdir()
        execute(
            paths,
            str(SAMPLES / "authorizations.csv"),
            AS_OF,
            RULES,
            out,
            rows_per_partition=rows_per_partition,
        )
        frame = pd.read_parquet(out / "adjudicated.parquet", columns=[*KEY, *DECIDED])
    return frame.set_index(KEY).sort_index().astype("string")


BASELINE = decisions([CLAIMS])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.permutations(range(len(CLAIMS))),
    split=st.lists(st.booleans(), min_size=len(CLAIMS), max_size=len(CLAIMS)),
    rows_per_partition=st.sampled_from([200_000, 20, 7]),
)
def test_split_and_shuffled_lines_get_the_same_decisions(
    order: list[int], split: list[bool], rows_per_partition: int
) -> None:
    shuffled = CLAIMS.iloc[order].reset_index(drop=True)
    first = shuffled[[not s for s in split]]
    second = shuffled[split]
    got = decisions([first, second], rows_per_partition)
    pd.testing.assert_frame_equal(got, BASELINE)
