"""One run: read, validate, (later) adjudicate, publish.

The only module that wires files to frames; the steps it calls are pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline.io import InputFile, read_inputs, write_json, write_parquet
from pipeline.publish import publishing
from pipeline.validate import (
    Validated,
    counts_by_file,
    sort_rejects,
    validate_authorizations,
    validate_claims,
)
from schemas import authorizations as register_contract
from schemas import claims as claims_contract
from schemas.outputs import REJECT_COLUMNS


@dataclass(frozen=True)
class ValidationResult:
    """Both inputs of a run, validated."""

    as_of: datetime
    claims: Validated
    claim_files: list[InputFile]
    register: Validated | None
    register_files: list[InputFile]

    @property
    def rejects(self) -> pd.DataFrame:
        """Every reject of the run, claims first."""
        parts = [self.claims.rejects]
        if self.register is not None:
            parts.append(self.register.rejects)
        return sort_rejects(pd.concat(parts, ignore_index=True))[list(REJECT_COLUMNS)]


def read_claims(paths: Sequence[str]) -> tuple[pd.DataFrame, list[InputFile]]:
    """Claim lines as text, with lineage."""
    return read_inputs(
        paths,
        contract=claims_contract.CONTRACT_COLUMNS,
        required=claims_contract.REQUIRED_COLUMNS,
        one_of=[("claim_line_start_date", "claim_start_date")],
    )


def read_register(path: str) -> tuple[pd.DataFrame, list[InputFile]]:
    """Authorization register rows as text, with lineage."""
    return read_inputs(
        [path],
        contract=register_contract.CONTRACT_COLUMNS,
        required=register_contract.REQUIRED_COLUMNS,
    )


def validate_files(
    claims: Sequence[str], authorizations: str | None, as_of: datetime
) -> ValidationResult:
    """Read and validate the claims files and, if given, the register."""
    lines, claim_files = read_claims(claims)
    register: Validated | None = None
    register_files: list[InputFile] = []
    if authorizations is not None:
        rows, register_files = read_register(authorizations)
        register = validate_authorizations(rows)
    return ValidationResult(
        as_of=as_of,
        claims=validate_claims(lines, as_of),
        claim_files=claim_files,
        register=register,
        register_files=register_files,
    )


def validation_summary(result: ValidationResult) -> dict[str, object]:
    """What ``validate`` reports: rows read, valid and rejected per file, rejects per check."""
    claims = counts_by_file(result.claims, result.claim_files)
    register = (
        counts_by_file(result.register, result.register_files)
        if result.register is not None
        else []
    )
    return {
        "as_of": result.as_of.isoformat(),
        "inputs": [{"source": "claims", **c} for c in claims]
        + [{"source": "authorizations", **r} for r in register],
    }


def publish_validation(result: ValidationResult, out: Path) -> None:
    """Publish ``rejects.parquet`` and ``summary.json`` atomically in ``out``."""
    with publishing(out) as staging:
        write_parquet(result.rejects, staging / "rejects.parquet")
        write_json(validation_summary(result), staging / "summary.json")
