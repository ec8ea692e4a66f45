"""Validation that never loses a row.

The contract's pandera models run lazily over the text as read; every failure
becomes a rejects row joined back to its source row, and every row that has
none is valid. A row is in exactly one of the two.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.errors import SchemaErrors

from pipeline.io import SOURCE_FILE, SOURCE_ROW, to_frame
from pipeline.partition import filter_rows
from pipeline.rejects import sort_rejects
from schemas import authorizations as register_contract
from schemas import claims as claims_contract
from schemas.checks import TEXT_DTYPE, all_empty, forget, message_template, row_rule_for
from schemas.outputs import REJECT_COLUMNS, empty_rejects


@dataclass(frozen=True)
class Validated:
    """The rows checked (case normalized), which passed every check, and one rejects
    row per failure of the others."""

    checked: pd.DataFrame
    passed: np.ndarray
    rejects: pd.DataFrame

    @cached_property
    def valid(self) -> pd.DataFrame:
        """The rows that passed every check, keeping their index (made when first asked
        for: the engine takes them straight to their partitions instead)."""
        if self.passed.all():
            return self.checked
        return rows_where(self.checked, self.passed)

    @property
    def rejected_rows(self) -> int:
        """How many input rows failed at least one check."""
        return int(self.rejects[[SOURCE_FILE, SOURCE_ROW]].drop_duplicates().shape[0])


def normalize_case(
    frame: pd.DataFrame, upper: Sequence[str], lower: Sequence[str] = ()
) -> pd.DataFrame:
    """Codes upper-cased (and claim types lower-cased); nothing else is repaired. Columns
    with no value are left as they are (23 of the 30 in a file with two diagnoses and two
    modifiers: ~0.2 ms each a partition of 200,000 lines)."""
    filled = {name for name in [*upper, *lower] if name in frame and not all_empty(frame[name])}
    changes = {name: frame[name].str.upper() for name in upper if name in filled}
    changes |= {name: frame[name].str.lower() for name in lower if name in filled}
    return frame.assign(**changes)


def validate_claims(
    lines: pd.DataFrame,
    as_of: datetime,
    *,
    remember: bool = False,
    decided: Mapping[str, np.ndarray] | None = None,
) -> Validated:
    """Check claim lines read as text against the claims contract at ``as_of``.

    ``remember``: what the checks computed once for the rows (their claim codes, a
    column's distinct values) stays remembered for the caller to reuse and to let go
    of (:func:`schemas.checks.forget`); otherwise it is let go of here.

    ``decided``: rules already applied to these rows elsewhere, by their pandera name:
    whether each row passes. They are left out of the schema and their failures taken
    as given (a claim's lines validated a piece at a time, its claim rules over all of
    them first: :func:`claim_rules_passed`)."""
    lines = normalize_case(
        lines, claims_contract.UPPER_CASE_COLUMNS, claims_contract.LOWER_CASE_COLUMNS
    )
    schema = claims_contract.claims_schema(as_of)
    return _validate(
        lines,
        schema,
        claims_contract.CONTRACT_COLUMNS,
        source="claims",
        remember=remember,
        decided=decided or {},
    )


def claim_rules_passed(lines: pyarrow.Table) -> dict[str, np.ndarray]:
    """Whether each line passes each rule that checks a claim's lines against each other
    (:func:`schemas.claims.claim_rules`), by the rule's pandera name, the lines' case
    normalized first as :func:`validate_claims` does; for ``decided``. Only the columns
    the rules read are taken from ``lines``."""
    rules = claims_contract.claim_rules()
    columns = claim_rule_columns()
    keys = normalize_case(
        to_frame(lines.select(columns)).astype(TEXT_DTYPE),
        [name for name in claims_contract.UPPER_CASE_COLUMNS if name in columns],
        [name for name in claims_contract.LOWER_CASE_COLUMNS if name in columns],
    )
    try:
        return {
            name: np.asarray(passes(keys[list(_reads(name))]), dtype=bool)
            for name, passes in rules.items()
        }
    finally:
        forget()  # what the rules computed once for these lines


def claim_rule_columns() -> list[str]:
    """The columns the claim rules read (:func:`claim_rules_passed`)."""
    return sorted({name for key in claims_contract.claim_rules() for name in _reads(key)})


def _reads(name: str) -> tuple[str, ...]:
    rule = row_rule_for(name)
    assert rule is not None, name
    return rule.reads


def validate_authorizations(register: pd.DataFrame) -> Validated:
    """Check register rows read as text against the register contract."""
    register = normalize_case(register, register_contract.UPPER_CASE_COLUMNS)
    schema = register_contract.AuthorizationInput.to_schema()
    return _validate(
        register,
        schema,
        register_contract.CONTRACT_COLUMNS,
        source="authorizations",
    )


def _validate(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    contract_columns: Sequence[str],
    *,
    source: str,
    remember: bool = False,
    decided: Mapping[str, np.ndarray] | None = None,
) -> Validated:
    decided = decided or {}
    frame = frame.reset_index(drop=True)
    as_text = {
        c: frame[c].astype(TEXT_DTYPE) for c in contract_columns if frame[c].dtype != TEXT_DTYPE
    }
    frame = frame.assign(**as_text) if as_text else frame
    # The column checks see every contract column; each row rule only the columns it
    # reads (see ``row_rule``).
    columns_only = copy.copy(schema)
    columns_only.checks = []
    by_columns: dict[tuple[str, ...], list[pa.Check]] = {}
    for check in schema.checks:
        if check.name in decided:
            continue
        rule = row_rule_for(check.name)
        reads = rule.reads if rule is not None else tuple(contract_columns)
        by_columns.setdefault(reads, []).append(check)
    try:
        found = [_failures(columns_only, frame[list(contract_columns)])]
        # With a NumPy column beside the rules' Arrow text: pandas reshapes the failing
        # rows of a frame of Arrow text alone (pandera's failure cases) one row at a
        # time, of a mixed frame as one block (3,709 lines of claims whose member
        # differs: 0.15 s, 0.02 s this way).
        one_block = np.zeros(len(frame), dtype=np.int8)
        found += [
            _failures(
                pa.DataFrameSchema(checks=checks),
                frame[list(reads)].assign(**{_ONE_BLOCK: one_block}),
            )
            for reads, checks in by_columns.items()
        ]
    finally:
        if not remember:
            forget()  # what the checks computed once for this frame
    found += [_decided_failures(name, passes) for name, passes in decided.items()]
    failures = [cases for cases in found if cases is not None]
    passed = np.ones(len(frame), dtype=bool)
    if not failures:
        return Validated(checked=frame, passed=passed, rejects=empty_rejects())
    rejects = _rejects_from_failures(pd.concat(failures, ignore_index=True), frame, source)
    passed[rejects.pop("_row").to_numpy()] = False
    return Validated(checked=frame, passed=passed, rejects=rejects)


_ONE_BLOCK = "_one_block"
"""The NumPy column given to the row rules beside the columns they read."""


def _decided_failures(name: str, passes: np.ndarray) -> pd.DataFrame | None:
    """A rule's failures decided elsewhere, as pandera's failure cases name them (the
    row, the check), or None when every row passed."""
    rows = np.flatnonzero(~passes)
    if not len(rows):
        return None
    return pd.DataFrame({"index": rows, "column": None, "check": name})


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame | None:
    """Pandera's failure cases of a lazy validation, or None when every check passed."""
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except SchemaErrors as errors:
        return errors.failure_cases
    return None


def rows_where(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The rows of ``frame`` where ``keep`` is true, keeping their index.

    Filtered in Arrow: pandas' row selection copies each Arrow column one by
    one, which doubled the cost of a file with a few bad rows.
    """
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    kept = to_frame(filter_rows(table, keep))
    kept.index = frame.index[keep]
    return kept


def _rejects_from_failures(
    failures: pd.DataFrame, frame: pd.DataFrame, source: str
) -> pd.DataFrame:
    """One rejects row per (row, column, check), with a message a person can act on."""
    if failures["index"].isna().any():
        schema_level = failures.loc[failures["index"].isna(), "check"].unique().tolist()
        raise RuntimeError(f"validation failed without naming rows: {schema_level}")
    column = failures["column"].astype("str")
    check = failures["check"].astype("str")
    rule_names = check.unique()
    rules = {name: row_rule_for(name) for name in rule_names}
    # As text even when no row rule failed (an empty mapping gives float NaN).
    rule_column = check.map({k: r.column for k, r in rules.items() if r is not None}).astype("str")
    rule_check = check.map({k: r.check for k, r in rules.items() if r is not None}).astype("str")
    cases = pd.DataFrame(
        {
            "_row": failures["index"].astype("int64").to_numpy(),
            "column": rule_column.fillna(column).to_numpy(),
            "check": rule_check.fillna(check).to_numpy(),
            "_template_key": check.to_numpy(),
        }
    ).drop_duplicates(["_row", "column", "check"])
    pieces = [
        _filled(group, frame, str(col), str(key))
        for (col, key), group in cases.groupby(["column", "_template_key"], sort=True)
    ]
    rejects = pd.concat(pieces, ignore_index=True)
    rows = rejects["_row"].to_numpy()
    rejects = rejects.assign(
        source=source,
        # The rejected rows taken first: the whole column made NumPy cost 75 ms a million.
        source_file=frame[SOURCE_FILE].iloc[rows].astype("str").to_numpy(),
        source_row=frame[SOURCE_ROW].iloc[rows].to_numpy(),
        claim_id=_column_or_null(frame, "claim_id", rows, source),
        claim_line_number=_column_or_null(frame, "claim_line_number", rows, source),
    )
    return sort_rejects(rejects[[*REJECT_COLUMNS, "_row"]])


def _column_or_null(frame: pd.DataFrame, name: str, rows: np.ndarray, source: str) -> pd.Series:
    if source != "claims" or name not in frame:
        return pd.Series([None] * len(rows), dtype="str")
    return frame[name].iloc[rows].reset_index(drop=True)


def _filled(cases: pd.DataFrame, frame: pd.DataFrame, column: str, key: str) -> pd.DataFrame:
    """The value and message for one group of failures of one check on one column."""
    rule = row_rule_for(key)
    template = rule.message if rule is not None else message_template(key)
    template = template.replace("{column}", column)
    values = frame[column].iloc[cases["_row"].to_numpy()].reset_index(drop=True)
    if "{value}" in template:
        before, after = template.split("{value}", 1)
        message = before + values.fillna("") + after
    else:
        message = pd.Series([template] * len(values), dtype="str")
    return pd.DataFrame(
        {
            "_row": cases["_row"].to_numpy(),
            "column": column,
            "check": cases["check"].to_numpy(),
            "value": values.astype("str").to_numpy(),
            "message": message.astype("str").to_numpy(),
        }
    )


@dataclass
class FileCounts:
    """Rows read, valid and rejected in one input file, and its rejects per check."""

    path: str
    source: str
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    checks: dict[tuple[str, str], int] = field(default_factory=dict)

    def as_dict(self, *, adjudicated: bool = True) -> dict[str, object]:
        """The file's entry in summary.json (claims files of a run also say how many
        lines were adjudicated: the valid ones)."""
        entry: dict[str, object] = {
            "source": self.source,
            "path": self.path,
            "rows_read": self.rows,
            "valid": self.valid,
            "rejected": self.rejected,
            "rejects_by_check": [
                {"column": column, "check": check, "rejects": count}
                for (column, check), count in sorted(self.checks.items())
            ],
        }
        if adjudicated and self.source == "claims":
            entry["adjudicated"] = self.valid
        return entry


def count_validated(files: dict[str, FileCounts], validated: Validated) -> None:
    """Add a validation's valid rows, rejected rows and rejects per check to ``files``."""
    sources = pyarrow.array(validated.checked[SOURCE_FILE]).filter(pyarrow.array(validated.passed))
    for entry in sources.value_counts().to_pylist():
        files[str(entry["values"])].valid += int(entry["counts"])
    rejects = validated.rejects
    if rejects.empty:
        return
    rows = rejects.drop_duplicates([SOURCE_FILE, SOURCE_ROW])[SOURCE_FILE].value_counts()
    for path, count in zip(rows.index, rows, strict=True):
        files[str(path)].rejected += int(count)
    by_check = rejects.groupby([SOURCE_FILE, "column", "check"], observed=True).size()
    for (path, column, check), count in zip(by_check.index, by_check, strict=True):
        key = (str(column), str(check))
        checks = files[str(path)].checks
        checks[key] = checks.get(key, 0) + int(count)


def merge_counts(files: dict[str, FileCounts], found: dict[str, FileCounts]) -> None:
    """Add counts made elsewhere (a partition, a worker) to ``files``."""
    for path, counts in found.items():
        total = files[path]
        total.valid += counts.valid
        total.rejected += counts.rejected
        for key, count in counts.checks.items():
            total.checks[key] = total.checks.get(key, 0) + count
