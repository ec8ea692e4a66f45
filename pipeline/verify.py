"""The auditor's rerun: recompute a published run from its manifest, byte for byte.

A changed input, rules file or ledger entry is refused before any work: the
run could not be repeated. Otherwise every output is recomputed in a
temporary directory and compared with the published one; where bytes differ,
the account says which file, and for tables which columns and rows.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import __version__
from pipeline.engine import Execution
from pipeline.errors import InputChanged, InputError, PipelineError
from pipeline.io import sha256_of
from pipeline.ledger import read_ledger
from pipeline.report import MANIFEST
from pipeline.rules import Rules, UnclearRules, load_rules
from pipeline.run import RunOptions, environment, run_into, tripped_guards
from pipeline.workers import ROWS_PER_PARTITION, WORKERS


class VerifyRefused(PipelineError):
    """The run cannot be repeated: an input, the rules or the ledger changed or is missing."""


@dataclass(frozen=True)
class Verdict:
    """Whether every output was reproduced, and an account of what was not."""

    run_id: str
    differences: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when every output is byte-identical."""
        return not self.differences


def _manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise VerifyRefused(f"{path}: no manifest; {directory} is not a published run") from error
    except ValueError as error:
        raise VerifyRefused(f"{path}: the manifest is not valid JSON") from error
    misshapen = _misshapen(document)
    if misshapen is not None:
        raise VerifyRefused(
            f"{path}: the manifest's {misshapen} is missing or not what a run writes; "
            "it is no manifest of this program's, and the run cannot be repeated from it"
        )
    return document


def _misshapen(manifest: Any) -> str | None:
    """The first part of a manifest ``verify`` reads that is missing or of another
    shape than a run writes, named as :func:`_walk` names a key; None where all are."""
    if not isinstance(manifest, dict):
        return "document"
    for key, kind in (("run_id", str), ("as_of", str), ("working_directory", str)):
        if not isinstance(manifest.get(key), kind):
            return key
    with contextlib.suppress(ValueError):
        datetime.fromisoformat(manifest["as_of"])
        return _misshapen_parts(manifest)
    return "as_of"


def _misshapen_parts(manifest: dict[str, Any]) -> str | None:
    """:func:`_misshapen` for the manifest's inputs, rules and options, checked in turn
    (each check only once those before it hold)."""
    inputs: Any = manifest.get("inputs")
    rules: Any = manifest.get("rules")
    options: Any = manifest.get("options")
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("program", lambda: isinstance(manifest.get("program", {}), dict)),
        ("environment", lambda: isinstance(manifest.get("environment"), dict | None)),
        ("inputs", lambda: isinstance(inputs, list)),
        ("inputs", lambda: all(_texts(entry, "source", "path", "sha256") for entry in inputs)),
        ("inputs", lambda: [e["source"] for e in inputs].count("authorizations") == 1),
        ("inputs", lambda: any(entry["source"] == "claims" for entry in inputs)),
        ("rules", lambda: _texts(rules, "digest")),
        ("rules.source", lambda: isinstance(rules.get("source"), str | None)),
        ("options", lambda: isinstance(options, dict)),
        ("options.ledger", lambda: isinstance(options.get("ledger"), str | None)),
        ("options.max_reject_rate", lambda: type(options.get("max_reject_rate")) in (int, float)),
        ("options.max_denial_rate", lambda: type(options.get("max_denial_rate")) in (int, float)),
        ("options.ledger_entries", lambda: isinstance(options.get("ledger_entries"), list)),
        (
            "options.ledger_entries",
            lambda: all(_texts(entry, "name", "sha256") for entry in options["ledger_entries"]),
        ),
    ]
    return next((name for name, holds in checks if not holds()), None)


def _texts(entry: Any, *keys: str) -> bool:
    """Whether ``entry`` is an object holding text under each of ``keys``."""
    return isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in keys)


def _check_inputs(manifest: dict[str, Any]) -> None:
    for entry in manifest["inputs"]:
        path = Path(entry["path"])
        if not path.is_file():
            raise VerifyRefused(f"input {entry['path']} is missing; the run cannot be repeated")
        if sha256_of(path) != entry["sha256"]:
            raise VerifyRefused(
                f"input {entry['path']} changed since the run (sha256 was {entry['sha256'][:12]}…, "
                f"is {sha256_of(path)[:12]}…); the run cannot be repeated"
            )


def _options(manifest: dict[str, Any]) -> RunOptions:
    options = manifest["options"]
    return RunOptions(
        claims=tuple(i["path"] for i in manifest["inputs"] if i["source"] == "claims"),
        authorizations=next(
            i["path"] for i in manifest["inputs"] if i["source"] == "authorizations"
        ),
        as_of=datetime.fromisoformat(manifest["as_of"]),
        rules_path=manifest["rules"]["source"],
        ledger=Path(options["ledger"]) if options["ledger"] else None,
        max_reject_rate=options["max_reject_rate"],
        max_denial_rate=options["max_denial_rate"],
        force=True,
    )


def verify(
    directory: Path, *, workers: int = WORKERS, rows_per_partition: int = ROWS_PER_PARTITION
) -> Verdict:
    """Recompute the run published in ``directory`` and compare every output.

    Every file in ``directory`` but the manifest is compared with the rerun's outputs
    (a file the rerun does not make is a difference too), and the manifest's own
    account of the run (its inputs' and outputs' digests and rows, the guards that
    tripped and whether it was forced) with the rerun's.
    """
    # Absolute before the move into the run's working directory: a relative DIR names
    # a directory from where the auditor stands.
    directory = Path(directory).absolute()
    manifest = _manifest(directory)
    where = Path(manifest["working_directory"])
    if not where.is_dir() and _relative_paths(manifest):
        raise VerifyRefused(
            f"the run's working directory {where} is gone; the relative paths "
            f"{', '.join(_relative_paths(manifest))} cannot be resolved, so the run cannot "
            "be repeated"
        )
    with contextlib.chdir(where) if where.is_dir() else contextlib.nullcontext():
        _check_inputs(manifest)
        options = replace(
            _options(manifest), workers=workers, rows_per_partition=rows_per_partition
        )
        made_by = manifest.get("program", {}).get("version")
        try:
            rules = load_rules(options.rules_path)
        except UnclearRules as error:
            if made_by == __version__:
                raise
            raise VerifyRefused(
                f"{error}; {_versions(made_by)}, which checks a rules file more strictly "
                "(README, Changes between versions)"
            ) from error
        if rules.digest != manifest["rules"]["digest"]:
            raise VerifyRefused(
                f"the rules in force ({options.rules_path or 'built-in'}) are not the ones the "
                "run used (digest differs); the run cannot be repeated"
            )
        entries = [e["name"] for e in manifest["options"]["ledger_entries"]]
        if options.ledger is not None:
            state = read_ledger(options.ledger, only=entries)
            for (name, sha), recorded in zip(
                state.entries, manifest["options"]["ledger_entries"], strict=True
            ):
                if sha != recorded["sha256"]:
                    raise VerifyRefused(f"ledger entry {name} changed since the run")
        with _scratch() as scratch:
            execution = _rerun(options, rules, scratch, entries, made_by)
            differences = []
            if execution.run_id != manifest["run_id"]:
                differences.append(
                    f"run_id: published {manifest['run_id']}, recomputed {execution.run_id}"
                )
            made = sorted(path.name for path in scratch.iterdir())
            for name in made:
                differences += compare(directory / name, scratch / name)
            differences += [
                f"{path.name}: in the published run, but the run makes no such output"
                for path in sorted(directory.iterdir())
                if path.name != MANIFEST and path.name not in made
            ]
            differences += _account_differences(manifest, execution, options)
    if differences and made_by != __version__:
        differences.append(
            f"program: {_versions(made_by)}; decisions differ where a later version reads "
            "the policy otherwise (README, Changes between versions)"
        )
    if differences:
        differences += _environment_differences(manifest.get("environment"))
    return Verdict(run_id=manifest["run_id"], differences=differences)


def _rerun(
    options: RunOptions, rules: Rules, scratch: Path, entries: list[str], made_by: str | None
) -> Execution:
    """The run again, into ``scratch``; inputs this version refuses, where another made
    the run, refused with both versions named."""
    try:
        return run_into(options, rules, scratch, ledger_entries=entries)
    except InputError as error:
        if made_by == __version__ or isinstance(error, InputChanged):
            raise
        raise VerifyRefused(
            f"{error}; {_versions(made_by)}, which reads inputs more strictly "
            "(README, Changes between versions)"
        ) from error


def _relative_paths(manifest: dict[str, Any]) -> list[str]:
    """The paths the manifest names relative to the run's working directory: its inputs,
    its rules file and its ledger."""
    paths = [entry["path"] for entry in manifest["inputs"]]
    paths += [manifest["rules"]["source"], manifest["options"]["ledger"]]
    return [path for path in paths if path is not None and not Path(path).is_absolute()]


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    """The rerun's scratch directory, removed however the rerun ends. Found by its name
    (this process's) rather than by what mkdtemp returns: a stop (SIGTERM) can land
    inside mkdtemp, the directory made and its name not yet returned."""
    prefix = f"adjudicate-verify-{os.getpid()}-"
    try:
        yield Path(tempfile.mkdtemp(prefix=prefix))
    finally:
        for mine in Path(tempfile.gettempdir()).glob(f"{glob.escape(prefix)}*"):
            shutil.rmtree(mine, ignore_errors=True)


def _account_differences(
    manifest: dict[str, Any], execution: Execution, options: RunOptions
) -> list[str]:
    """Where the manifest's account of the run is not the rerun's: the inputs' and
    outputs' digests and rows, the guards that tripped, and whether the run was forced
    (a published run that tripped a guard was forced past it)."""
    guards = tripped_guards(execution, options)
    recomputed = {
        "inputs": execution.inputs,
        "outputs": execution.outputs,
        "guards_tripped": guards,
        "forced": bool(guards),
    }
    return [
        f"{MANIFEST}: {line}"
        for key, value in recomputed.items()
        for line in _walk(manifest.get(key), value, key)
    ]


def _environment_differences(recorded: dict[str, str] | None) -> list[str]:
    """Where the run's Python or libraries were not this rerun's: the bytes of an output
    can differ with them where no value does (Parquet's footer names pyarrow's version)."""
    if recorded is None:
        return ["environment: the manifest does not say which libraries made the run"]
    here = environment()
    return [
        f"environment: the run was made with {name} {recorded.get(name, 'unknown')}, "
        f"this is {version}"
        for name, version in here.items()
        if recorded.get(name) != version
    ]


def _versions(made_by: str | None) -> str:
    """Which version of the program made a run, and which is verifying it."""
    return f"the run was made by version {made_by or 'unknown'}, this is {__version__}"


def compare(published: Path, recomputed: Path) -> list[str]:
    """What differs between a published output and its recomputation; empty if identical."""
    name = published.name
    if not published.is_file():
        return [f"{name}: missing from the published run"]
    if _same_bytes(published, recomputed):
        return []
    if name.endswith(".parquet"):
        return [f"{name}: {line}" for line in _table_differences(published, recomputed)]
    if name.endswith(".json"):
        return [f"{name}: {line}" for line in _json_differences(published, recomputed)]
    return [f"{name}: bytes differ"]


def _same_bytes(a: Path, b: Path, block: int = 1 << 20) -> bool:
    """Whether two files hold the same bytes, read a block at a time (an output of
    millions of lines is not held whole, twice)."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        while chunk := left.read(block):
            if chunk != right.read(block):
                return False
    return True


COMPARED_ROWS = 65_536
"""Rows of a published and a recomputed table compared at a time."""


def _table_differences(published: Path, recomputed: Path) -> list[str]:
    try:
        left = pq.ParquetFile(published)
    except (pa.ArrowInvalid, OSError) as error:
        return [f"bytes differ and the published file cannot be read ({type(error).__name__})"]
    right = pq.ParquetFile(recomputed)
    if left.schema_arrow != right.schema_arrow:
        return [
            f"columns or types differ: published {left.schema_arrow.names}, "
            f"recomputed {right.schema_arrow.names}"
        ]
    if left.metadata.num_rows != right.metadata.num_rows:
        return [f"{left.metadata.num_rows} rows published, {right.metadata.num_rows} recomputed"]
    names = left.schema_arrow.names
    differing = dict.fromkeys(names, 0)
    first: dict[str, int] = {}
    try:
        batches = zip(
            left.iter_batches(COMPARED_ROWS), right.iter_batches(COMPARED_ROWS), strict=True
        )
        start = 0
        for a, b in batches:
            for name in names:
                differs = _differs(a.column(name), b.column(name))
                if differs.any():
                    differing[name] += int(differs.sum())
                    first.setdefault(name, start + int(differs.nonzero()[0][0]))
            start += a.num_rows
    except (pa.ArrowInvalid, OSError) as error:
        return [f"bytes differ and the published file cannot be read ({type(error).__name__})"]
    found = [
        f"column {name}: {differing[name]} rows differ (first at row {first[name] + 1})"
        for name in names
        if differing[name]
    ]
    return found or ["bytes differ but every value is equal (file layout or metadata)"]


def _differs(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Where two columns' values differ, two empty values alike."""
    equal = pc.fill_null(pc.equal(a, b), False)
    both_empty = pc.and_(pc.is_null(a), pc.is_null(b))
    if pa.types.is_floating(a.type):  # NaN is not equal to itself, but is the same value
        both_empty = pc.or_(both_empty, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    same = pc.or_(equal, both_empty)
    return ~np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)


def _json_differences(published: Path, recomputed: Path, limit: int = 20) -> list[str]:
    try:
        left = json.loads(published.read_text(encoding="utf-8"))
    except ValueError:
        return ["bytes differ and the published file is not valid JSON"]
    right = json.loads(recomputed.read_text(encoding="utf-8"))
    return _walk(left, right, "")[:limit] or ["bytes differ but every value is equal (formatting)"]


def _walk(a: Any, b: Any, where: str) -> list[str]:
    """The keys (dotted, with list positions) where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            line
            for key in sorted(set(a) | set(b))
            for line in _walk(a.get(key), b.get(key), f"{where}.{key}" if where else key)
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            line
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for line in _walk(x, y, f"{where}[{i}]")
        ]
    return [] if a == b else [f"{where or '(document)'} differs"]
