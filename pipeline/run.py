"""One run: read, validate, adjudicate, guard, publish, and the auditor's rerun.

The only module that wires files to frames; the steps it calls are pure.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from pipeline import __version__
from pipeline.decide import ADDED_COLUMNS
from pipeline.engine import Execution, execute
from pipeline.errors import Held
from pipeline.io import (
    InputFile,
    read_inputs,
    sha256_of,
    write_json,
    write_parquet,
)
from pipeline.ledger import (
    commit_entry,
    settle_entry,
    stage_entry,
    writing,
)
from pipeline.memory import use_jemalloc
from pipeline.progress import Observer
from pipeline.publish import publishing
from pipeline.rejects import sort_rejects
from pipeline.report import MANIFEST, write_report
from pipeline.rules import Rules
from pipeline.validate import (
    FileCounts,
    Validated,
    count_validated,
    validate_authorizations,
    validate_claims,
)
from pipeline.workers import ROWS_PER_PARTITION, WORKERS
from schemas import authorizations as register_contract
from schemas import claims as claims_contract
from schemas.outputs import REJECT_COLUMNS, REJECT_SCHEMA


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
        reserved=ADDED_COLUMNS,
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
    use_jemalloc()
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
    parts = [("claims", result.claims, result.claim_files)]
    if result.register is not None:
        parts.append(("authorizations", result.register, result.register_files))
    entries = []
    for source, validated, read in parts:
        files = {f.path: FileCounts(f.path, source, rows=f.rows) for f in read}
        count_validated(files, validated)
        entries += [counts.as_dict(adjudicated=False) for counts in files.values()]
    return {"as_of": result.as_of.isoformat(), "inputs": entries}


def publish_validation(result: ValidationResult, out: Path) -> None:
    """Publish ``rejects.parquet`` and ``summary.json`` atomically in ``out``."""
    with publishing(out) as staging:
        write_parquet(result.rejects, staging / "rejects.parquet", REJECT_SCHEMA)
        write_json(validation_summary(result), staging / "summary.json")


# --- the nightly run ------------------------------------------------------------

UNITS_FILE = "units.parquet"


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
    rows_per_partition: int = ROWS_PER_PARTITION
    workers: int = WORKERS


def run_into(
    options: RunOptions,
    rules: Rules,
    directory: Path,
    ledger_entries: Sequence[str] | None = None,
    observer: Observer | None = None,
) -> Execution:
    """Run the job, writing its data files and report into ``directory``."""
    execution = execute(
        options.claims,
        options.authorizations,
        options.as_of,
        rules,
        directory,
        ledger=options.ledger,
        ledger_entries=ledger_entries,
        rows_per_partition=options.rows_per_partition,
        observer=observer,
        workers=options.workers,
    )
    report = write_report(directory)
    execution.outputs = sorted(
        [*execution.outputs, {"path": report.name, "sha256": sha256_of(report), "rows": None}],
        key=lambda f: str(f["path"]),
    )
    return execution


# --- guards ------------------------------------------------------------------------


def tripped_guards(execution: Execution, options: RunOptions) -> list[str]:
    """Why this run looks wrong, one sentence each; empty when it looks right."""
    reasons = []
    if execution.register_valid_rows == 0:
        reasons.append("the authorization register has no valid rows")
    read, rejected = execution.claim_rows, execution.rejected_claim_rows
    if read and rejected / read > options.max_reject_rate:
        reasons.append(
            f"{rejected} of {read} claim rows were rejected ({rejected / read:.1%}), "
            f"above --max-reject-rate {options.max_reject_rate:.1%}"
        )
    decisions = execution.parts.decisions()
    needing = sum(decisions[d] for d in ("AUTHORIZED", "PEND", "DENY"))
    denied = decisions["DENY"]
    if needing and denied / needing > options.max_denial_rate:
        reasons.append(
            f"{denied} of {needing} lines needing authorization were denied "
            f"({denied / needing:.1%}), above --max-denial-rate {options.max_denial_rate:.1%}"
        )
    return reasons


# --- publishing ------------------------------------------------------------------------


def manifest_for(
    execution: Execution,
    options: RunOptions,
    rules: Rules,
    guards: list[str],
    *,
    started_at: datetime,
    finished_at: datetime,
) -> dict[str, object]:
    """The run's proof: what went in, what came out, and how to repeat it."""
    return {
        "run_id": execution.run_id,
        "as_of": options.as_of.isoformat(),
        "program": {"name": "imaging-pa-adjudication", "version": __version__},
        "environment": environment(),
        "rules": {"source": options.rules_path, "digest": rules.digest},
        "inputs": execution.inputs,
        "outputs": execution.outputs,
        "options": {
            "max_reject_rate": options.max_reject_rate,
            "max_denial_rate": options.max_denial_rate,
            "ledger": None if options.ledger is None else str(options.ledger),
            "ledger_entries": [
                {"name": name, "sha256": sha}
                for name, sha in (execution.ledger.entries if execution.ledger else ())
            ],
        },
        "forced": bool(guards) and options.force,
        "guards_tripped": guards,
        "working_directory": os.getcwd(),
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
    }


LIBRARIES = ("numpy", "pandas", "pandera", "pyarrow")
"""The libraries whose versions can change an output's bytes (Parquet's footer names
pyarrow's, for one) or a check's verdict."""


def environment() -> dict[str, str]:
    """Python's version and :data:`LIBRARIES`', as the manifest records them."""
    return {"python": platform.python_version()} | {
        name: metadata.version(name) for name in LIBRARIES
    }


def publish_run(
    options: RunOptions,
    rules: Rules,
    out: Path,
    started_at: datetime,
    clock: Callable[[], datetime],
    *,
    observer: Observer | None = None,
) -> tuple[Execution, list[str]]:
    """Run the job and publish it atomically in ``out``, and its units to the ledger.

    Raises :class:`Held` (publishing nothing) when a guard trips without ``force``.
    """
    ledger = options.ledger
    with writing(ledger) if ledger is not None else nullcontext():
        return _published(options, rules, out, started_at, clock=clock, observer=observer)


def _published(
    options: RunOptions,
    rules: Rules,
    out: Path,
    started_at: datetime,
    *,
    clock: Callable[[], datetime],
    observer: Observer | None,
) -> tuple[Execution, list[str]]:
    """:func:`publish_run`, the ledger (if any) held."""
    ledger = options.ledger
    note = None
    try:
        with publishing(out) as staging:
            execution = run_into(options, rules, staging, observer=observer)
            guards = tripped_guards(execution, options)
            if guards and not options.force:
                raise Held(guards)
            manifest = manifest_for(
                execution, options, rules, guards, started_at=started_at, finished_at=clock()
            )
            write_json(manifest, staging / MANIFEST)
            if ledger is not None:
                note = stage_entry(
                    ledger,
                    execution.run_id,
                    staging / UNITS_FILE,
                    out,
                    manifest=sha256_of(staging / MANIFEST),
                )
    except BaseException:
        # Settled, not discarded: a stop (SIGTERM) can land after the rename that
        # published ``out``, and a published run's units count.
        if ledger is not None and note is not None:
            settle_entry(ledger, note)
        raise
    if ledger is not None and note is not None:
        commit_entry(ledger, note)
    return execution, guards
