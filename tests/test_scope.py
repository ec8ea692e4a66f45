"""Which row of the code table is in force for a line: a code may have several rows,
one per period (no two in force on one day: such a table is refused), in any order. And the
authorization number each line reports: its own, else its claim's single one."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd

from pipeline.rules import DEFAULT_RULES, parse_rules
from pipeline.scope import code_in_force, reported_numbers
from schemas.checks import TEXT_DTYPE

HEADER = (
    b"hcpcs_code,modality,body_region,code_family,records_required,behavioral_health_only,"
    b"effective_from,effective_to,note\n"
)
TABLE = (
    HEADER
    + b"""70450,CT,head,CT_HEAD,false,false,,2020-12-31,first period
70450,CT,head,CT_HEAD,true,false,2021-01-01,2021-12-31,second period
70450,CT,head,CT_HEAD,false,true,2022-01-01,,third period
70551,MRI,head,MR_HEAD,false,false,2024-01-01,,
70552,MRI,head,MR_HEAD,true,false,,,
70544,MRA,head,MRA_HEAD,false,false,,,the rules name MRA
70554,MRI,brain,MR_FMRI,false,false,,,and MR_FMRI
"""
)


def test_the_row_whose_dates_hold_is_in_force() -> None:
    text = files("pipeline.rules").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
    rules = parse_rules(text, TABLE, "test")
    lines = [  # code, date of service, the table row in force (-1: none)
        ("70450", "2020-12-31", 0),  # first period, its last day
        ("70450", "2021-01-01", 1),  # second period, its first day
        ("70450", "2021-12-31", 1),  # second period, its last day
        ("70450", "2022-01-01", 2),  # third only
        ("70551", "2023-12-31", -1),  # listed, not yet in force
        ("70551", "2024-01-01", 3),
        ("70552", "1999-01-01", 4),  # no dates: always in force
        ("99999", "2024-01-01", -1),  # not in the table
        (None, "2024-01-01", -1),
    ]
    index = pd.RangeIndex(10, 10 + len(lines))  # a partition's lines, not from 0
    facts = pd.DataFrame(
        {
            "hcpcs_code": pd.Series([code for code, _, _ in lines], index=index, dtype="str"),
            "date_of_service": pd.Series(
                pd.to_datetime([day for _, day, _ in lines]), index=index, dtype="datetime64[s]"
            ),
        }
    )
    assert code_in_force(facts, rules).tolist() == [row for _, _, row in lines]


def test_each_line_reports_its_own_number_else_its_claims_single_one() -> None:
    draw = np.random.default_rng(20261204)
    numbers: list[str | None] = ["A1", "A2", None, None]
    for _ in range(200):
        size = int(draw.integers(1, 25))
        claim = draw.integers(0, 6, size=size)
        own = [numbers[int(draw.integers(len(numbers)))] for _ in range(size)]
        by_claim: dict[int, set[str]] = {}
        for c, n in zip(claim.tolist(), own, strict=True):
            if n is not None:
                by_claim.setdefault(c, set()).add(n)
        expected = [
            n
            if n is not None
            else next(iter(by_claim.get(c, ())))
            if len(by_claim.get(c, ())) == 1
            else None
            for c, n in zip(claim.tolist(), own, strict=True)
        ]
        lines = pd.DataFrame({"prior_authorization_number": pd.Series(own, dtype=TEXT_DTYPE)})
        got = reported_numbers(lines, claim)
        assert [None if pd.isna(v) else v for v in got] == expected
