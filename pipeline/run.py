"""One run: read, validate, adjudicate, guard, publish, and the auditor's rerun.

The only module that wires files to frames; the steps it calls are pure.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline import __version__
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
from pipeline.ledger import (
    LEDGER_SCHEMA,
    LedgerState,
    commit_entry,
    discard_entry,
    ledger_rows,
    read_ledger,
    stage_entry,
    taken_before,
)
from pipeline.publish import publishing
from pipeline.report import write_report
from pipeline.rules import Rules
from pipeline.validate import (
    Validated,
    counts_by_file,
    sort_rejects,
    validate_authorizations,
    validate_claims,
)
from schemas import authorizations as register_contract
from schemas.checks import parse_dates
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

OUTPUT_FILES = ("adjudicated.parquet", "rejects.parquet", "summary.json")
UNITS_FILE = "units.parquet"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RunOptions:
    """Everything a run depends on besides the content of its files."""

    claims: tuple[str, ...]
    authorizations: str
    as_of: datetime
    rules_path: str | None = None
    ledger: Path | None = None
    max_reject_rate: float = 0.05
    max_denial_rate: float = 0.5
    force: bool = False


@dataclass(frozen=True)
class RunResult:
    """A run's outputs before they are published."""

    run_id: str
    options: RunOptions
    validation: ValidationResult
    adjudicated: pd.DataFrame
    units: pd.DataFrame
    rules: Rules
    inputs: list[dict[str, object]]
    ledger: LedgerState | None

    @property
    def summary(self) -> dict[str, object]:
        """Counts by decision and reason, denied dollars, rows per input file."""
        return run_summary(self)


def run_id_for(parts: Sequence[str]) -> str:
    """A run's id: a digest of its inputs' content, its as-of, its rules and its ledger."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _members_with_invalid_rows(register_text: pd.DataFrame, valid: pd.DataFrame) -> frozenset[str]:
    invalid = register_text.loc[register_text.index.difference(valid.index), "member_id"]
    return frozenset(invalid.dropna().astype(str).tolist())


def _released_claims(lines: pd.DataFrame) -> pd.Series:
    releasing = lines["claim_frequency_code"].isin(["7", "8"])
    return lines.loc[releasing, "original_claim_id"]


def adjudicate(
    options: RunOptions, rules: Rules, ledger_entries: Sequence[str] | None = None
) -> RunResult:
    """Read, validate and decide every line; nothing is written.

    With a ledger, the run counts its entries (``ledger_entries`` names them
    when an audit repeats a run as the ledger stood then).
    """
    lines, claim_files = read_claims(options.claims)
    register_text, register_files = read_register(options.authorizations)
    register = validate_authorizations(register_text)
    validated = validate_claims(lines, options.as_of)
    validation = ValidationResult(
        as_of=options.as_of,
        claims=validated,
        claim_files=claim_files,
        register=register,
        register_files=register_files,
    )
    inputs = [
        {"source": source, "path": f.path, "sha256": sha256_of(f.path), "rows": f.rows}
        for source, files in (("claims", claim_files), ("authorizations", register_files))
        for f in files
    ]
    valid_lines = validated.valid.reset_index(drop=True)
    ledger = (
        read_ledger(options.ledger, only=ledger_entries) if options.ledger is not None else None
    )
    taken = (
        taken_before(ledger, valid_lines["claim_id"], _released_claims(valid_lines))
        if ledger is not None
        else None
    )
    run_id = run_id_for(
        [
            *sorted(str(i["sha256"]) for i in inputs),
            options.as_of.isoformat(),
            rules.digest,
            *(f"{name}:{sha}" for name, sha in (ledger.entries if ledger else ())),
        ]
    )
    partition = Partition(
        lines=valid_lines,
        register=register_state(register.valid, options.as_of),
        members_with_invalid_records=_members_with_invalid_rows(register_text, register.valid),
        units_taken_before=taken,
    )
    decisions, took = decide(partition, rules, run_id)
    adjudicated = sort_lines(output_columns(partition.lines).join(decisions))
    units = ledger_rows(run_id, took, partition.lines)
    return RunResult(run_id, options, validation, adjudicated, units, rules, inputs, ledger)


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
        {
            column: str(row[column]),
            "lines": int(row["lines"]),
            "denied_amount": _money(row["denied_amount"]),
        }
        for row in grouped.to_dict("records")
    ]


def _denied_by_week(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Denied lines and dollars by the week (starting Monday) of their date of service."""
    denied = frame[frame["decision"].eq("DENY")]
    dos = parse_dates(denied["claim_line_start_date"]).fillna(
        parse_dates(denied["claim_start_date"])
    )
    week = (dos - pd.to_timedelta(dos.dt.dayofweek, unit="D")).dt.strftime("%Y-%m-%d")
    grouped = denied.groupby(week.rename("week_of")).agg(
        lines=("decision", "size"), denied_amount=("denied_amount", "sum")
    )
    return [
        {
            "week_of": str(row["week_of"]),
            "lines": int(row["lines"]),
            "denied_amount": _money(row["denied_amount"]),
        }
        for row in grouped.sort_index().reset_index().to_dict("records")
    ]


def needing_authorization(frame: pd.DataFrame) -> pd.Series:
    """Lines in the program and not exempt: those an authorization decides."""
    return frame["decision"].isin(["AUTHORIZED", "PEND", "DENY"])


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
            "needing_authorization": int(needing_authorization(frame).sum()),
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
        "denied_by_week": _denied_by_week(frame),
    }


# --- guards ------------------------------------------------------------------------


def tripped_guards(result: RunResult) -> list[str]:
    """Why this run looks wrong, one sentence each; empty when it looks right."""
    options = result.options
    reasons = []
    register = result.validation.register
    if register is not None and register.valid.empty:
        reasons.append("the authorization register has no valid rows")
    read = sum(f.rows for f in result.validation.claim_files)
    rejected = result.validation.claims.rejected_rows
    if read and rejected / read > options.max_reject_rate:
        reasons.append(
            f"{rejected} of {read} claim rows were rejected ({rejected / read:.1%}), "
            f"above --max-reject-rate {options.max_reject_rate:.1%}"
        )
    frame = result.adjudicated
    needing = int(needing_authorization(frame).sum())
    denied = int(frame["decision"].eq("DENY").sum())
    if needing and denied / needing > options.max_denial_rate:
        reasons.append(
            f"{denied} of {needing} lines needing authorization were denied "
            f"({denied / needing:.1%}), above --max-denial-rate {options.max_denial_rate:.1%}"
        )
    return reasons


# --- writing and publishing -----------------------------------------------------------


def write_outputs(result: RunResult, directory: Path) -> list[dict[str, object]]:
    """Write the run's data files into ``directory``; returns each with its hash and rows."""
    written: list[tuple[str, int]] = [
        ("adjudicated.parquet", write_parquet(result.adjudicated, directory / "adjudicated.parquet")),
        ("rejects.parquet", write_parquet(result.validation.rejects, directory / "rejects.parquet")),
    ]
    if result.options.ledger is not None:
        written.append(
            (UNITS_FILE, write_parquet(result.units, directory / UNITS_FILE, schema=LEDGER_SCHEMA))
        )
    write_json(result.summary, directory / "summary.json")
    files: list[dict[str, object]] = [
        {"path": name, "sha256": sha256_of(directory / name), "rows": rows}
        for name, rows in written
    ]
    files.append({"path": "summary.json", "sha256": sha256_of(directory / "summary.json")})
    return sorted(files, key=lambda f: str(f["path"]))


def manifest_for(
    result: RunResult,
    outputs: list[dict[str, object]],
    guards: list[str],
    started_at: datetime,
    finished_at: datetime,
) -> dict[str, object]:
    """The run's proof: what went in, what came out, and how to repeat it."""
    options = result.options
    return {
        "run_id": result.run_id,
        "as_of": options.as_of.isoformat(),
        "program": {"name": "imaging-pa-adjudication", "version": __version__},
        "rules": {"source": options.rules_path, "digest": result.rules.digest},
        "inputs": result.inputs,
        "outputs": outputs,
        "options": {
            "max_reject_rate": options.max_reject_rate,
            "max_denial_rate": options.max_denial_rate,
            "ledger": None if options.ledger is None else str(options.ledger),
            "ledger_entries": [
                {"name": name, "sha256": sha}
                for name, sha in (result.ledger.entries if result.ledger else ())
            ],
        },
        "forced": bool(guards) and options.force,
        "guards_tripped": guards,
        "working_directory": os.getcwd(),
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
    }


def publish_run(
    result: RunResult,
    out: Path,
    guards: list[str],
    started_at: datetime,
    clock: Callable[[], datetime],
) -> None:
    """Publish the run atomically in ``out``, and its units to the ledger."""
    ledger = result.options.ledger
    note = None
    try:
        with publishing(out) as staging:
            outputs = write_outputs(result, staging)
            report = write_report(staging)
            outputs = sorted(
                [*outputs, {"path": report.name, "sha256": sha256_of(report)}],
                key=lambda f: str(f["path"]),
            )
            manifest = manifest_for(result, outputs, guards, started_at, clock())
            write_json(manifest, staging / MANIFEST)
            if ledger is not None:
                note = stage_entry(ledger, result.run_id, result.units, out)
    except BaseException:
        if ledger is not None and note is not None:
            discard_entry(ledger, note)
        raise
    if ledger is not None and note is not None:
        commit_entry(ledger, note)
