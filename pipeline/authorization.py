"""Step 3 of the policy: is there an authorization, and which outcome holds?

Every line that needs an authorization meets every register row of its member
(a join, not a loop); each outcome of POLICY §3 is a mask over those pairs, and
the first outcome that holds for a line wins. Units are allocated to the
approved rows in the order date of service, claim_id, claim_line_number.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.rules import Rules
from schemas.checks import parse_dates, parse_datetimes

ROW_KEY = ["authorization_id", "hcpcs_code"]

AUTHORIZED = "AUTHORIZATION_MATCHED"
PENDING = "AUTHORIZATION_PENDING"
UNITS_EXCEEDED = "UNITS_EXCEEDED"
PROVIDER_NOT_AUTHORIZED = "PROVIDER_NOT_AUTHORIZED"
AUTHORIZATION_DENIED = "AUTHORIZATION_DENIED"
OUTSIDE_AUTHORIZED_DATES = "OUTSIDE_AUTHORIZED_DATES"
CODE_NOT_AUTHORIZED = "CODE_NOT_AUTHORIZED"
NO_AUTHORIZATION = "NO_AUTHORIZATION"

TAKES_COLUMNS = ["line", "authorization_id", "hcpcs_code", "units"]

STATE_SCHEMA = pa.schema(
    [
        pa.field("authorization_id", pa.string()),
        pa.field("member_id", pa.string()),
        pa.field("hcpcs_code", pa.string()),
        pa.field("status", pa.string()),
        pa.field("valid_from", pa.timestamp("s")),
        pa.field("valid_to", pa.timestamp("s")),
        pa.field("units_approved", pa.float64()),
        pa.field("provider_npi", pa.string()),
        pa.field("recorded_at", pa.timestamp("s")),
    ]
)
"""The register state (:func:`register_state`) as Arrow, for spilling it by member."""


def register_state(register: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Each (authorization_id, hcpcs_code) as it stood at ``as_of``; cancelled ones are absent.

    ``register`` is validated text. A row recorded after ``as_of`` is invisible;
    of the rest, the latest recorded wins.
    """
    recorded_at = parse_datetimes(register["recorded_at"])
    typed = pd.DataFrame(
        {
            "authorization_id": register["authorization_id"],
            "member_id": register["member_id"],
            "hcpcs_code": register["hcpcs_code"],
            "status": register["status"],
            "valid_from": parse_dates(register["valid_from"]),
            "valid_to": parse_dates(register["valid_to"]),
            "units_approved": pd.to_numeric(register["units_approved"]).astype("float64"),
            "provider_npi": register["provider_npi"],
            "recorded_at": recorded_at,
        }
    )
    visible = typed[typed["recorded_at"] <= pd.Timestamp(as_of)]
    latest = visible.sort_values([*ROW_KEY, "recorded_at"], kind="stable").drop_duplicates(
        ROW_KEY, keep="last"
    )
    return latest[latest["status"].ne("CANCELLED")].reset_index(drop=True)


def candidate_pairs(need: pd.DataFrame, state: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Every (line, register row) of the same member, with what each pair satisfies.

    Sorted by line, then by preference: the reported authorization number first,
    an exact code before a family match, the earliest valid_from, the smallest
    authorization_id.
    """
    families = rules.code_table.drop_duplicates("hcpcs_code").set_index("hcpcs_code")["code_family"]
    lines = need[
        [
            "member_id",
            "hcpcs_code",
            "code_family",
            "date_of_service",
            "rendering_npi",
            "facility_npi",
            "billing_npi",
            "prior_authorization_number",
        ]
    ].reset_index(names="line")
    rows = state.assign(auth_family=state["hcpcs_code"].map(families))
    pairs = lines.merge(rows, on="member_id", how="inner", suffixes=("", "_auth"))
    exact = pairs["hcpcs_code_auth"].eq(pairs["hcpcs_code"]).to_numpy(bool)
    same_family = pairs["auth_family"].eq(pairs["code_family"]).fillna(False).to_numpy(bool)
    code_ok = exact | (same_family & rules.allow_family_substitution)
    dos = pairs["date_of_service"]
    dates_ok = ((pairs["valid_from"] <= dos) & (dos <= pairs["valid_to"])).to_numpy(bool)
    provider = pairs["provider_npi"]
    provider_ok = (
        provider.isna()
        | provider.eq(pairs["rendering_npi"]).fillna(False)
        | provider.eq(pairs["facility_npi"]).fillna(False)
        | provider.eq(pairs["billing_npi"]).fillna(False)
    ).to_numpy(bool)
    reported = pairs["authorization_id"].eq(pairs["prior_authorization_number"]).fillna(False)
    pairs = pairs.assign(
        exact=exact,
        code_ok=code_ok,
        dates_ok=dates_ok,
        provider_ok=provider_ok,
        not_reported=~reported.to_numpy(bool),
        not_exact=~exact,
    )
    order = [
        "line",
        "not_reported",
        "not_exact",
        "valid_from",
        "authorization_id",
        "hcpcs_code_auth",
    ]
    return pairs.sort_values(order, kind="stable").reset_index(drop=True)


def allocate_units(
    pairs: pd.DataFrame,
    facts: pd.DataFrame,
    taken_before: pd.DataFrame | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """Which approved row authorizes each line, spending units in service order.

    Each line tries its covering approved rows in preference order. Lines take
    ``units`` each in the order date of service, claim_id, claim_line_number
    until a row has none left; a line that finds its row spent tries its next
    row, after the lines that chose that row first. A professional-component
    read takes no units and needs only a covering approved row. Units taken
    by earlier runs (``taken_before``) count as taken.

    Returns the chosen pair index per authorized line, and the units each line took
    from which row (lines that took none are left out).
    """
    covering = pairs[
        pairs["status"].eq("APPROVED") & pairs["code_ok"] & pairs["dates_ok"] & pairs["provider_ok"]
    ]
    at = covering["line"].to_numpy()
    free = facts["takes_no_units"].to_numpy(bool)[at]
    takes = np.where(free, 0.0, facts["units"].to_numpy()[at])
    covering = covering.assign(
        takes=takes,
        order_date=facts["date_of_service"].to_numpy()[at],
        order_claim=facts["claim_id"].to_numpy()[at],
        order_line=facts["line_number"].to_numpy()[at],
    )
    remaining = _units_left(covering, taken_before)
    granted_parts = []
    open_pairs = covering
    while not open_pairs.empty:
        first = open_pairs.drop_duplicates("line").sort_values(
            [*ROW_KEY, "order_date", "order_claim", "order_line"], kind="stable"
        )
        running = first.groupby(ROW_KEY, sort=False)["takes"].cumsum().to_numpy()
        # Index.map takes a Series as its mapper; pandas-stubs only allow a Mapping or callable.
        left = first.set_index(ROW_KEY).index.map(remaining).to_numpy(float)  # type: ignore[arg-type]
        fits = (running <= left + 1e-9) | first["takes"].eq(0).to_numpy(bool)
        granted = first[fits]
        granted_parts.append(granted)
        remaining = remaining.sub(granted.groupby(ROW_KEY)["takes"].sum(), fill_value=0.0)
        open_pairs = open_pairs[~open_pairs["line"].isin(granted["line"])]
        open_pairs = open_pairs.drop(first.index[~fits])
    granted = pd.concat(granted_parts) if granted_parts else covering.iloc[0:0]
    chosen = pd.Series(granted.index.to_numpy(), index=granted["line"].to_numpy(), dtype="int64")
    took = granted[granted["takes"] > 0].rename(columns={"takes": "units"})
    return chosen, took[TAKES_COLUMNS].sort_values("line").reset_index(drop=True)


def no_takes() -> pd.DataFrame:
    """An empty table of units taken."""
    return pd.DataFrame(
        {
            "line": pd.Series(dtype="int64"),
            "authorization_id": pd.Series(dtype="str"),
            "hcpcs_code": pd.Series(dtype="str"),
            "units": pd.Series(dtype="float64"),
        }
    )


def _units_left(covering: pd.DataFrame, taken_before: pd.DataFrame | None) -> pd.Series:
    approved = covering.drop_duplicates(ROW_KEY).set_index(ROW_KEY)["units_approved"]
    if taken_before is None or taken_before.empty:
        return approved.astype("float64")
    before = taken_before.groupby(ROW_KEY)["units"].sum()
    return approved.sub(before, fill_value=0.0).reindex(approved.index).astype("float64")


def authorization_outcomes(
    need: pd.DataFrame,
    facts: pd.DataFrame,
    state: pd.DataFrame,
    rules: Rules,
    taken_before: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reason, matched authorization and substitution flag for each line in ``need``.

    ``need`` holds the in-program, non-exempt lines (facts plus ``code_family``).
    Returns the outcomes (indexed like ``need``) and the units each line took.
    """
    outcome = pd.DataFrame(
        {
            "reason": pd.Series(NO_AUTHORIZATION, index=need.index, dtype="str"),
            "matched_authorization_id": pd.Series(pd.NA, index=need.index, dtype="str"),
            "code_substituted": np.zeros(len(need), dtype=bool),
        }
    )
    if need.empty or state.empty:
        return outcome, no_takes()
    pairs = candidate_pairs(need, state, rules)
    authorized, took = allocate_units(pairs, facts, taken_before)
    approved = pairs["status"].eq("APPROVED")
    covers = pairs["code_ok"] & pairs["dates_ok"]
    outcomes = [
        (AUTHORIZED, pairs.index.isin(authorized.to_numpy())),
        (PENDING, pairs["status"].eq("PENDING") & covers & pairs["provider_ok"]),
        (UNITS_EXCEEDED, approved & covers & pairs["provider_ok"]),
        (PROVIDER_NOT_AUTHORIZED, approved & covers & ~pairs["provider_ok"]),
        (AUTHORIZATION_DENIED, pairs["status"].eq("DENIED") & covers & pairs["provider_ok"]),
        (OUTSIDE_AUTHORIZED_DATES, approved & pairs["code_ok"] & ~pairs["dates_ok"]),
        (CODE_NOT_AUTHORIZED, approved & ~pairs["code_ok"] & pairs["dates_ok"]),
    ]
    rank = np.full(len(pairs), len(outcomes), dtype="int64")
    for position, (_, mask) in reversed(list(enumerate(outcomes))):
        rank[np.asarray(mask, dtype=bool)] = position
    ranked = pairs.assign(rank=rank)
    ranked = ranked[ranked["rank"] < len(outcomes)]
    best = ranked.sort_values(["line", "rank"], kind="stable").drop_duplicates("line")
    reasons = np.array([name for name, _ in outcomes])[best["rank"].to_numpy()]
    lines = best["line"].to_numpy()
    outcome.loc[lines, "reason"] = reasons
    outcome.loc[lines, "matched_authorization_id"] = best["authorization_id"].to_numpy()
    substituted = best["code_ok"].to_numpy(bool) & ~best["exact"].to_numpy(bool)
    outcome.loc[lines, "code_substituted"] = substituted
    return outcome, took
