"""What an analyst reads first, added up partition by partition.

Every figure is a sum, so the summary of a run is the same however its lines
were partitioned. Money is summed in integer cents and written as text with
two places: exact, never a float.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.claims import date_of_service
from schemas.outputs import DECISIONS, REASONS

NEEDING_AUTHORIZATION = ("AUTHORIZED", "PEND", "DENY")
DENIAL_COLUMNS = (
    "reason",
    "denied_amount",
    "liable_npi",
    "modality",
    "claim_line_start_date",
    "claim_start_date",
)
"""What the figures of denied lines read: their reason, amount, provider, modality and
date of service."""

K = TypeVar("K", bound=Hashable)


def cents(amounts: pd.Series) -> np.ndarray:
    """Decimal amounts as integer cents."""
    array = pa.array(amounts)  # no copy for Arrow-backed amounts
    scaled = pc.multiply(array.cast(pa.decimal128(16, 2)), pa.scalar(100, pa.decimal128(3, 0)))
    return np.asarray(scaled.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def money(total_cents: int) -> str:
    """Integer cents as ``1234.50``."""
    sign = "-" if total_cents < 0 else ""
    whole, part = divmod(abs(int(total_cents)), 100)
    return f"{sign}{whole}.{part:02d}"


def week_of(frame: pd.DataFrame) -> np.ndarray:
    """The Monday of each line's week of service (NaT for a line without a date)."""
    days = date_of_service(frame).to_numpy().astype("datetime64[D]")
    since_monday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return days - since_monday.astype("timedelta64[D]")


@dataclass
class Totals(Generic[K]):
    """Lines and denied cents by some key, added up over partitions."""

    lines: dict[K, int] = field(default_factory=dict)
    denied_cents: dict[K, int] = field(default_factory=dict)

    def merge(self, other: Totals[K]) -> None:
        """Add another partition's totals to these."""
        for key, lines in other.lines.items():
            self.lines[key] = self.lines.get(key, 0) + lines
        for key, total in other.denied_cents.items():
            self.denied_cents[key] = self.denied_cents.get(key, 0) + total

    def add(self, keys: pd.Series | np.ndarray, amounts: np.ndarray | None = None) -> None:
        """Count each line, and its denied cents, under its key; a line without a key
        is not counted. Keys that are dates count under their ISO text."""
        codes, uniques = pd.factorize(keys)  # no key: -1
        kept = codes >= 0
        lines = np.bincount(codes[kept], minlength=len(uniques))
        totals = [0] * len(uniques)
        if amounts is not None:
            totals = _sums(codes[kept], amounts[kept], len(uniques))
        if isinstance(uniques, np.ndarray) and np.issubdtype(uniques.dtype, np.datetime64):
            uniques = np.datetime_as_string(uniques, unit="D").tolist()
        for key, count, total in zip(uniques, lines.tolist(), totals, strict=True):
            self.lines[key] = self.lines.get(key, 0) + count
            self.denied_cents[key] = self.denied_cents.get(key, 0) + total


def _sums(codes: np.ndarray, amounts: np.ndarray, keys: int) -> list[int]:
    """The cents of each key added up exactly, as Python integers. A line's amount has
    up to 15 digits of cents, so 9,224 of the largest overflow 64 bits: each is added
    as its high and low 32 bits, whose sums fit for some two billion lines."""
    low = np.zeros(keys, dtype=np.int64)
    high = np.zeros(keys, dtype=np.int64)
    np.add.at(low, codes, amounts & 0xFFFFFFFF)
    np.add.at(high, codes, amounts >> 32)
    return [(h << 32) + lo for h, lo in zip(high.tolist(), low.tolist(), strict=True)]


@dataclass
class SummaryParts:
    """The run's figures so far."""

    reasons: Totals[tuple[str, str]] = field(default_factory=Totals)
    providers: Totals[str] = field(default_factory=Totals)
    modalities: Totals[str] = field(default_factory=Totals)
    weeks: Totals[str] = field(default_factory=Totals)
    adjudicated_by_file: dict[str, int] = field(default_factory=dict)

    def add(self, decided: pd.DataFrame) -> None:
        """Count one partition's adjudicated lines."""
        if decided.empty:
            return
        decision, decisions = pd.factorize(decided["decision"])
        reason, reasons = pd.factorize(decided["reason"])  # no reason: -1
        pairs = np.bincount(decision * (len(reasons) + 1) + reason + 1)
        for pair in np.flatnonzero(pairs).tolist():
            at_decision, at_reason = divmod(pair, len(reasons) + 1)
            key = (str(decisions[at_decision]), str(reasons[at_reason - 1]) if at_reason else "")
            self.reasons.lines[key] = self.reasons.lines.get(key, 0) + int(pairs[pair])
        denied = decided["decision"].eq("DENY").to_numpy(bool)
        if denied.any():
            rows = decided.loc[denied, list(DENIAL_COLUMNS)]  # not every column: a copy each
            amounts = cents(rows["denied_amount"])
            by_denial: Totals[str] = Totals()
            by_denial.add(rows["reason"], amounts)
            for denied_for, total in by_denial.denied_cents.items():
                key = ("DENY", str(denied_for))
                self.reasons.denied_cents[key] = self.reasons.denied_cents.get(key, 0) + total
            self.providers.add(rows["liable_npi"], amounts)
            self.modalities.add(rows["modality"].astype("str").fillna(""), amounts)
            self.weeks.add(week_of(rows), amounts)
        by_file: Totals[str] = Totals()
        by_file.add(decided["source_file"])
        for name, count in by_file.lines.items():
            path = str(name)
            self.adjudicated_by_file[path] = self.adjudicated_by_file.get(path, 0) + count

    def merge(self, other: SummaryParts) -> None:
        """Add another partition's figures to these."""
        self.reasons.merge(other.reasons)
        self.providers.merge(other.providers)
        self.modalities.merge(other.modalities)
        self.weeks.merge(other.weeks)
        for name, count in other.adjudicated_by_file.items():
            self.adjudicated_by_file[name] = self.adjudicated_by_file.get(name, 0) + count

    def decisions(self) -> dict[str, int]:
        counts = dict.fromkeys(DECISIONS, 0)
        for (decision, _), lines in self.reasons.lines.items():
            counts[decision] += lines
        return counts

    def as_dict(self) -> dict[str, object]:
        """The decision figures of summary.json."""
        order = {name: i for i, name in enumerate(DECISIONS)}
        reason_order = {name: i for i, name in enumerate(("", *REASONS))}
        reasons = sorted(
            self.reasons.lines.items(),
            key=lambda item: (order[item[0][0]], reason_order.get(item[0][1], 99)),
        )
        decisions = self.decisions()
        denied_total = sum(
            cents_
            for (decision, _), cents_ in self.reasons.denied_cents.items()
            if decision == "DENY"
        )
        return {
            "decisions": decisions,
            "reasons": [
                {"decision": decision, "reason": reason or None, "lines": lines}
                for (decision, reason), lines in reasons
            ],
            "denied_amount": money(denied_total),
            "denied_by_rendering_provider": _ranked(self.providers, "liable_npi"),
            "denied_by_modality": _ranked(self.modalities, "modality"),
            "denied_by_week": [
                {"week_of": week, "lines": self.weeks.lines[week], "denied_amount": money(total)}
                for week, total in sorted(self.weeks.denied_cents.items())
            ],
            "needing_authorization": sum(decisions[d] for d in NEEDING_AUTHORIZATION),
        }


def _ranked(totals: Totals[str], name: str) -> list[dict[str, object]]:
    items: Iterable[tuple[str, int]] = totals.denied_cents.items()
    ranked = sorted(items, key=lambda item: (-item[1], str(item[0])))
    return [
        {name: str(key), "lines": totals.lines[key], "denied_amount": money(total)}
        for key, total in ranked
    ]
