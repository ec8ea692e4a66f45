"""One run: read, validate, (later) adjudicate, publish.

The only module that wires files to frames; the steps it calls are pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline.authorization import register_state
from pipeline.decide import Partition, decide
from pipeline.io import (
    SOURCE_FILE,
    SOURCE_ROW,
    InputFile,
    read_inputs,
    sha256_of,
    write_json,
    write_parquet,
)
from pipeline.publish import publishing
from pipeline.rules import Rules
from pipeline.validate import (
    Validated,
    counts_by_file,
    sort_rejects,
    validate_authorizations,
    validate_claims,
)
from schemas import authorizations as register_contract
from schemas import claims as claims_contract
from schemas.outputs import DECISIONS, REJECT_COLUMNS


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


# --- the nightly run ------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """A run's outputs before they are published."""

    run_id: str
    validation: ValidationResult
    adjudicated: pd.DataFrame
    units: pd.DataFrame
    rules: Rules

    @property
    def summary(self) -> dict[str, object]:
        """Counts by decision and reason, denied dollars, rows per input file."""
        return run_summary(self)


def run_id_for(input_hashes: Sequence[str], as_of: datetime, rules_digest: str) -> str:
    """A run's id: a digest of its inputs' content, its as-of and its rules."""
    digest = hashlib.sha256()
    for part in [*sorted(input_hashes), as_of.isoformat(), rules_digest]:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _members_with_invalid_rows(register_text: pd.DataFrame, valid: pd.DataFrame) -> frozenset[str]:
    invalid = register_text.loc[register_text.index.difference(valid.index), "member_id"]
    return frozenset(invalid.dropna().astype(str).str.strip().tolist())


def adjudicate(
    claims: Sequence[str],
    authorizations: str,
    as_of: datetime,
    rules: Rules,
) -> RunResult:
    """Read, validate and decide every line; nothing is written."""
    lines, claim_files = read_claims(claims)
    register_text, register_files = read_register(authorizations)
    register = validate_authorizations(register_text)
    validated = validate_claims(lines, as_of)
    validation = ValidationResult(
        as_of=as_of,
        claims=validated,
        claim_files=claim_files,
        register=register,
        register_files=register_files,
    )
    hashes = [sha256_of(f.path) for f in [*claim_files, *register_files]]
    run_id = run_id_for(hashes, as_of, rules.digest)
    partition = Partition(
        lines=validated.valid.reset_index(drop=True),
        register=register_state(register.valid, as_of),
        members_with_invalid_records=_members_with_invalid_rows(register_text, register.valid),
    )
    decisions, units = decide(partition, rules, run_id)
    adjudicated = sort_lines(output_columns(partition.lines).join(decisions))
    return RunResult(run_id, validation, adjudicated, units, rules)


def output_columns(lines: pd.DataFrame) -> pd.DataFrame:
    """Contract columns in contract order, then passed-through ones, then lineage."""
    contract = list(claims_contract.CONTRACT_COLUMNS)
    lineage = [SOURCE_FILE, SOURCE_ROW]
    passed = [c for c in lines.columns if c not in contract and c not in lineage]
    frame = lines[[*contract, *passed, *lineage]]
    return frame.assign(**{SOURCE_FILE: frame[SOURCE_FILE].astype("str")})


def sort_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """By claim and line (line numbers as numbers), then source file and row."""
    keys = pd.DataFrame(
        {
            "claim_id": frame["claim_id"],
            "line": pd.to_numeric(frame["claim_line_number"]),
            "source_file": frame[SOURCE_FILE],
            "source_row": frame[SOURCE_ROW],
        }
    )
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def _money(amount: object) -> str:
    return f"{amount:.2f}" if amount is not None else "0.00"


def _denied_by(frame: pd.DataFrame, column: str) -> list[dict[str, object]]:
    denied = frame[frame["decision"].eq("DENY")]
    grouped = denied.groupby(column, observed=True).agg(
        lines=("decision", "size"), denied_amount=("denied_amount", "sum")
    )
    grouped = grouped.reset_index().sort_values(
        ["denied_amount", column], ascending=[False, True], kind="stable"
    )
    return [
        {column: str(row[column]), "lines": int(row["lines"]), "denied_amount": _money(row["denied_amount"])}
        for row in grouped.to_dict("records")
    ]


def run_summary(result: RunResult) -> dict[str, object]:
    """What an analyst reads first: counts by decision and reason, and the denied dollars."""
    frame = result.adjudicated
    by_reason = (
        frame.groupby(["decision", "reason"], observed=True, dropna=False)
        .size()
        .reset_index(name="lines")
    )
    decisions = frame["decision"].value_counts().reindex(list(DECISIONS), fill_value=0)
    inputs = [
        {**entry, "adjudicated": entry["valid"]} if entry["source"] == "claims" else entry
        for entry in validation_summary(result.validation)["inputs"]  # type: ignore[attr-defined]
    ]
    return {
        "run_id": result.run_id,
        "as_of": result.validation.as_of.isoformat(),
        "rules_digest": result.rules.digest,
        "inputs": inputs,
        "lines": {
            "read": sum(f.rows for f in result.validation.claim_files),
            "adjudicated": len(frame),
            "rejected": result.validation.claims.rejected_rows,
        },
        "decisions": {name: int(count) for name, count in decisions.items()},
        "reasons": [
            {
                "decision": str(row["decision"]),
                "reason": None if pd.isna(row["reason"]) else str(row["reason"]),
                "lines": int(row["lines"]),
            }
            for row in by_reason.to_dict("records")
        ],
        "denied_amount": _money(frame.loc[frame["decision"].eq("DENY"), "denied_amount"].sum()),
        "denied_by_rendering_provider": _denied_by(frame, "liable_npi"),
        "denied_by_modality": _denied_by(frame, "modality"),
    }


def publish_run(result: RunResult, out: Path) -> None:
    """Publish the run's outputs atomically in ``out``."""
    with publishing(out) as staging:
        write_parquet(result.adjudicated, staging / "adjudicated.parquet")
        write_parquet(result.validation.rejects, staging / "rejects.parquet")
        write_json(result.summary, staging / "summary.json")
