"""Step 2 of the policy: is the line exempt by its setting or its plan?

The setting is a property of the whole claim: an institutional emergency
claim carries the ER revenue line and the CT line side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import text_of
from pipeline.rules import Rules

PLAN_EXCEPTION = "PLAN_EXCEPTION"


def claim_has_any(facts: pd.DataFrame, column: str, codes: frozenset[str]) -> np.ndarray:
    """True on every line of a claim where any line's ``column`` is one of ``codes``."""
    hit = facts[column].isin(codes).to_numpy(bool)
    claims = facts["claim"].to_numpy()
    per_claim = np.bincount(claims, weights=hit, minlength=int(claims.max(initial=-1)) + 1) > 0
    return per_claim[claims]


def _shows(facts: pd.DataFrame, way: dict[str, frozenset[str]]) -> np.ndarray:
    """Whether the line's claim shows one way of a setting (all its conditions).

    Place of service is read on professional claims; type of bill and revenue
    codes on institutional ones.
    """
    shown = np.ones(len(facts), dtype=bool)
    institutional = facts["claim_type"].eq("institutional").to_numpy(bool)
    if "place_of_service" in way:
        shown &= ~institutional
        shown &= facts["place_of_service"].isin(way["place_of_service"]).to_numpy(bool)
    if "bill_type" in way or "revenue_code" in way:
        shown &= institutional
    if "bill_type" in way:
        shown &= facts["bill_type"].str[:2].isin(way["bill_type"]).to_numpy(bool)
    if "revenue_code" in way:
        shown &= claim_has_any(facts, "revenue_code", way["revenue_code"])
    return shown


def exempt_setting(facts: pd.DataFrame, rules: Rules) -> pd.Series:
    """The first exempt setting the line's claim shows, in the rules' order, else null."""
    conditions = []
    reasons: list[str | None] = [None]
    for exemption in rules.active_exemptions:
        shown = np.zeros(len(facts), dtype=bool)
        for way in exemption.when:
            shown |= _shows(facts, way)
        conditions.append(shown)
        reasons.append(exemption.reason)
    chosen = np.select(conditions, range(1, len(reasons)), default=0) if conditions else 0
    return text_of(np.broadcast_to(chosen, len(facts)), reasons, facts.index)


def plan_exception(facts: pd.DataFrame, rules: Rules) -> pd.Series:
    """True where the member's plan type is excepted from the program (PPO by default)."""
    return facts["plan_type"].isin(rules.excepted_plan_types)
