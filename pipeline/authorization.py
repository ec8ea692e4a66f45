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
import pyarrow.compute as pc

from pipeline.rules import Rules
from schemas.checks import arrow, parse_dates, parse_datetimes

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
    rows = state.assign(
        auth_family=state["hcpcs_code"].map(families), state_row=np.arange(len(state))
    )
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

    Units belong to a register row (``authorization_id`` and its ``hcpcs_code``),
    whichever code of its family a line matched it with. Rows are told apart by
    their place in the register state (``state_row``) and the service order is
    made of numbers, so each round is a sort of numbers, not of text.

    Returns the chosen pair index per authorized line, and the units each line took
    from which row (lines that took none are left out).
    """
    covering = pairs[
        pairs["status"].eq("APPROVED") & pairs["code_ok"] & pairs["dates_ok"] & pairs["provider_ok"]
    ]
    line = covering["line"].to_numpy()
    takes = np.where(
        facts["takes_no_units"].to_numpy(bool)[line], 0.0, facts["units"].to_numpy()[line]
    )
    row = covering["state_row"].to_numpy()
    service_order = _service_order(facts, line)
    remaining = _units_left(covering, taken_before)
    granted_parts = []
    open_pairs = np.arange(len(covering))  # in preference order within each line
    while len(open_pairs):
        _, firsts = np.unique(line[open_pairs], return_index=True)
        first = open_pairs[firsts]
        first = first[np.lexsort([*(key[first] for key in reversed(service_order)), row[first]])]
        running = pd.Series(takes[first]).groupby(row[first], sort=False).cumsum().to_numpy()
        fits = (running <= remaining[row[first]] + 1e-9) | (takes[first] == 0)
        granted = first[fits]
        granted_parts.append(granted)
        spent = pd.Series(takes[granted]).groupby(row[granted]).sum()
        remaining[spent.index.to_numpy()] -= spent.to_numpy()
        open_pairs = open_pairs[
            ~np.isin(line[open_pairs], line[granted]) & ~np.isin(open_pairs, first[~fits])
        ]
    granted = np.concatenate(granted_parts) if granted_parts else np.array([], dtype=np.int64)
    chosen = pd.Series(covering.index.to_numpy()[granted], index=line[granted], dtype="int64")
    rows = covering.iloc[granted]
    took = pd.DataFrame(
        {
            "line": line[granted],
            "authorization_id": rows["authorization_id"].to_numpy(),
            "hcpcs_code": rows["hcpcs_code_auth"].to_numpy(),  # the register row's
            "units": takes[granted],
        }
    ).astype({"authorization_id": "str", "hcpcs_code": "str"})
    took = took[took["units"] > 0]
    return chosen, took[TAKES_COLUMNS].sort_values("line").reset_index(drop=True)


def _service_order(facts: pd.DataFrame, line: np.ndarray) -> list[np.ndarray]:
    """Date of service, claim_id and claim_line_number of each line, as numbers that
    sort as they do (a missing date or claim_id last)."""
    dates = facts["date_of_service"].to_numpy()[line]
    days = np.where(np.isnat(dates), np.iinfo(np.int64).max, dates.view(np.int64))
    claims = pc.rank(arrow(facts["claim_id"].iloc[line]), sort_keys="ascending", tiebreaker="dense")
    return [days, claims.to_numpy(), facts["line_number"].to_numpy()[line]]


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


def _units_left(covering: pd.DataFrame, taken_before: pd.DataFrame | None) -> np.ndarray:
    """Units each row of the register state has left, by its place in the state (rows
    no line is covered by are left at zero)."""
    rows = covering.drop_duplicates("state_row")
    left = np.zeros(int(covering["state_row"].to_numpy().max(initial=-1)) + 1)
    left[rows["state_row"].to_numpy()] = rows["units_approved"].to_numpy(np.float64)
    if taken_before is not None and not taken_before.empty:
        before = taken_before.groupby(ROW_KEY, as_index=False)["units"].sum()
        keys = rows[["authorization_id", "hcpcs_code_auth", "state_row"]].rename(
            columns={"hcpcs_code_auth": "hcpcs_code"}
        )
        spent = before.merge(keys, on=ROW_KEY)
        left[spent["state_row"].to_numpy()] -= spent["units"].to_numpy(np.float64)
    return left


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
