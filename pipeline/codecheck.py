"""The provider's question before the service: does this code need prior authorization?

Answered by the nightly kernel itself on a one-line claim with an empty
register, so that the code check tool and the nightly job cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from pipeline.decide import Partition, decide
from pipeline.io import SOURCE_FILE, SOURCE_ROW
from pipeline.rules import Rules
from pipeline.scope import code_in_force, in_program, line_facts
from schemas.claims import CONTRACT_COLUMNS, DIAGNOSIS_COLUMNS
from schemas.values import HCPCS_SHAPE

SETTING_WORDS = {
    "INPATIENT": "a hospital inpatient stay",
    "EMERGENCY_ROOM": "an emergency room visit",
    "HOSPITAL_URGENT_CARE": "hospital-based urgent care",
    "AMBULATORY_SURGERY": "an ambulatory surgery procedure",
    "OBSERVATION": "an observation stay",
}


@dataclass(frozen=True)
class Service:
    """The service a provider asks about."""

    hcpcs_code: str
    date_of_service: date
    plan_type: str = "HMO"
    place_of_service: str | None = None
    bill_type: str | None = None
    revenue_code: str | None = None
    diagnoses: tuple[str, ...] = ()

    @property
    def claim_type(self) -> str:
        institutional = self.bill_type is not None or self.revenue_code is not None
        return "institutional" if institutional else "professional"


@dataclass(frozen=True)
class Answer:
    """What ``check-code`` says; ``--json`` prints it as an object."""

    hcpcs_code: str
    date_of_service: str
    plan_type: str
    in_program: bool
    requires_authorization: bool
    records_required: bool
    exempt_reason: str | None
    modality: str | None
    body_region: str | None
    code_family: str | None
    explanation: str

    def as_dict(self) -> dict[str, object]:
        """The answer as a JSON-ready dict."""
        return asdict(self)


def one_line_claim(service: Service) -> pd.DataFrame:
    """The service as a valid one-line claim in the contract's text columns."""
    values: dict[str, str | None] = dict.fromkeys(CONTRACT_COLUMNS)
    values |= {
        "claim_id": "CHECK",
        "claim_line_number": "1",
        "claim_type": service.claim_type,
        "member_id": "CHECK",
        "plan_type": service.plan_type.upper(),
        "claim_line_start_date": service.date_of_service.isoformat(),
        "place_of_service_code": service.place_of_service,
        "bill_type_code": service.bill_type,
        "revenue_center_code": service.revenue_code,
        "hcpcs_code": service.hcpcs_code.strip().upper(),
        "charge_amount": "0",
    }
    for column, code in zip(DIAGNOSIS_COLUMNS, service.diagnoses, strict=False):
        values[column] = code.strip().upper()
    frame = pd.DataFrame({k: pd.Series([v], dtype="str") for k, v in values.items()})
    lineage: dict[str, str | int] = {SOURCE_FILE: "check-code", SOURCE_ROW: 1}
    return frame.assign(**lineage)


def check_code(service: Service, rules: Rules) -> Answer:
    """Whether the service needs prior authorization, and whether records are required."""
    line = one_line_claim(service)
    empty_register = pd.DataFrame(
        {
            "authorization_id": pd.Series(dtype="str"),
            "member_id": pd.Series(dtype="str"),
            "hcpcs_code": pd.Series(dtype="str"),
        }
    )
    decided, _ = decide(Partition(lines=line, register=empty_register), rules, run_id="check-code")
    scope = in_program(line_facts(line, rules), rules).iloc[0]
    row = decided.iloc[0]
    decision = str(row["decision"])
    exempt_reason = str(row["reason"]) if decision == "EXEMPT" else None
    answer = Answer(
        hcpcs_code=line["hcpcs_code"].iloc[0],
        date_of_service=service.date_of_service.isoformat(),
        plan_type=service.plan_type.upper(),
        in_program=bool(scope["in_program"]),
        requires_authorization=decision not in ("NOT_APPLICABLE", "EXEMPT"),
        records_required=bool(row["records_required"]),
        exempt_reason=exempt_reason,
        modality=None if pd.isna(scope["modality"]) else str(scope["modality"]),
        body_region=None if pd.isna(scope["body_region"]) else str(scope["body_region"]),
        code_family=None if pd.isna(scope["code_family"]) else str(scope["code_family"]),
        explanation="",
    )
    return Answer(**{**asdict(answer), "explanation": explain(answer, service, rules)})


def explain(answer: Answer, service: Service, rules: Rules) -> str:
    """One sentence a provider can act on."""
    code, when = answer.hcpcs_code, answer.date_of_service
    if not answer.in_program:
        return _outside(code, when, service, rules)
    what = f"{code} ({answer.modality}, {str(answer.body_region).replace('_', ' ')})"
    if answer.exempt_reason == "PLAN_EXCEPTION":
        return f"{what} needs no prior authorization: {answer.plan_type} plans are excepted."
    if answer.exempt_reason is not None:
        setting = SETTING_WORDS.get(answer.exempt_reason, answer.exempt_reason.lower())
        return f"{what} needs no prior authorization when ordered and provided during {setting}."
    records = (
        " Attach medical records to the request."
        if answer.records_required
        else " Medical records are not required with the request."
    )
    return f"{what} requires prior authorization on {when}.{records}"


def _outside(code: str, when: str, service: Service, rules: Rules) -> str:
    """Why a code outside the program needs no authorization, or is no code at all."""
    if not re.fullmatch(HCPCS_SHAPE, code):
        return (
            f"{code!r} is not a five-character CPT or HCPCS code (such as 70553): check "
            "the code as it will be billed; run rejects a claim line with this one."
        )
    table = rules.code_table
    # The table's row in force on the day, as run finds it: not in force says more
    # than what a diagnosis would have changed.
    row = int(code_in_force(line_facts(one_line_claim(service), rules), rules)[0])
    if row >= 0 and table["behavioral_health_only"].iloc[row]:
        return (
            f"{code} is in the program only for behavioral-health indications (an ICD-10-CM "
            "chapter F diagnosis), and none was given: no prior authorization is needed."
        )
    if table["hcpcs_code"].eq(code).any():
        return (
            f"{code} is not in force in the imaging program on {when}: "
            "no prior authorization is needed."
        )
    return f"{code} is not in the advanced imaging program: no prior authorization is needed."
