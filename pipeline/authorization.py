"""Step 3 of the policy: is there an authorization, and which outcome holds?

Every line that needs an authorization meets every register row of its member
(a join, not a loop); each outcome of POLICY §3 is a mask over those pairs, and
the first outcome that holds for a line wins. Units are allocated to the
approved rows in the order date of service, claim_id, claim_line_number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.io import text_at, text_of
from pipeline.rules import Rules
from pipeline.validate import Validated, rows_where
from schemas.checks import arrow, coded, one_array, parse_dates, parse_datetimes
from schemas.claims import HCPCS_SHAPE

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
NEED_COLUMNS = (
    "member_id",
    "hcpcs_code",
    "date_of_service",
    "rendering_npi",
    "facility_npi",
    "billing_npi",
    "prior_authorization_number",
)
"""The facts of a line needing an authorization that :func:`authorization_outcomes` reads
(with its ``code_family``)."""

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
        pa.field("recorded_at", pa.timestamp("us")),
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
    visible = typed[(typed["recorded_at"] <= pd.Timestamp(as_of)).to_numpy(bool)]
    # In order of (authorization_id, hcpcs_code, recorded_at), a stable sort in Arrow;
    # each key's last row is the latest (the contract requires both parts of the key).
    # (A pandas sort and drop of duplicates: a state of 50,000 rows 65 ms, this 52 ms.)
    ordered = visible.iloc[
        pc.sort_indices(
            pa.table(
                {
                    "authorization_id": arrow(visible["authorization_id"]),
                    "hcpcs_code": arrow(visible["hcpcs_code"]),
                    "recorded_at": visible["recorded_at"].to_numpy(),
                }
            ),
            sort_keys=[(name, "ascending") for name in [*ROW_KEY, "recorded_at"]],
        ).to_numpy()
    ]
    same_as_next = np.ones(max(len(ordered) - 1, 0), dtype=bool)
    for name in ROW_KEY:
        key = one_array(arrow(ordered[name]))
        equal = pc.equal(key.slice(0, len(same_as_next)), key.slice(1)).fill_null(False)
        same_as_next &= np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool)
    last = np.ones(len(ordered), dtype=bool)  # a key's last row: the next row's differs
    last[:-1] = ~same_as_next
    latest = ordered[last]
    return latest[latest["status"].ne("CANCELLED").to_numpy(bool)].reset_index(drop=True)


def state_and_invalid_members(
    validated: Validated, as_of: datetime
) -> tuple[pd.DataFrame, pd.Series]:
    """The register's state as of the run (:func:`register_state`) from its validated
    rows, and the members of its rows that failed validation or whose key's state they
    leave in doubt (:func:`in_doubt`)."""
    doubted = in_doubt(validated.checked, validated.passed, as_of)
    members = validated.checked["member_id"][~validated.passed | doubted].dropna()
    if not doubted.any():
        return register_state(validated.valid, as_of), members
    known = rows_where(validated.checked, validated.passed & ~doubted)
    return register_state(known, as_of), members


def in_doubt(checked: pd.DataFrame, passed: np.ndarray, as_of: datetime) -> np.ndarray:
    """The valid rows of the keys (``authorization_id``, ``hcpcs_code``) whose state at
    ``as_of`` a row that failed validation may have changed: a failed row recorded at or
    before ``as_of`` and not before the key's latest valid version, or recorded at a time
    that cannot be read. A failed row names its own key; one whose code is missing or
    not a code names every key of its authorization (which of them it meant cannot be
    told). A failed row without an ``authorization_id`` names none.

    Such a key's state is not known: its valid versions are left out of the state
    (a cancellation written wrongly must not leave the approval before it in force),
    and its member is one with an invalid record, so that a line it would have
    decided is ``PEND``/``AUTHORIZATION_RECORD_INVALID`` (POLICY §3: never decide on
    bad data) unless another row decides it. ``checked`` is the register as
    validated (text), ``passed`` which of its rows passed.
    """
    failed = ~np.asarray(passed, dtype=bool)
    doubted = np.zeros(len(checked), dtype=bool)
    if not failed.any():
        return doubted
    # The rows of the failed rows' authorizations, looked at alone: few, where pandas
    # over every row took 1.6 s for a register of 500,000 rows, 1% of them failed.
    ids = one_array(arrow(checked["authorization_id"]))
    suspects = pc.unique(pc.drop_null(ids.filter(pa.array(failed))))
    near = np.flatnonzero(
        np.asarray(pc.is_in(ids, value_set=suspects).to_numpy(zero_copy_only=False))
    )
    if not len(near):
        return doubted
    taken = pa.array(near)
    codes = one_array(arrow(checked["hcpcs_code"])).take(taken)
    recorded = parse_datetimes(checked["recorded_at"].iloc[near]).to_numpy()
    unread = np.isnat(recorded)
    bad = failed[near]
    rows = pd.DataFrame(
        {
            "authorization_id": pd.arrays.ArrowExtensionArray(ids.take(taken)),
            "hcpcs_code": pd.arrays.ArrowExtensionArray(codes),
            "recorded": recorded,
            "coded": np.asarray(
                pc.match_substring_regex(codes, f"^(?:{HCPCS_SHAPE})$")
                .fill_null(False)
                .to_numpy(zero_copy_only=False),
                dtype=bool,
            ),
        }
    )
    visible = unread | (recorded <= np.datetime64(as_of, "us"))
    # Every valid key, with its latest version at as_of (none where all its versions
    # were recorded after: a failed row then comes after its latest, and doubts it).
    latest = (
        rows[~bad & visible & ~unread]
        .groupby(ROW_KEY, as_index=False, observed=True)["recorded"]
        .max()
    )
    keys = rows[~bad][ROW_KEY].drop_duplicates().merge(latest, on=ROW_KEY, how="left")
    doubting = rows[bad & visible]
    named = pd.concat(
        [
            doubting[doubting["coded"]].merge(keys, on=ROW_KEY, suffixes=("", "_latest")),
            doubting[~doubting["coded"]]
            .drop(columns="hcpcs_code")
            .merge(keys, on="authorization_id", suffixes=("", "_latest")),
        ]
    )
    since = named["recorded_latest"].to_numpy()
    at = named["recorded"].to_numpy()
    hit = named[np.isnat(at) | np.isnat(since) | (at >= since)]
    in_doubt_keys = pd.MultiIndex.from_frame(hit[ROW_KEY].astype("str"))
    doubted[near] = ~bad & pd.MultiIndex.from_frame(rows[ROW_KEY].astype("str")).isin(in_doubt_keys)
    return doubted


def candidate_pairs(need: pd.DataFrame, state: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Every (line, register row) of the same member, with what each pair satisfies.

    Sorted by line, then by preference: the reported authorization number first,
    an exact code before a family match, the earliest valid_from, the smallest
    authorization_id, then the row's hcpcs_code.

    Each pair of columns compared is coded together once (a value has one code on both
    sides, and a missing value matches nothing; members are joined as pandas joins,
    missing with missing), and the pairs are made and ordered by those numbers, with
    only the state columns that the outcomes read, where a pandas merge and sort
    carried every column of both (a partition of 200,000 lines, 31,000 of them needing
    an authorization, 8,700 state rows: the outcomes 50.6 ms -> 28.7 ms).
    """
    line_member, state_member = _coded_together(need["member_id"], state["member_id"], missing=True)
    line, state_row = _same_member(line_member, state_member)
    line_code, state_code = _coded_together(need["hcpcs_code"], state["hcpcs_code"])
    exact = _same(line_code[line], state_code[state_row])
    families = rules.code_table.drop_duplicates("hcpcs_code")
    state_family = pc.take(
        arrow(families["code_family"]),
        pc.index_in(arrow(state["hcpcs_code"]), value_set=arrow(families["hcpcs_code"])),
    )
    line_family, state_family_code = _coded_together(need["code_family"], state_family)
    same_family = _same(line_family[line], state_family_code[state_row])
    code_ok = exact | (same_family & rules.allow_family_substitution)
    dos = need["date_of_service"].to_numpy()[line]
    valid_from = state["valid_from"].to_numpy()[state_row]
    dates_ok = (valid_from <= dos) & (dos <= state["valid_to"].to_numpy()[state_row])
    provider, rendering, facility, billing = _coded_together(
        state["provider_npi"], need["rendering_npi"], need["facility_npi"], need["billing_npi"]
    )
    provider = provider[state_row]
    provider_ok = (
        (provider < 0)
        | _same(provider, rendering[line])
        | _same(provider, facility[line])
        | _same(provider, billing[line])
    )
    authorization, reported_number = _coded_together(
        state["authorization_id"], need["prior_authorization_number"]
    )
    reported = _same(authorization[state_row], reported_number[line])
    from_day = np.where(np.isnat(valid_from), np.iinfo(np.int64).max, valid_from.view(np.int64))
    order = np.lexsort((_rank_of(state, ROW_KEY)[state_row], from_day, ~exact, ~reported, line))
    line, state_row = line[order], state_row[order]
    taken = state.iloc[state_row][
        ["authorization_id", "hcpcs_code", "status", "units_approved"]
    ].reset_index(drop=True)
    return pd.DataFrame(
        {
            "line": need.index.to_numpy()[line],
            "authorization_id": taken["authorization_id"],
            "hcpcs_code_auth": taken["hcpcs_code"],
            "status": taken["status"],
            "units_approved": taken["units_approved"],
            "state_row": state_row,
            "exact": exact[order],
            "code_ok": code_ok[order],
            "dates_ok": dates_ok[order],
            "provider_ok": provider_ok[order],
        }
    )


def _coded_together(
    *columns: pd.Series | pa.ChunkedArray, missing: bool = False
) -> list[np.ndarray]:
    """The columns' text as integer codes shared by all of them; a missing value is
    -1 (or, with ``missing``, a code of its own, shared too)."""
    values = [
        column if isinstance(column, pa.ChunkedArray) else arrow(column) for column in columns
    ]
    joined = pa.chunked_array([chunk for value in values for chunk in value.chunks], pa.string())
    distinct, codes = coded(joined)  # a missing value: past the end, a code of its own
    if not missing:
        codes[codes == len(distinct)] = -1
    bounds = np.cumsum([0, *(len(value) for value in values)])
    return [codes[start:stop] for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def _same(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Equal codes of present values (a missing value equals nothing)."""
    return (left == right) & (left >= 0)


def _same_member(
    line_member: np.ndarray, state_member: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each line paired with each state row of its member: positions of both, by line
    and, within a line, in the state's order."""
    by_member = np.argsort(state_member, kind="stable")
    members = state_member[by_member]
    first = np.searchsorted(members, line_member, side="left")
    counts = np.searchsorted(members, line_member, side="right") - first
    line = np.repeat(np.arange(len(line_member)), counts)
    within = np.arange(len(line)) - np.repeat(np.cumsum(counts) - counts, counts)
    return line, by_member[np.repeat(first, counts) + within]


def _rank_of(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each row's place when ``frame`` is sorted by ``columns`` (text, missing last)."""
    order = pc.sort_indices(
        pa.table({name: arrow(frame[name]) for name in columns}),
        sort_keys=[(name, "ascending") for name in columns],
    ).to_numpy()
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order] = np.arange(len(frame))
    return rank


def allocate_units(
    pairs: pd.DataFrame,
    facts: pd.DataFrame,
    taken_before: pd.DataFrame | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """Which approved row authorizes each line, spending units in service order.

    Lines are decided in the order date of service, claim_id, claim_line_number;
    each takes the first of its covering approved rows, in preference order, that
    has units left and enough of them for its ``units``. A line asking for more
    than a row has left takes nothing from it and tries its next row; a later line
    that fits what is left still takes it. A line asking for none needs units left
    all the same. A professional-component read takes no units and needs only a
    covering approved row. Units taken by earlier runs (``taken_before``) count as
    taken.

    Units belong to a register row (``authorization_id`` and its ``hcpcs_code``),
    whichever code of its family a line matched it with. Rows are told apart by
    their place in the register state (``state_row``), and the service order is
    made of numbers. Lines with one covering row, on a row no line with a choice
    covers, are spent together (:func:`_spend`); the rest, one at a time (255 lines
    of a 200,000-line partition of the benchmark's; a partition whose every line had
    two rows would take some 0.25 s).

    Returns the chosen pair index per authorized line, and the units each line took
    from which row (lines that took none are left out).
    """
    covering = pairs[
        pairs["status"].eq("APPROVED") & pairs["code_ok"] & pairs["dates_ok"] & pairs["provider_ok"]
    ]
    line = covering["line"].to_numpy()
    free = facts["takes_no_units"].to_numpy(bool)[line]
    takes = np.where(free, 0.0, facts["units"].to_numpy()[line])
    row = covering["state_row"].to_numpy()
    service_order = _service_order(facts, line)
    remaining = _units_left(covering, taken_before)
    # A line with a choice of rows, and every line on one of those rows, in turn.
    choosing = np.bincount(line, minlength=len(facts))[line] > 1
    in_turn = np.isin(line, line[np.isin(row, row[choosing])])
    alone = np.flatnonzero(~in_turn)
    alone = alone[np.lexsort([*(key[alone] for key in reversed(service_order)), row[alone]])]
    granted = np.concatenate(
        [
            alone[_spend(row[alone], takes[alone], free[alone], remaining)],
            _in_turn(
                np.flatnonzero(in_turn),
                line=line,
                row=row,
                takes=takes,
                free=free,
                service_order=service_order,
                remaining=remaining,
            ),
        ]
    )
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


_UNITS_TOLERANCE = 1e-9
"""Units are numbers with decimals: a line fits what is left up to this much over."""


def _fits(asked: Any, left: Any) -> Any:
    """Whether a line asking ``asked`` units (not a professional-component read) may
    take them from a row with ``left``: units are left, and enough of them (numbers, or
    arrays of them)."""
    return (left > _UNITS_TOLERANCE) & (asked <= left + _UNITS_TOLERANCE)


def _in_turn(
    pairs: np.ndarray,
    *,
    line: np.ndarray,
    row: np.ndarray,
    takes: np.ndarray,
    free: np.ndarray,
    service_order: list[np.ndarray],
    remaining: np.ndarray,
) -> np.ndarray:
    """The granted ones of ``pairs`` (a line's in preference order), decided a line at a
    time in service order: each line takes the first of its rows it fits."""
    pairs = pairs[np.lexsort([pairs, *(key[pairs] for key in reversed(service_order))])]
    granted = []
    decided = -1
    for pair, at, asked, no_units in zip(
        pairs.tolist(),
        line[pairs].tolist(),
        takes[pairs].tolist(),
        free[pairs].tolist(),
        strict=True,
    ):
        if at == decided:
            continue
        if no_units or _fits(asked, remaining[row[pair]]):
            remaining[row[pair]] -= asked
            granted.append(pair)
            decided = at
    return np.array(granted, dtype=np.int64)


def _spend(
    row: np.ndarray, takes: np.ndarray, free: np.ndarray, remaining: np.ndarray
) -> np.ndarray:
    """Which lines (each asking ``takes`` of register row ``row``, in service order within
    each row, rows together; ``free`` for a professional-component read) fit what their
    row has left, taken in that order: a line that fits (:func:`_fits`) takes its units
    from ``remaining``; one that does not takes nothing, and the lines after it go on
    with what is left.

    Computed a stretch at a time: the running sums of the lines not yet settled grant
    every line before its row's first that does not fit, which is refused; what is left
    is then known, and every unsettled line that does not fit it is refused with it. A
    row settles in as many rounds as there are different amounts left at the lines
    refused (one, mostly: nothing is left)."""
    granted = free.copy()  # a professional-component read: a covering row is enough
    unsettled = ~granted
    while unsettled.any():
        open_lines = np.flatnonzero(unsettled)
        rows = row[open_lines]
        asked = takes[open_lines]
        running = pd.Series(asked).groupby(rows, sort=False).cumsum().to_numpy()
        left = remaining[rows] - (running - asked)  # what the row has left at each line
        over = ~_fits(asked, left)
        refused_rows, place = np.unique(rows[over], return_index=True)
        first_refused = np.full(len(remaining), len(row))
        first_refused[refused_rows] = open_lines[over][place]
        fit = open_lines[open_lines < first_refused[rows]]
        granted[fit] = True
        np.subtract.at(remaining, row[fit], takes[fit])
        unsettled[fit] = False
        unsettled[first_refused[refused_rows]] = False
        still = np.flatnonzero(unsettled)
        unsettled[still[~_fits(takes[still], remaining[row[still]])]] = False
    return granted


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

    ``need`` holds the in-program, non-exempt lines (``NEED_COLUMNS`` of the facts, and
    ``code_family``).
    Returns the outcomes (indexed like ``need``) and the units each line took.
    """
    if need.empty or state.empty:
        none = np.full(len(need), -1)
        nothing = pa.chunked_array([], pa.string())
        unmatched = _outcomes(
            need.index, none, [], ids=nothing, pair=none, substituted=np.zeros(len(need), bool)
        )
        return unmatched, no_takes()
    pairs = candidate_pairs(need, state, rules)
    authorized, took = allocate_units(pairs, facts, taken_before)
    status = pairs["status"]
    approved = status.eq("APPROVED").to_numpy(bool)
    code_ok, dates_ok = pairs["code_ok"].to_numpy(bool), pairs["dates_ok"].to_numpy(bool)
    provider_ok = pairs["provider_ok"].to_numpy(bool)
    covers = code_ok & dates_ok
    outcomes = [
        (AUTHORIZED, pairs.index.isin(authorized.to_numpy())),
        (PENDING, status.eq("PENDING").to_numpy(bool) & covers & provider_ok),
        (UNITS_EXCEEDED, approved & covers & provider_ok),
        (PROVIDER_NOT_AUTHORIZED, approved & covers & ~provider_ok),
        (AUTHORIZATION_DENIED, status.eq("DENIED").to_numpy(bool) & covers & provider_ok),
        (OUTSIDE_AUTHORIZED_DATES, approved & code_ok & ~dates_ok),
        (CODE_NOT_AUTHORIZED, approved & ~code_ok & dates_ok),
    ]
    rank = np.full(len(pairs), len(outcomes), dtype="int64")
    for position, (_, mask) in reversed(list(enumerate(outcomes))):
        rank[np.asarray(mask, dtype=bool)] = position
    # Each line's first outcome that holds, from its most preferred pair among equals.
    line = pairs["line"].to_numpy()
    held = np.flatnonzero(rank < len(outcomes))
    held = held[np.lexsort((rank[held], line[held]))]
    best = held[np.r_[True, line[held][1:] != line[held][:-1]]] if len(held) else held
    at = need.index.get_indexer(pd.Index(line[best]))
    outcome = np.full(len(need), -1)
    outcome[at] = rank[best]
    pair = np.full(len(need), -1)
    pair[at] = best
    substituted = np.zeros(len(need), dtype=bool)
    substituted[at] = code_ok[best] & ~pairs["exact"].to_numpy(bool)[best]
    names = [name for name, _ in outcomes]
    ids = arrow(pairs["authorization_id"])
    return _outcomes(need.index, outcome, names, ids=ids, pair=pair, substituted=substituted), took


def _outcomes(
    index: pd.Index,
    outcome: np.ndarray,
    names: list[str],
    *,
    ids: pa.ChunkedArray,
    pair: np.ndarray,
    substituted: np.ndarray,
) -> pd.DataFrame:
    """The outcomes of the lines at ``index``: ``names[outcome]`` (``NO_AUTHORIZATION``
    where it is -1) and the authorization of the line's ``pair`` among ``ids`` (none
    where it is -1)."""
    reason = text_of(np.where(outcome < 0, len(names), outcome), [*names, NO_AUTHORIZATION], index)
    return pd.DataFrame(
        {
            "reason": reason,
            "matched_authorization_id": text_at(ids, pair, index),
            "code_substituted": substituted,
        },
        index=index,
    )
