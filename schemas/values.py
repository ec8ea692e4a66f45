"""The contract's fixed lists of values, importable without pandera: the command line
offers them as choices before it loads the models (``pipeline.cli``)."""

CLAIM_TYPES = ("professional", "institutional")
PLAN_TYPES = ("HMO", "PPO", "POS", "EPO", "MEDICARE", "MEDICAID")
FREQUENCY_CODES = ("1", "7", "8")
