"""The summary's figures, added up partition by partition, against sums made by hand."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.decide import MONEY
from pipeline.summary import SummaryParts
from schemas.outputs import DECISIONS, REASONS

TEXT = pd.ArrowDtype(pa.string())


def _lines(count: int, seed: int) -> pd.DataFrame:
    """Decided lines as the kernel gives them: categorical decisions and reasons, text
    dates (a line date or only a claim date), amounts, providers and modalities."""
    chance = random.Random(seed)
    rows = []
    for _ in range(count):
        decision = chance.choice(DECISIONS)
        day = date(1969, 12, 20) + timedelta(days=chance.randrange(0, 21_000))
        line_date = chance.random() < 0.7
        rows.append(
            {
                "decision": decision,
                "reason": chance.choice([None, *REASONS]),
                "denied_amount": Decimal(chance.randrange(0, 10**7)) / 100,
                "liable_npi": chance.choice([None, "1234567893", "1467498014"]),
                "modality": chance.choice([None, "CT", "MRI"]),
                "claim_line_start_date": day.isoformat() if line_date else None,
                "claim_start_date": None if line_date else day.isoformat(),
                "source_file": chance.choice(["a.csv", "b.csv"]),
            }
        )
    frame = pd.DataFrame(rows)
    for name in ("decision", "reason"):
        categories = DECISIONS if name == "decision" else REASONS
        frame[name] = pd.Categorical(frame[name], categories=list(categories))
    for name in ("liable_npi", "modality", "claim_line_start_date", "claim_start_date"):
        frame[name] = frame[name].astype(TEXT)
    frame["source_file"] = frame["source_file"].astype(TEXT)
    frame["denied_amount"] = frame["denied_amount"].astype(MONEY)
    return frame


def _by_hand(frame: pd.DataFrame) -> dict[str, object]:
    reasons: Counter[tuple[str, str]] = Counter()
    denied: Counter[tuple[str, str]] = Counter()
    providers: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    modalities: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    weeks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    files: Counter[str] = Counter()
    row: Any  # pandas' stubs type a row's fields as any scalar
    for row in frame.astype(object).itertuples():
        reason = "" if pd.isna(row.reason) else str(row.reason)
        reasons[(str(row.decision), reason)] += 1
        files[str(row.source_file)] += 1
        if row.decision != "DENY":
            continue
        cents = int(row.denied_amount * 100)
        denied[("DENY", reason)] += cents
        if not pd.isna(row.liable_npi):
            providers[row.liable_npi][0] += 1
            providers[row.liable_npi][1] += cents
        modality = "" if pd.isna(row.modality) else row.modality
        modalities[modality][0] += 1
        modalities[modality][1] += cents
        written = (
            row.claim_start_date
            if pd.isna(row.claim_line_start_date)
            else row.claim_line_start_date
        )
        day = date.fromisoformat(written)
        monday = (day - timedelta(days=day.weekday())).isoformat()
        weeks[monday][0] += 1
        weeks[monday][1] += cents
    return {
        "reasons": dict(reasons),
        "denied": {key: total for key, total in denied.items() if key[1]},
        "providers": {k: tuple(v) for k, v in providers.items()},
        "modalities": {k: tuple(v) for k, v in modalities.items()},
        "weeks": {k: tuple(v) for k, v in weeks.items()},
        "files": dict(files),
    }


def test_the_figures_are_the_sums_made_by_hand_over_partitions() -> None:
    frame = _lines(3_000, seed=7)
    parts = SummaryParts()
    for start in range(0, len(frame), 700):  # partitions, each counted then merged
        part = SummaryParts()
        part.add(frame.iloc[start : start + 700])
        parts.merge(part)
    expected = _by_hand(frame)
    assert parts.reasons.lines == expected["reasons"]
    assert parts.reasons.denied_cents == expected["denied"]
    for name in ("providers", "modalities", "weeks"):
        totals = getattr(parts, name)
        assert {key: (totals.lines[key], totals.denied_cents[key]) for key in totals.lines} == (
            expected[name]
        )
    assert parts.adjudicated_by_file == expected["files"]
    assert any(week < "1970-01-01" for week in parts.weeks.lines)  # before the epoch, too
    assert all(date.fromisoformat(week).weekday() == 0 for week in parts.weeks.lines)


def test_the_largest_amounts_add_up_exactly_past_64_bits() -> None:
    """A charge may have 13 digits of dollars: 10,000 of the largest denied in one
    partition add up to more cents than 64 bits hold (the totals went negative)."""
    frame = _lines(10_000, seed=3)
    frame["decision"] = pd.Categorical(["DENY"] * len(frame), categories=list(DECISIONS))
    frame["reason"] = pd.Categorical(["NO_AUTHORIZATION"] * len(frame), categories=list(REASONS))
    frame["liable_npi"] = pd.Series(["1234567893"] * len(frame), dtype=TEXT)
    frame["denied_amount"] = pd.Series([Decimal("9999999999999.99")] * len(frame), dtype=MONEY)
    parts = SummaryParts()
    parts.add(frame)
    cents = 999_999_999_999_999 * 10_000
    assert cents > 2**63
    assert parts.reasons.denied_cents[("DENY", "NO_AUTHORIZATION")] == cents
    assert parts.providers.denied_cents["1234567893"] == cents
    assert sum(parts.weeks.denied_cents.values()) == cents
