"""Tiny claim and register frames for the policy tests, run through the real validator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from pipeline.authorization import state_and_invalid_members
from pipeline.decide import Partition, decide
from pipeline.io import SOURCE_FILE, SOURCE_ROW
from pipeline.rules import Rules, load_rules
from pipeline.validate import validate_authorizations, validate_claims
from schemas import authorizations as register_contract
from schemas import claims as claims_contract

AS_OF = datetime(2026, 6, 30, 23, 59, 59)
NPI_A = "1234567893"
NPI_B = "1467498014"
NPI_C = "1003811290"
NPI_D = "1999999992"


def line(**values: Any) -> dict[str, Any]:
    """A professional MRI-brain line in an office, with anything overridden."""
    base = {
        "claim_id": "C1",
        "claim_line_number": "1",
        "claim_type": "professional",
        "member_id": "M1",
        "plan_type": "HMO",
        "claim_line_start_date": "2026-03-10",
        "place_of_service_code": "11",
        "hcpcs_code": "70553",
        "rendering_npi": NPI_A,
        "charge_amount": "1200.00",
    }
    return base | values


def auth(**values: Any) -> dict[str, Any]:
    """An approved one-unit authorization for the line above, with anything overridden."""
    base = {
        "authorization_id": "A1",
        "member_id": "M1",
        "hcpcs_code": "70553",
        "status": "APPROVED",
        "valid_from": "2026-03-01",
        "valid_to": "2026-03-31",
        "units_approved": "1",
        "recorded_at": "2026-02-20T09:00:00Z",
    }
    return base | values


def text_frame(rows: list[dict[str, Any]], contract: tuple[str, ...]) -> pd.DataFrame:
    """Rows as the reader delivers them: every contract column, as text, with lineage."""
    columns = list(dict.fromkeys([*contract, *(k for r in rows for k in r)]))
    frame = pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype="str") for c in columns})
    return frame.assign(
        **{SOURCE_FILE: pd.Series(["test.csv"] * len(rows), dtype="category")},
        **{SOURCE_ROW: pd.Series(range(1, len(rows) + 1), dtype="int64")},
    )


def adjudicate_rows(
    lines: list[dict[str, Any]],
    auths: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    as_of: datetime = AS_OF,
    rules: Rules | None = None,
    taken_before: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Validate and decide; every row must be valid. Returns lines joined to decisions."""
    rules = rules or load_rules()
    claims = validate_claims(text_frame(lines, claims_contract.CONTRACT_COLUMNS), as_of)
    assert claims.rejects.empty, claims.rejects[["column", "check", "value"]].to_string()
    register_text = text_frame(list(auths) or [auth()], register_contract.CONTRACT_COLUMNS)
    if not auths:
        register_text = register_text.iloc[0:0]
    state, invalid = state_and_invalid_members(validate_authorizations(register_text), as_of)
    partition = Partition(
        lines=claims.valid.reset_index(drop=True),
        register=state,
        members_with_invalid_records=frozenset(invalid),
        units_taken_before=taken_before,
    )
    decisions, _ = decide(partition, rules, run_id="test")
    return partition.lines.join(decisions)
