"""The contract's fixed lists of values, importable without pandera: the command line
offers them as choices before it loads the models (``pipeline.cli``)."""

CLAIM_TYPES = ("professional", "institutional")
PLAN_TYPES = ("HMO", "PPO", "POS", "EPO", "MEDICARE", "MEDICAID")
FREQUENCY_CODES = ("1", "7", "8")
SETTING_REASONS = (
    "EMERGENCY_ROOM",
    "HOSPITAL_URGENT_CARE",
    "INPATIENT",
    "AMBULATORY_SURGERY",
    "OBSERVATION",
)
"""The reasons an exemption of the rules file may give (OBSERVATION: the rules' switch)."""
DENIAL_REASONS = (
    "NO_AUTHORIZATION",
    "AUTHORIZATION_DENIED",
    "OUTSIDE_AUTHORIZED_DATES",
    "CODE_NOT_AUTHORIZED",
    "PROVIDER_NOT_AUTHORIZED",
    "UNITS_EXCEEDED",
)
"""The reasons of a DENY, each of which the rules file gives its remittance codes."""

HCPCS_SHAPE = r"[0-9]{4}[0-9A-Z]|[A-Z][0-9]{4}"
"""CPT (five digits, or four and a letter for categories II and III) or HCPCS Level II."""
