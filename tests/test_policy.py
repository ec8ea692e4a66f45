"""Every rule and outcome of POLICY.md, one small case each, in the policy's order."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline.authorization import _spend, candidate_pairs, in_doubt, register_state
from pipeline.rules import load_rules
from tests.policy_helpers import NPI_A, NPI_B, NPI_C, NPI_D, adjudicate_rows, auth, line


def outcome(frame: pd.DataFrame, row: int = 0) -> tuple[object, ...]:
    got = frame.iloc[row]
    reason = None if pd.isna(got["reason"]) else str(got["reason"])
    matched = got["matched_authorization_id"]
    return (str(got["decision"]), reason, None if pd.isna(matched) else matched)


# --- 1. is the line in the program? -------------------------------------------------

SCOPE_CASES = [
    ("office visit code", line(hcpcs_code="99213"), ("NOT_APPLICABLE", None, None)),
    ("lab code", line(hcpcs_code="80053"), ("NOT_APPLICABLE", None, None)),
    (
        "retired breast MRI code, old date",
        line(hcpcs_code="77058", claim_line_start_date="2018-12-31"),
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "retired breast MRI code, day after retirement",
        line(hcpcs_code="77058", claim_line_start_date="2019-01-01"),
        ("NOT_APPLICABLE", None, None),
    ),
    (
        "new head-and-neck CTA, day before it began",
        line(hcpcs_code="70471", claim_line_start_date="2025-12-31"),
        ("NOT_APPLICABLE", None, None),
    ),
    (
        "new head-and-neck CTA, first day",
        line(hcpcs_code="70471", claim_line_start_date="2026-01-01"),
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "SPECT without a behavioral-health diagnosis",
        line(hcpcs_code="78803", diagnosis_code_1="M5416"),
        ("NOT_APPLICABLE", None, None),
    ),
    (
        "SPECT with F32.A",
        line(hcpcs_code="78803", diagnosis_code_1="M5416", diagnosis_code_7="F32.A"),
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "SPECT with F00 (not chapter F01-F99)",
        line(hcpcs_code="78803", diagnosis_code_1="F00"),
        ("NOT_APPLICABLE", None, None),
    ),
    (
        "institutional room line without a code or line date",
        line(
            claim_type="institutional",
            hcpcs_code=None,
            claim_line_start_date=None,
            claim_start_date="2026-03-10",
            place_of_service_code=None,
            bill_type_code="131",
            revenue_center_code="0001",
            service_unit_quantity="0",
            rendering_npi=None,
            facility_npi=NPI_B,
        ),
        ("NOT_APPLICABLE", None, None),
    ),
]


@pytest.mark.parametrize(
    ("claim", "expected"), [c[1:] for c in SCOPE_CASES], ids=[c[0] for c in SCOPE_CASES]
)
def test_scope(claim: dict[str, str], expected: tuple[object, ...]) -> None:
    assert outcome(adjudicate_rows([claim])) == expected


def test_a_line_outside_the_program_has_no_modality_or_region() -> None:
    claims = [
        line(claim_id="C1", hcpcs_code="78803", diagnosis_code_1="M5416"),
        line(claim_id="C2", hcpcs_code="78803", diagnosis_code_1="F32.A"),
    ]
    frame = adjudicate_rows(claims)
    assert frame["modality"].isna().tolist() == [True, False]
    assert frame["body_region"].isna().tolist() == [True, False]


RECORDS_CASES = [
    ("MRI brain", line(hcpcs_code="70553"), False),
    ("PET", line(hcpcs_code="78815"), True),
    ("CTA", line(hcpcs_code="71275"), True),
    ("breast MRI", line(hcpcs_code="77049"), True),
    ("MRA without behavioral-health diagnosis", line(hcpcs_code="70544"), False),
    (
        "MRA with behavioral-health diagnosis",
        line(hcpcs_code="70544", diagnosis_code_1="F329"),
        True,
    ),
    (
        "functional MRI with behavioral-health diagnosis",
        line(hcpcs_code="70555", diagnosis_code_2="F20.9"),
        True,
    ),
    (
        "MRI brain with behavioral-health diagnosis",
        line(hcpcs_code="70553", diagnosis_code_1="F329"),
        False,
    ),
    ("not in program", line(hcpcs_code="99213"), False),
]


@pytest.mark.parametrize(
    ("claim", "expected"), [c[1:] for c in RECORDS_CASES], ids=[c[0] for c in RECORDS_CASES]
)
def test_records_required(claim: dict[str, str], expected: bool) -> None:
    assert bool(adjudicate_rows([claim]).iloc[0]["records_required"]) is expected


# --- 2. is it exempt? -------------------------------------------------------------


def institutional(claim_id: str, number: str, **values: str | None) -> dict[str, object]:
    base: dict[str, str | None] = {
        "claim_id": claim_id,
        "claim_line_number": number,
        "claim_type": "institutional",
        "place_of_service_code": None,
        "rendering_npi": None,
        "facility_npi": NPI_B,
        "bill_type_code": "131",
    }
    return line(**(base | values))


def imaging_with(revenue: str, bill_type: str = "131") -> list[dict[str, object]]:
    """An institutional claim: a CT line on 0350 and another line on ``revenue``."""
    return [
        institutional(
            "I1", "1", hcpcs_code="70450", revenue_center_code="0350", bill_type_code=bill_type
        ),
        institutional(
            "I1", "2", hcpcs_code="99284", revenue_center_code=revenue, bill_type_code=bill_type
        ),
    ]


SETTING_CASES = [
    ("POS 21 inpatient", [line(place_of_service_code="21")], ("EXEMPT", "INPATIENT", None)),
    (
        "POS 23 emergency room",
        [line(place_of_service_code="23")],
        ("EXEMPT", "EMERGENCY_ROOM", None),
    ),
    (
        "POS 24 ambulatory surgery",
        [line(place_of_service_code="24")],
        ("EXEMPT", "AMBULATORY_SURGERY", None),
    ),
    (
        "POS 20 freestanding urgent care",
        [line(place_of_service_code="20")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    ("POS 11 office", [line(place_of_service_code="11")], ("DENY", "NO_AUTHORIZATION", None)),
    (
        "POS 19 outpatient hospital",
        [line(place_of_service_code="19")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "POS 22 outpatient hospital",
        [line(place_of_service_code="22")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "bill type 111",
        [institutional("I1", "1", hcpcs_code="70450", bill_type_code="111")],
        ("EXEMPT", "INPATIENT", None),
    ),
    (
        "bill type 0121",
        [institutional("I1", "1", hcpcs_code="70450", bill_type_code="0121")],
        ("EXEMPT", "INPATIENT", None),
    ),
    ("ER revenue 0450 on another line", imaging_with("0450"), ("EXEMPT", "EMERGENCY_ROOM", None)),
    ("ER revenue 0981 on another line", imaging_with("0981"), ("EXEMPT", "EMERGENCY_ROOM", None)),
    (
        "urgent care 0456 on a 13x claim",
        imaging_with("0456"),
        ("EXEMPT", "HOSPITAL_URGENT_CARE", None),
    ),
    (
        "urgent care 0456 on an 85x claim",
        imaging_with("0456", bill_type="851"),
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "bill type 831",
        [institutional("I1", "1", hcpcs_code="70450", bill_type_code="831")],
        ("EXEMPT", "AMBULATORY_SURGERY", None),
    ),
    ("revenue 0490", imaging_with("0490", bill_type="851"), ("EXEMPT", "AMBULATORY_SURGERY", None)),
    ("13x with revenue 0361", imaging_with("0361"), ("EXEMPT", "AMBULATORY_SURGERY", None)),
    ("observation 0762 is not exempt", imaging_with("0762"), ("DENY", "NO_AUTHORIZATION", None)),
    (
        "inpatient and ER: inpatient wins",
        imaging_with("0450", bill_type="111"),
        ("EXEMPT", "INPATIENT", None),
    ),
    (
        "ER and surgery: ER wins",
        imaging_with("0450", bill_type="831"),
        ("EXEMPT", "EMERGENCY_ROOM", None),
    ),
    ("PPO plan exception", [line(plan_type="PPO")], ("EXEMPT", "PLAN_EXCEPTION", None)),
    ("ppo in lower case", [line(plan_type="ppo")], ("EXEMPT", "PLAN_EXCEPTION", None)),
    (
        "PPO in the ER: setting first",
        [line(plan_type="PPO", place_of_service_code="23")],
        ("EXEMPT", "EMERGENCY_ROOM", None),
    ),
    (
        "PPO, not in program",
        [line(plan_type="PPO", hcpcs_code="99213")],
        ("NOT_APPLICABLE", None, None),
    ),
]


@pytest.mark.parametrize(
    ("claims", "expected"), [c[1:] for c in SETTING_CASES], ids=[c[0] for c in SETTING_CASES]
)
def test_exemptions(claims: list[dict[str, object]], expected: tuple[object, ...]) -> None:
    assert outcome(adjudicate_rows(claims)) == expected


def test_er_exemption_does_not_reach_a_later_claim() -> None:
    """An ER-ordered follow-up scan performed on a later claim in another setting."""
    claims = [
        *imaging_with("0450"),
        institutional("I2", "1", hcpcs_code="70450", revenue_center_code="0350"),
    ]
    frame = adjudicate_rows(claims)
    assert outcome(frame, 2) == ("DENY", "NO_AUTHORIZATION", None)


def test_the_setting_is_the_claims_whichever_line_shows_it() -> None:
    """The setting is a property of the whole claim (POLICY §2): a professional claim
    whose visit line is in the ER (POS 23) exempts its scan line billed as outpatient
    hospital (POS 22), and an institutional claim whose lines disagree on the type of
    bill (111 and 131) is an inpatient claim. A claim with no such line is not exempt."""
    claims = [
        line(claim_id="P1", claim_line_number="1", hcpcs_code="99283", place_of_service_code="23"),
        line(claim_id="P1", claim_line_number="2", place_of_service_code="22"),
        institutional(
            "I1", "1", hcpcs_code="99221", revenue_center_code="0120", bill_type_code="111"
        ),
        institutional(
            "I1", "2", hcpcs_code="70450", revenue_center_code="0350", bill_type_code="131"
        ),
        line(claim_id="P2", place_of_service_code="22"),
    ]
    frame = adjudicate_rows(claims)
    decided = {
        f"{row.claim_id}/{row.claim_line_number}": (str(row.decision), row.reason)
        for row in frame.itertuples()
    }
    assert decided["P1/2"] == ("EXEMPT", "EMERGENCY_ROOM")
    assert decided["I1/2"] == ("EXEMPT", "INPATIENT")
    assert decided["P2/1"] == ("DENY", "NO_AUTHORIZATION")


def test_each_claim_of_a_partition_shows_its_own_setting() -> None:
    """Claims decided together, their lines interleaved: the ER revenue code of each
    claim's other line exempts that claim's scan, and no other claim's."""
    claims = [
        institutional("I1", "1", hcpcs_code="70450", revenue_center_code="0350"),
        institutional("I2", "1", hcpcs_code="99284", revenue_center_code="0981"),
        institutional("I3", "1", hcpcs_code="70450", revenue_center_code="0350"),
        institutional("I2", "2", hcpcs_code="70450", revenue_center_code="0350"),
        institutional("I1", "2", hcpcs_code="99284", revenue_center_code="0450"),
        institutional(
            "I4", "1", hcpcs_code="70450", revenue_center_code="0350", bill_type_code="111"
        ),
    ]
    frame = adjudicate_rows(claims)
    assert [outcome(frame, row)[:2] for row in (0, 2, 3, 5)] == [
        ("EXEMPT", "EMERGENCY_ROOM"),
        ("DENY", "NO_AUTHORIZATION"),
        ("EXEMPT", "EMERGENCY_ROOM"),
        ("EXEMPT", "INPATIENT"),
    ]


def test_observation_switch_exempts_observation() -> None:
    rules = replace(load_rules(), observation_exempt=True)
    assert outcome(adjudicate_rows(imaging_with("0762"), rules=rules)) == (
        "EXEMPT",
        "OBSERVATION",
        None,
    )


def test_excepted_plan_types_is_a_setting() -> None:
    rules = replace(load_rules(), excepted_plan_types=frozenset({"PPO", "EPO"}))
    assert outcome(adjudicate_rows([line(plan_type="EPO")], rules=rules)) == (
        "EXEMPT",
        "PLAN_EXCEPTION",
        None,
    )


# --- 3. is there an authorization? ---------------------------------------------------

AUTH_CASES = [
    ("exact code", [line()], [auth()], ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1")),
    (
        "first valid day",
        [line(claim_line_start_date="2026-03-01")],
        [auth()],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "last valid day",
        [line(claim_line_start_date="2026-03-31")],
        [auth()],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "day before first",
        [line(claim_line_start_date="2026-02-28")],
        [auth()],
        ("DENY", "OUTSIDE_AUTHORIZED_DATES", "A1"),
    ),
    (
        "day after last",
        [line(claim_line_start_date="2026-04-01")],
        [auth()],
        ("DENY", "OUTSIDE_AUTHORIZED_DATES", "A1"),
    ),
    (
        "family substitution",
        [line(hcpcs_code="70551")],
        [auth()],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "never across modality",
        [line(hcpcs_code="70544")],
        [auth()],
        ("DENY", "CODE_NOT_AUTHORIZED", "A1"),
    ),
    (
        "never across body region",
        [line(hcpcs_code="72148")],
        [auth()],
        ("DENY", "CODE_NOT_AUTHORIZED", "A1"),
    ),
    ("pending", [line()], [auth(status="PENDING")], ("PEND", "AUTHORIZATION_PENDING", "A1")),
    ("denied", [line()], [auth(status="DENIED")], ("DENY", "AUTHORIZATION_DENIED", "A1")),
    (
        "cancelled counts as absent",
        [line()],
        [auth(status="CANCELLED")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "another member's authorization",
        [line()],
        [auth(member_id="M2")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    ("nothing at all", [line()], [], ("DENY", "NO_AUTHORIZATION", None)),
    (
        "provider matches rendering",
        [line()],
        [auth(provider_npi=NPI_A)],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "provider matches billing",
        [line(billing_npi=NPI_C)],
        [auth(provider_npi=NPI_C)],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "provider differs",
        [line()],
        [auth(provider_npi=NPI_D)],
        ("DENY", "PROVIDER_NOT_AUTHORIZED", "A1"),
    ),
    (
        "ordering provider does not count",
        [line(ordering_npi=NPI_D)],
        [auth(provider_npi=NPI_D)],
        ("DENY", "PROVIDER_NOT_AUTHORIZED", "A1"),
    ),
    (
        "recorded after as-of is invisible",
        [line()],
        [auth(recorded_at="2026-07-01T00:00:00Z")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "approved then cancelled",
        [line()],
        [auth(), auth(status="CANCELLED", recorded_at="2026-03-05T00:00:00Z")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
    (
        "pending then approved",
        [line()],
        [auth(status="PENDING", recorded_at="2026-02-01T00:00:00Z"), auth()],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "approved, then denied after as-of",
        [line()],
        [auth(), auth(status="DENIED", recorded_at="2026-07-02T00:00:00Z")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "exact beats family",
        [line()],
        [auth(authorization_id="A0", hcpcs_code="70551"), auth(authorization_id="A9")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A9"),
    ),
    (
        "earliest valid_from wins",
        [line()],
        [auth(authorization_id="A0", valid_from="2026-03-05"), auth(authorization_id="A9")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A9"),
    ),
    (
        "smallest id breaks the tie",
        [line()],
        [auth(authorization_id="A2"), auth(authorization_id="A1")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "reported number is tried first",
        [line(prior_authorization_number="A9")],
        [auth(authorization_id="A1", valid_from="2026-01-01"), auth(authorization_id="A9")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A9"),
    ),
    (
        "a number reported on another line of the claim is the claim's",
        [
            line(claim_line_number="1", hcpcs_code="99213", prior_authorization_number="A9"),
            line(claim_line_number="2"),
        ],
        [auth(authorization_id="A1", valid_from="2026-01-01"), auth(authorization_id="A9")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A9"),
    ),
    (
        "a line's own number before the claim's",
        [
            line(claim_line_number="1", hcpcs_code="99213", prior_authorization_number="A9"),
            line(claim_line_number="2", prior_authorization_number="A1"),
        ],
        [auth(authorization_id="A1", valid_from="2026-03-05"), auth(authorization_id="A9")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "a claim reporting two numbers names neither for a line without one",
        [
            line(claim_line_number="1", hcpcs_code="99213", prior_authorization_number="A9"),
            line(claim_line_number="2", hcpcs_code="99214", prior_authorization_number="A8"),
            line(claim_line_number="3"),
        ],
        [
            auth(authorization_id="A1", valid_from="2026-01-01"),
            auth(authorization_id="A8"),
            auth(authorization_id="A9"),
        ],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "reported number of another member is ignored",
        [line(prior_authorization_number="B1")],
        [auth(), auth(authorization_id="B1", member_id="M2")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1"),
    ),
    (
        "approved wins over pending",
        [line()],
        [auth(authorization_id="A2", status="PENDING"), auth(authorization_id="A3")],
        ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A3"),
    ),
    (
        "pending wins over denied",
        [line()],
        [
            auth(authorization_id="A2", status="DENIED"),
            auth(authorization_id="A3", status="PENDING"),
        ],
        ("PEND", "AUTHORIZATION_PENDING", "A3"),
    ),
    (
        "provider mismatch wins over denied",
        [line()],
        [
            auth(authorization_id="A2", status="DENIED"),
            auth(authorization_id="A3", provider_npi=NPI_D),
        ],
        ("DENY", "PROVIDER_NOT_AUTHORIZED", "A3"),
    ),
    (
        "denied wins over outside dates",
        [line()],
        [
            auth(authorization_id="A2", valid_from="2025-01-01", valid_to="2025-01-31"),
            auth(authorization_id="A3", status="DENIED"),
        ],
        ("DENY", "AUTHORIZATION_DENIED", "A3"),
    ),
    (
        "outside dates wins over other code",
        [line()],
        [
            auth(authorization_id="A2", hcpcs_code="72148"),
            auth(authorization_id="A3", valid_to="2026-03-09"),
        ],
        ("DENY", "OUTSIDE_AUTHORIZED_DATES", "A3"),
    ),
    (
        "other code outside dates is nothing",
        [line()],
        [auth(hcpcs_code="72148", valid_to="2026-03-09")],
        ("DENY", "NO_AUTHORIZATION", None),
    ),
]


@pytest.mark.parametrize(
    ("claims", "auths", "expected"), [c[1:] for c in AUTH_CASES], ids=[c[0] for c in AUTH_CASES]
)
def test_authorization_outcomes(
    claims: list[dict[str, object]], auths: list[dict[str, object]], expected: tuple[object, ...]
) -> None:
    # The last line decides: the scan, where a case's claim has other lines before it.
    assert outcome(adjudicate_rows(claims, auths), -1) == expected


def test_family_substitution_is_flagged() -> None:
    frame = adjudicate_rows([line(hcpcs_code="70551")], [auth()])
    assert bool(frame.iloc[0]["code_substituted"]) is True
    exact = adjudicate_rows([line()], [auth()])
    assert bool(exact.iloc[0]["code_substituted"]) is False


def test_family_substitution_can_be_switched_off() -> None:
    rules = replace(load_rules(), allow_family_substitution=False)
    frame = adjudicate_rows([line(hcpcs_code="70551")], [auth()], rules=rules)
    assert outcome(frame) == ("DENY", "CODE_NOT_AUTHORIZED", "A1")


def test_the_register_state_is_each_rows_latest_version_as_of_the_run() -> None:
    # Random versions of a few (authorization_id, hcpcs_code) rows, in random order;
    # the state holds each row's latest version recorded by the as-of, unless cancelled.
    chooser = np.random.default_rng(7)
    for _ in range(20):
        size = int(chooser.integers(0, 40))
        rows = pd.DataFrame(
            {
                "authorization_id": [f"A{chooser.integers(0, 4)}" for _ in range(size)],
                "member_id": ["M1"] * size,
                "hcpcs_code": [str(70550 + chooser.integers(0, 3)) for _ in range(size)],
                "status": [
                    chooser.choice(["APPROVED", "CANCELLED", "PENDING"]) for _ in range(size)
                ],
                "valid_from": ["2026-01-01"] * size,
                "valid_to": ["2026-12-31"] * size,
                "units_approved": [str(n) for n in range(size)],  # tells the versions apart
                "provider_npi": [None] * size,
                "recorded_at": [
                    f"2026-{chooser.integers(1, 13):02d}-01T00:00:00Z" for _ in range(size)
                ],
            }
        ).astype(pd.ArrowDtype(pa.string()))
        latest: dict[tuple[str, str], tuple[str, int]] = {}
        row: Any  # pandas' stubs type a row's fields as any scalar
        for n, row in enumerate(rows.itertuples()):
            key = (row.authorization_id, row.hcpcs_code)
            if row.recorded_at <= "2026-06-30T00:00:00Z" and (
                key not in latest or latest[key][0] <= row.recorded_at
            ):
                latest[key] = (row.recorded_at, n)
        expected = sorted(
            (key, n) for key, (_, n) in latest.items() if rows["status"][n] != "CANCELLED"
        )
        state = register_state(rows, datetime(2026, 6, 30))
        got = list(zip(state["authorization_id"], state["hcpcs_code"], strict=True))
        assert got == [key for key, _ in expected]
        assert state["units_approved"].tolist() == [float(n) for _, n in expected]


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ([auth(recorded_at="2026-03-10T10:00:00.900Z")], ("DENY", "NO_AUTHORIZATION")),
        ([auth(recorded_at="2026-03-10T09:59:59.999999999Z")], ("AUTHORIZED", None)),
        ([auth(recorded_at="2026-03-10T10:00:00.0000001Z")], ("DENY", "NO_AUTHORIZATION")),
        (
            [auth(), auth(status="CANCELLED", recorded_at="2026-03-10T10:00:00.500Z")],
            ("AUTHORIZED", None),
        ),
        (
            [
                auth(status="CANCELLED", recorded_at="2026-03-10T09:59:59.100Z"),
                auth(recorded_at="2026-03-10T09:59:59.900Z"),
            ],
            ("AUTHORIZED", None),
        ),
        (
            [
                auth(recorded_at="2026-03-10T09:59:59.100Z"),
                auth(status="CANCELLED", recorded_at="2026-03-10T09:59:59.900Z"),
            ],
            ("DENY", "NO_AUTHORIZATION"),
        ),
    ],
    ids=[
        "recorded half a second after the as-of",
        "recorded a nanosecond before it",
        "recorded a tenth of a microsecond after it",
        "cancelled half a second after it",
        "approved after a cancellation in the same second",
        "cancelled after an approval in the same second",
    ],
)
def test_a_fraction_of_a_second_orders_the_register(
    versions: list[dict[str, object]], expected: tuple[str, str | None]
) -> None:
    # contract: "authorization records recorded after it are invisible"; its latest
    # version at the as-of is the state. Two versions in one second are two versions.
    out = adjudicate_rows([line()], versions, as_of=datetime(2026, 3, 10, 10, 0, 0))
    decided = out.iloc[0]
    assert decided["decision"] == expected[0]
    if expected[0] == "DENY":
        assert decided["reason"] == expected[1]


def test_a_lines_pairs_come_in_preference_order_whatever_the_states_order() -> None:
    # The line reports A5; then exact codes before family ones, each by earliest
    # valid_from (a missing one last), then authorization_id, then the row's code.
    def text(*values: str | None) -> pd.Series:
        return pd.Series(list(values), dtype=pd.ArrowDtype(pa.string()))

    need = pd.DataFrame(
        {
            "member_id": text("M1", "M2"),
            "hcpcs_code": text("70553", "70553"),
            "code_family": pd.Series(["MR_BRAIN", "MR_BRAIN"], dtype="str"),
            "date_of_service": pd.to_datetime(["2026-03-10", "2026-03-10"]).astype("M8[s]"),
            "rendering_npi": text(NPI_A, NPI_A),
            "facility_npi": text(None, None),
            "billing_npi": text(None, None),
            "prior_authorization_number": text("A5", None),
        }
    ).set_axis([3, 7])  # the lines' places among all the partition's lines
    rows = [  # (authorization_id, hcpcs_code, valid_from), in the order expected for M1
        ("A5", "70551", "2026-03-02"),
        ("A3", "70553", "2026-01-01"),
        ("A1", "70553", "2026-02-01"),
        ("A2", "70553", "2026-02-01"),
        ("A0", "70553", None),
        ("A1", "70551", "2026-01-01"),
        ("A1", "70552", "2026-01-01"),
        ("A4", "70551", "2026-01-01"),
    ]
    state = pd.DataFrame(
        {
            "authorization_id": text(*(r[0] for r in rows), "B1"),
            "member_id": text(*(["M1"] * len(rows)), "M2"),
            "hcpcs_code": text(*(r[1] for r in rows), "70553"),
            "status": text(*(["APPROVED"] * (len(rows) + 1))),
            "valid_from": pd.to_datetime(
                [r[2] for r in rows] + ["2026-01-01"]  # type: ignore[arg-type]  # stubs: no None
            ).astype("M8[s]"),
            "valid_to": pd.to_datetime(["2026-12-31"] * (len(rows) + 1)).astype("M8[s]"),
            "units_approved": np.ones(len(rows) + 1),
            "provider_npi": text(*([None] * (len(rows) + 1))),
        }
    )
    chooser = np.random.default_rng(11)
    for _ in range(10):
        shuffled = state.iloc[chooser.permutation(len(state))].reset_index(drop=True)
        pairs = candidate_pairs(need, shuffled, load_rules())
        assert pairs["line"].tolist() == [3] * len(rows) + [7]
        chosen = list(zip(pairs["authorization_id"], pairs["hcpcs_code_auth"], strict=True))
        assert chosen == [(r[0], r[1]) for r in rows] + [("B1", "70553")]
        assert shuffled.loc[pairs["state_row"], "authorization_id"].tolist() == [
            r[0] for r in rows
        ] + ["B1"]


# --- units ---------------------------------------------------------------------------


def test_units_go_in_date_order_then_run_out() -> None:
    claims = [
        line(claim_id="C2", claim_line_start_date="2026-03-12"),
        line(claim_id="C1", claim_line_start_date="2026-03-11"),
    ]
    frame = adjudicate_rows(claims, [auth()]).set_index("claim_id")
    assert outcome(frame.loc[["C1"]]) == ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1")
    assert outcome(frame.loc[["C2"]]) == ("DENY", "UNITS_EXCEEDED", "A1")
    assert (frame.loc["C2", "carc"], frame.loc["C2", "rarc"]) == ("198", "N640")


def test_same_day_units_go_by_claim_then_line() -> None:
    claims = [
        line(claim_id="C1", claim_line_number="2"),
        line(claim_id="C1", claim_line_number="1"),
        line(claim_id="C0", claim_line_number="3"),
    ]
    frame = adjudicate_rows(claims, [auth(units_approved="2")])
    decided = dict(
        zip(
            frame["claim_id"] + "/" + frame["claim_line_number"],
            frame["reason"].astype(str),
            strict=True,
        )
    )
    assert decided == {
        "C0/3": "AUTHORIZATION_MATCHED",
        "C1/1": "AUTHORIZATION_MATCHED",
        "C1/2": "UNITS_EXCEEDED",
    }


def test_professional_component_read_takes_no_units() -> None:
    claims = [
        line(claim_id="C1", hcpcs_modifier_1="TC"),
        line(claim_id="C2", hcpcs_modifier_1="26", rendering_npi=NPI_B),
    ]
    frame = adjudicate_rows(claims, [auth()])
    assert list(frame["decision"].astype(str)) == ["AUTHORIZED", "AUTHORIZED"]


def test_an_original_replaced_the_same_night_takes_no_units() -> None:
    claims = [
        line(claim_id="C1"),
        line(claim_id="C3", claim_frequency_code="7", original_claim_id="C1"),
    ]
    frame = adjudicate_rows(claims, [auth()])  # one unit: for the replacement
    assert list(frame["decision"].astype(str)) == ["AUTHORIZED", "AUTHORIZED"]


def test_a_replacement_of_another_members_claim_releases_nothing() -> None:
    claims = [
        line(claim_id="C1"),
        line(claim_id="C2"),
        line(claim_id="C3", member_id="M2", claim_frequency_code="7", original_claim_id="C1"),
    ]
    frame = adjudicate_rows(claims, [auth()])
    assert list(frame["reason"].astype(str)[:2]) == ["AUTHORIZATION_MATCHED", "UNITS_EXCEEDED"]


def test_a_replacement_naming_itself_takes_its_units() -> None:
    # A resubmission under its own claim id: it replaces its earlier decision, not its
    # own lines, which take units as any line does.
    replacement = {"claim_id": "R", "claim_frequency_code": "7", "original_claim_id": "R"}
    claims = [
        line(**replacement),
        line(**replacement, claim_line_number="2"),
        line(claim_id="N", claim_line_start_date="2026-03-11"),
    ]
    frame = adjudicate_rows(claims, [auth()])
    assert list(frame["reason"].astype(str)) == [
        "AUTHORIZATION_MATCHED",
        "UNITS_EXCEEDED",
        "UNITS_EXCEEDED",
    ]


def test_an_original_voided_the_same_night_takes_no_units() -> None:
    claims = [
        line(claim_id="C1"),
        line(claim_id="C2"),
        line(claim_id="C4", claim_frequency_code="8", original_claim_id="C1"),
    ]
    frame = adjudicate_rows(claims, [auth()])  # C1 is released: its unit is C2's
    assert list(frame["decision"].astype(str)) == ["AUTHORIZED", "AUTHORIZED", "NOT_APPLICABLE"]


def test_professional_component_read_still_needs_an_authorization() -> None:
    frame = adjudicate_rows([line(hcpcs_modifier_2="26")])
    assert outcome(frame) == ("DENY", "NO_AUTHORIZATION", None)


def test_units_quantity_counts() -> None:
    frame = adjudicate_rows([line(service_unit_quantity="2")], [auth()])
    assert outcome(frame) == ("DENY", "UNITS_EXCEEDED", "A1")


def test_a_line_that_asks_for_more_than_is_left_does_not_stop_a_later_line_that_fits() -> None:
    claims = [
        line(claim_id="C1", service_unit_quantity="2", claim_line_start_date="2026-03-10"),
        line(claim_id="C2", claim_line_start_date="2026-03-11"),
        line(claim_id="C3", claim_line_start_date="2026-03-12"),
    ]
    frame = adjudicate_rows(claims, [auth()]).set_index("claim_id")  # one unit
    assert outcome(frame.loc[["C1"]]) == ("DENY", "UNITS_EXCEEDED", "A1")
    assert outcome(frame.loc[["C2"]]) == ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1")
    assert outcome(frame.loc[["C3"]]) == ("DENY", "UNITS_EXCEEDED", "A1")


def test_a_line_too_large_for_one_row_is_authorized_by_the_next() -> None:
    claims = [line(claim_id="C1", service_unit_quantity="2"), line(claim_id="C2")]
    auths = [auth(authorization_id="A1"), auth(authorization_id="A2", units_approved="2")]
    frame = adjudicate_rows(claims, auths)
    assert list(frame["matched_authorization_id"]) == ["A2", "A1"]
    assert list(frame["decision"].astype(str)) == ["AUTHORIZED", "AUTHORIZED"]


def test_units_are_spent_as_a_line_at_a_time_would_spend_them() -> None:
    """The vectorized spending against a plain loop, over rows with few units and lines
    asking for 0 to 3 (fractions too)."""
    draw = np.random.default_rng(20261203)
    for _ in range(200):
        lines = int(draw.integers(1, 40))
        rows = np.sort(draw.integers(0, 5, size=lines))
        free = draw.random(lines) < 0.15  # professional-component reads
        takes = np.where(free, 0.0, draw.choice([0.0, 0.5, 1.0, 1.0, 2.0, 3.0], size=lines))
        left = draw.choice([0.0, 1.0, 1.5, 2.0, 4.0, -1.0], size=5)
        expected_left = left.copy()
        expected = np.zeros(lines, dtype=bool)
        for i in range(lines):
            has = expected_left[rows[i]]
            if free[i] or (has > 1e-9 and takes[i] <= has + 1e-9):
                expected[i] = True
                expected_left[rows[i]] -= takes[i]
        remaining = left.copy()
        assert _spend(rows, takes, free, remaining).tolist() == expected.tolist()
        assert remaining.tolist() == pytest.approx(expected_left.tolist())


def test_a_line_falls_to_its_next_authorization_when_the_first_is_spent() -> None:
    claims = [line(claim_id="C1"), line(claim_id="C2")]
    auths = [auth(authorization_id="A1"), auth(authorization_id="A2")]
    frame = adjudicate_rows(claims, auths)
    assert list(frame["matched_authorization_id"]) == ["A1", "A2"]
    assert list(frame["decision"].astype(str)) == ["AUTHORIZED", "AUTHORIZED"]


def test_lines_choose_their_rows_in_service_order() -> None:
    # POLICY §3: lines take units "in the order date of service, claim_id,
    # claim_line_number"; each takes the first covering approved row "with units left".
    # A1 (70553) and A2 (70551), one unit each, one family. C1 falls to A2 when A1 is
    # spent, before C2 (70551, a day later) asks for A2.
    claims = [
        line(claim_id="C0", claim_line_start_date="2026-03-09"),
        line(claim_id="C1", claim_line_start_date="2026-03-10"),
        line(claim_id="C2", claim_line_start_date="2026-03-11", hcpcs_code="70551"),
    ]
    auths = [auth(authorization_id="A1"), auth(authorization_id="A2", hcpcs_code="70551")]
    frame = adjudicate_rows(claims, auths).set_index("claim_id")
    assert outcome(frame.loc[["C0"]]) == ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1")
    assert outcome(frame.loc[["C1"]]) == ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A2")
    assert bool(frame.loc["C1", "code_substituted"])
    assert outcome(frame.loc[["C2"]])[:2] == ("DENY", "UNITS_EXCEEDED")


def test_a_line_asking_for_no_units_needs_units_left() -> None:
    # POLICY §3: 1. a covering row "with units left"; 3. one "with no units left":
    # UNITS_EXCEEDED. Only a professional-component read is excused from units.
    claims = [
        line(claim_id="C1", claim_line_start_date="2026-03-10"),
        line(claim_id="C2", claim_line_start_date="2026-03-12", service_unit_quantity="0"),
        line(claim_id="C3", claim_line_start_date="2026-03-13", hcpcs_modifier_1="26"),
    ]
    frame = adjudicate_rows(claims, [auth()]).set_index("claim_id")  # one unit
    assert outcome(frame.loc[["C1"]]) == ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1")
    assert outcome(frame.loc[["C2"]]) == ("DENY", "UNITS_EXCEEDED", "A1")
    assert outcome(frame.loc[["C3"]]) == ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1")
    none_approved = adjudicate_rows([line(service_unit_quantity="0")], [auth(units_approved="0")])
    assert outcome(none_approved) == ("DENY", "UNITS_EXCEEDED", "A1")
    first = adjudicate_rows([line(service_unit_quantity="0")], [auth()])
    assert outcome(first) == ("AUTHORIZED", "AUTHORIZATION_MATCHED", "A1")


def test_allocation_is_a_line_at_a_time_in_service_order() -> None:
    """Random members' lines and rows against a plain loop over the lines in service
    order, each taking its first row (by preference) that fits."""
    draw = np.random.default_rng(20261204)
    codes = ["70551", "70552", "70553"]  # one family: any row covers any line
    for _ in range(40):
        auths = [
            auth(
                authorization_id=f"A{i}",
                hcpcs_code=str(draw.choice(codes)),
                units_approved=str(int(draw.integers(0, 3))),
                valid_from=f"2026-03-{int(draw.integers(1, 9)):02d}",
            )
            for i in range(int(draw.integers(1, 4)))
        ]
        claims = [
            line(
                claim_id=f"C{i:02d}",
                hcpcs_code=str(draw.choice(codes)),
                claim_line_start_date=f"2026-03-{int(draw.integers(10, 14)):02d}",
                service_unit_quantity=str(int(draw.choice([0, 1, 1, 2]))),
                hcpcs_modifier_1="26" if draw.random() < 0.15 else None,
            )
            for i in range(int(draw.integers(1, 9)))
        ]
        frame = adjudicate_rows(claims, auths).set_index("claim_id")
        left = {a["authorization_id"]: float(a["units_approved"]) for a in auths}
        for c in sorted(claims, key=lambda c: (c["claim_line_start_date"], c["claim_id"])):
            # preference: an exact code, then the earliest valid_from, then the id
            ranked = sorted(
                auths,
                key=lambda a: (
                    a["hcpcs_code"] != c["hcpcs_code"],
                    a["valid_from"],
                    a["authorization_id"],
                ),
            )
            asked = float(c["service_unit_quantity"])
            free = c.get("hcpcs_modifier_1") == "26"
            chosen = next(
                (
                    a["authorization_id"]
                    for a in ranked
                    if free
                    or (left[a["authorization_id"]] > 0 and asked <= left[a["authorization_id"]])
                ),
                None,
            )
            decided = frame.loc[c["claim_id"]]
            if chosen is None:
                assert (decided["decision"], decided["reason"]) == ("DENY", "UNITS_EXCEEDED")
            else:
                assert (decided["decision"], decided["matched_authorization_id"]) == (
                    "AUTHORIZED",
                    chosen,
                )
                left[chosen] -= 0 if free else asked


def test_units_taken_before_count() -> None:
    taken = pd.DataFrame({"authorization_id": ["A1"], "hcpcs_code": ["70553"], "units": [1.0]})
    frame = adjudicate_rows([line()], [auth()], taken_before=taken)
    assert outcome(frame) == ("DENY", "UNITS_EXCEEDED", "A1")


def test_a_family_match_spends_the_register_rows_units() -> None:
    # The row is (A1, 70553) with one unit; 70551 is of the same family.
    claims = [line(claim_id="C1"), line(claim_id="C2", hcpcs_code="70551")]
    frame = adjudicate_rows(claims, [auth()])
    assert list(frame["reason"].astype(str)) == ["AUTHORIZATION_MATCHED", "UNITS_EXCEEDED"]


def test_units_taken_before_by_a_family_match_count() -> None:
    taken = pd.DataFrame({"authorization_id": ["A1"], "hcpcs_code": ["70553"], "units": [1.0]})
    frame = adjudicate_rows([line(hcpcs_code="70551")], [auth()], taken_before=taken)
    assert outcome(frame) == ("DENY", "UNITS_EXCEEDED", "A1")


# --- never deny on bad data; who pays ------------------------------------------------


def test_invalid_register_row_turns_a_denial_into_a_pend() -> None:
    auths = [auth(authorization_id="A7", status="APPROVD")]
    assert outcome(adjudicate_rows([line()], auths)) == (
        "PEND",
        "AUTHORIZATION_RECORD_INVALID",
        None,
    )


def test_invalid_register_row_does_not_touch_an_authorized_line() -> None:
    auths = [auth(), auth(authorization_id="A7", valid_to="2026-01-01", valid_from="2026-02-01")]
    assert outcome(adjudicate_rows([line()], auths)) == (
        "AUTHORIZED",
        "AUTHORIZATION_MATCHED",
        "A1",
    )


def test_a_cancellation_that_failed_validation_leaves_the_approval_before_it_in_doubt() -> None:
    cancelled = auth(status="CANCELLED", units_approved=None, recorded_at="2026-02-25")
    assert outcome(adjudicate_rows([line()], [auth(), cancelled])) == (
        "PEND",
        "AUTHORIZATION_RECORD_INVALID",
        None,
    )


def test_two_failed_versions_at_one_time_leave_the_approval_before_them_in_doubt() -> None:
    both = [auth(status=s, recorded_at="2026-02-25T00:00:00Z") for s in ("CANCELLED", "APPROVED")]
    assert outcome(adjudicate_rows([line()], [auth(), *both])) == (
        "PEND",
        "AUTHORIZATION_RECORD_INVALID",
        None,
    )


def test_a_failed_version_of_unreadable_time_leaves_its_authorization_in_doubt() -> None:
    unread = auth(status="CANCELLED", recorded_at="25/02/2026")
    assert outcome(adjudicate_rows([line()], [auth(), unread]))[:2] == (
        "PEND",
        "AUTHORIZATION_RECORD_INVALID",
    )


@pytest.mark.parametrize(
    "recorded_at",
    ["2026-02-10", "2026-07-01T00:00:00Z"],
    ids=["before the approval", "after the as-of"],
)
def test_a_failed_version_the_approval_supersedes_or_not_yet_recorded_leaves_it(
    recorded_at: str,
) -> None:
    failed = auth(status="CANCELLED", units_approved=None, recorded_at=recorded_at)
    assert outcome(adjudicate_rows([line()], [auth(), failed])) == (
        "AUTHORIZED",
        "AUTHORIZATION_MATCHED",
        "A1",
    )


def test_the_keys_in_doubt_are_those_a_plain_loop_finds() -> None:
    draw = np.random.default_rng(20261204)
    as_of = datetime(2026, 6, 30)
    ids: list[str | None] = ["A1", "A2", None]
    codes: list[str | None] = ["70553", "70551", "70553", "70551", "7O553", None]
    days: list[int | None] = [1, 2, 3, 4, 5, 6, 7, 200, None]  # 200: after the as-of
    checked_any_wide = False
    for _ in range(200):
        size = int(draw.integers(1, 30))
        drawn = [
            (
                ids[int(draw.integers(len(ids)))],
                codes[int(draw.integers(len(codes)))],
                days[int(draw.integers(len(days)))],  # None: a time that cannot be read
                bool(draw.random() < 0.7),
            )
            for _ in range(size)
        ]
        # Passed: a row without an id or a code never does.
        rows = [(a, c, d, p and a is not None and c in ("70553", "70551")) for a, c, d, p in drawn]
        when = [
            None if d is None else datetime(2026, 1, 1) + timedelta(days=d) for *_, d, _ in rows
        ]
        valid = {(aid, code) for aid, code, _, passed in rows if passed}
        latest: dict[tuple[str | None, str | None], datetime] = {}
        for (aid, code, _, passed), at in zip(rows, when, strict=True):
            if passed and at is not None and at <= as_of:
                latest[(aid, code)] = max(at, latest.get((aid, code), at))
        doubted = set()
        for (aid, code, _, passed), at in zip(rows, when, strict=True):
            if passed or aid is None or (at is not None and at > as_of):
                continue
            coded = code in ("70553", "70551")
            checked_any_wide |= not coded
            named = [(aid, code)] if coded else [k for k in valid if k[0] == aid]
            for key in named:
                since = latest.get(key)  # None: no valid version at the as-of
                if at is None or since is None or at >= since:
                    doubted.add(key)
        checked = pd.DataFrame(
            {
                "authorization_id": pd.Series([r[0] for r in rows], dtype="str"),
                "hcpcs_code": pd.Series([r[1] for r in rows], dtype="str"),
                "recorded_at": pd.Series(
                    ["25/01/2026" if at is None else at.date().isoformat() for at in when],
                    dtype="str",
                ),
            }
        )
        expected = [r[3] and (r[0], r[1]) in doubted for r in rows]
        assert in_doubt(checked, np.array([r[3] for r in rows]), as_of).tolist() == expected
    assert checked_any_wide


@pytest.mark.parametrize("code", [None, "7O553"], ids=["no code", "not a code"])
def test_a_failed_version_without_its_code_leaves_every_code_of_its_authorization_in_doubt(
    code: str | None,
) -> None:
    cancelled = auth(status="CANCELLED", hcpcs_code=code, recorded_at="2026-02-25")
    assert outcome(adjudicate_rows([line()], [auth(), cancelled]))[:2] == (
        "PEND",
        "AUTHORIZATION_RECORD_INVALID",
    )


@pytest.mark.parametrize("code", ["70553", None], ids=["its code", "no code"])
def test_a_failed_version_before_an_approval_recorded_after_the_as_of_still_pends(
    code: str | None,
) -> None:
    # The failed row comes after every version the run can see (none): its member is
    # one with an invalid record, though the row itself names no member.
    later = auth(recorded_at="2026-07-15")
    failed = auth(member_id=None, hcpcs_code=code, recorded_at="2026-02-25")
    assert outcome(adjudicate_rows([line()], [later, failed])) == (
        "PEND",
        "AUTHORIZATION_RECORD_INVALID",
        None,
    )


def test_a_failed_version_without_its_authorization_id_names_no_authorization() -> None:
    # Which authorization it meant cannot be told: the approval decides; a denial for
    # the member would be a PEND (its record is invalid).
    cancelled = auth(status="CANCELLED", authorization_id=None, recorded_at="2026-02-25")
    assert outcome(adjudicate_rows([line()], [auth(), cancelled])) == (
        "AUTHORIZED",
        "AUTHORIZATION_MATCHED",
        "A1",
    )


def test_a_failed_version_leaves_the_members_other_authorizations_deciding() -> None:
    cancelled = auth(status="CANCELLED", units_approved=None, recorded_at="2026-02-25")
    other = auth(authorization_id="A2")
    assert outcome(adjudicate_rows([line()], [auth(), cancelled, other])) == (
        "AUTHORIZED",
        "AUTHORIZATION_MATCHED",
        "A2",
    )


def test_invalid_register_row_of_another_member_changes_nothing() -> None:
    auths = [auth(member_id="M9", status="APPROVD")]
    assert outcome(adjudicate_rows([line()], auths)) == ("DENY", "NO_AUTHORIZATION", None)


DENIAL_CASES = [
    ("professional: rendering, not ordering", line(ordering_npi=NPI_D), NPI_A),
    (
        "institutional without rendering: facility",
        line(
            claim_type="institutional",
            place_of_service_code=None,
            bill_type_code="131",
            rendering_npi=None,
            facility_npi=NPI_B,
            billing_npi=NPI_C,
        ),
        NPI_B,
    ),
    (
        "institutional with only billing",
        line(
            claim_type="institutional",
            place_of_service_code=None,
            bill_type_code="131",
            rendering_npi=None,
            billing_npi=NPI_C,
        ),
        NPI_C,
    ),
    (
        "institutional with rendering",
        line(
            claim_type="institutional",
            place_of_service_code=None,
            bill_type_code="131",
            rendering_npi=NPI_D,
            facility_npi=NPI_B,
        ),
        NPI_D,
    ),
]


@pytest.mark.parametrize(
    ("claim", "liable"), [c[1:] for c in DENIAL_CASES], ids=[c[0] for c in DENIAL_CASES]
)
def test_denial_is_the_rendering_providers_liability(claim: dict[str, object], liable: str) -> None:
    got = adjudicate_rows([claim]).iloc[0]
    assert (got["decision"], got["group_code"], got["carc"], got["liable_npi"]) == (
        "DENY",
        "CO",
        "197",
        liable,
    )
    assert str(got["denied_amount"]) == "1200.00"
    assert pd.isna(got["rarc"])


def test_nothing_denied_carries_no_remittance() -> None:
    got = adjudicate_rows([line()], [auth()]).iloc[0]
    assert all(pd.isna(got[c]) for c in ("carc", "rarc", "group_code", "liable_npi"))
    assert str(got["denied_amount"]) == "0.00"


REMITTANCE = [
    ("AUTHORIZATION_DENIED", [auth(status="DENIED")], ("39", None)),
    ("CODE_NOT_AUTHORIZED", [auth(hcpcs_code="72148")], ("15", "N54")),
    ("PROVIDER_NOT_AUTHORIZED", [auth(provider_npi=NPI_D)], ("15", "N54")),
    ("OUTSIDE_AUTHORIZED_DATES", [auth(valid_to="2026-03-09")], ("197", None)),
]


@pytest.mark.parametrize(("reason", "auths", "codes"), REMITTANCE, ids=[r[0] for r in REMITTANCE])
def test_remittance_codes(
    reason: str, auths: list[dict[str, object]], codes: tuple[str, str | None]
) -> None:
    got = adjudicate_rows([line()], auths).iloc[0]
    assert str(got["reason"]) == reason
    rarc = None if pd.isna(got["rarc"]) else got["rarc"]
    assert (got["carc"], rarc) == codes
