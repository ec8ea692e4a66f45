"""The local engine: one run in bounded memory, partition after partition.

Passes, each holding one partition at a time:

0. read the register in batches and scatter its rows by a stable hash of
   ``authorization_id`` (every version of an authorization meets); validate
   each partition, take its state as of the run and scatter the state by a
   stable hash of ``member_id`` (beside pass 1: its tasks are queued first);
1. read the claims files in batches (a plain CSV file in spans, side by side)
   and scatter the rows by a stable hash of ``member_id`` (a line without one
   by its ``claim_id``): a member's lines and authorizations meet. Beside them,
   a narrow index of (``claim_id``, member partition) is scattered by claim;
2. find, in the index, the claims whose lines went to more than one member
   partition: lines that name different members (or none). Their ids go to
   each member partition they touch;
3. validate each member partition with the contract and decide its valid
   lines with the kernel (``pipeline.decide``), in one go; the lines of the
   claims found in pass 2 are set aside instead, by claim, and validated
   together after (every line of such a claim is rejected: its lines disagree
   on the member). Duplicates and claims whose lines disagree are otherwise
   local to a member partition, since a claim's lines are. The decided lines
   are scattered into ranges of ``claim_id``, and the rejects into the same
   ranges of a spill of their own (the register's rejects are spilled in pass 0);
4. sort each range and encode it as one Parquet row group; the row groups are
   joined, in order, into ``adjudicated.parquet`` (``pipeline.rowgroups``). The
   ranges split the claim ids sampled in pass 1 into about ``ROWS_PER_GROUP``
   lines each, whatever the partition or worker count: the file is the same
   bytes either way. ``rejects.parquet`` is then written from the rejects'
   spill a range at a time, each sorted as it is read (``pipeline.rejects``).

Peak memory follows ``rows_per_partition``, not the input. Passes 0 (but its
reading), 1, 2, 3 and 4 can run in several worker processes (``workers``); each
process writes its own spill file per partition. Which worker wrote a row does
not change the output: the kernel does not depend on the order of a partition's
rows, and the output is sorted on a key that is unique to a row, so the bytes
are the same. A Spark engine would feed the same kernel the same member
partitions (``applyInPandas``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import resource
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.authorization import STATE_SCHEMA, state_and_invalid_members
from pipeline.decide import ADDED_COLUMNS, DECISION_COLUMNS, Partition, decide
from pipeline.errors import InputChanged, InputError, PipelineError
from pipeline.io import (
    SOURCE_FILE,
    SOURCE_ROW,
    SPAN_COLUMN,
    lacked_by_all,
    sha256_of,
    text_batches,
    text_schema,
    to_frame,
    write_json,
    write_parquet,
)
from pipeline.ledger import (
    LEDGER_SCHEMA,
    LedgerState,
    ledger_rows,
    read_ledger,
    sorted_entry,
    standing_takes,
    taken_before,
)
from pipeline.memory import prepare_process
from pipeline.partition import (
    Spill,
    empty_columns,
    let_go_of_read_files,
    partition_of,
    rebatched,
    release_writers,
    stable_hash,
    take_rows,
)
from pipeline.progress import Observer, Silent
from pipeline.rejects import (
    LINE_KEY,
    PLACE,
    ROW_GROUP_ROWS,
    SAMPLE_ONE_IN,
    as_spilled,
    cut_points,
    order,
    parts_of,
    write_sorted,
)
from pipeline.rejects import SPILL_SCHEMA as REJECTS_SPILLED
from pipeline.rowgroups import JoinedParquet
from pipeline.rules import Rules
from pipeline.spans import Span, spans_of
from pipeline.summary import SummaryParts
from pipeline.validate import (
    FileCounts,
    Validated,
    claim_rule_columns,
    claim_rules_passed,
    count_validated,
    merge_counts,
    validate_authorizations,
    validate_claims,
)
from pipeline.workers import (
    ROWS_PER_PARTITION,
    WORKERS,
    Signature,
    cut_early,
    cut_early_signature,
    rows_by_size,
    signature,
    take,
)
from schemas import authorizations as register_contract
from schemas import claims as claims_contract
from schemas.checks import fixed_width, forget

_T = TypeVar("_T")

ROWS_PER_GROUP = 131_072
"""About how many lines a range of the output holds, and so a Parquet row group: the
ranges are cut by the lines read, never by the partitions or the workers, and a row
group holds whole claims."""
PLAIN_COLUMNS = frozenset(
    {
        "claim_id",
        "member_id",
        "original_claim_id",
        "prior_authorization_number",
        "charge_amount",
        "source_row",
        "denied_amount",
        "matched_authorization_id",
    }
)
"""Output columns written without a Parquet dictionary: values nearly unique to a line
or a claim, where a dictionary costs time and saves no space (a million decided lines
encoded in 0.98 s instead of 1.16-1.19 s, 21 MB instead of 25). Every other column
keeps its dictionary."""
CODED_COLUMNS = frozenset(
    {
        SOURCE_FILE,
        "decision",
        "reason",
        "carc",
        "rarc",
        "group_code",
        "modality",
        "body_region",
        "run_id",
    }
)
"""Columns carried from a line's reading to the output as Arrow dictionaries whose
values are the same in every partition: each line's file (the run's files, in the order
given) and the decision's codes (the kernel makes them categoricals of fixed categories,
see ``pipeline.io.categories_of``). Sorting a range moves their indices, not their text
(the decision's eight columns of 134,000 lines: 23 ms -> 5 ms), a spilled line is some
60 bytes shorter for its file's path alone, and Parquet writes each one's dictionary as
given instead of hashing every value. The file holds text as before: Parquet keeps no
trace of which (see :func:`parquet_writer`)."""
CODED = pa.dictionary(pa.int32(), pa.string())
SORTED_BY = ("claim_id", "claim_line_number", SOURCE_FILE, SOURCE_ROW)
"""The output's order. Its Parquet column statistics (min, max, nulls) are written for
these columns only: there they let a reader skip row groups; every other column's values
are spread over every group, where statistics skip nothing and cost time (a million
decided lines encoded in 0.79 s instead of 0.97 s)."""
SAMPLE_EVERY = 64
"""One claim in this many (by hash) marks where the sorted output's ranges split, up to
``SAMPLED_LINES`` lines (see :func:`sample_every`)."""
SAMPLED_LINES = 1 << 21
"""About the most lines whose claims are sampled (2,097,152: the one claim in
``SAMPLE_EVERY`` of 134M lines): past it, claims are sampled more thinly, so that the
sample, which this process sorts, does not grow with the input (at 1,000M lines, some
130 claims a range). Below it, the one claim in ``SAMPLE_EVERY``."""


OPEN_FILES_MARGIN = 64
"""Open files a run needs besides a spill's one per partition (inputs, outputs, Python)."""
STATE_SHARE = 2
"""A member partition holds the register state of up to this many register rows for
each claim line it is sized for. The member partitions were counted by the claim lines
alone: a night's 200,000 lines against a register of 4M rows made one partition holding
the whole state, 668 MiB at its peak (12.9 s). Counted by the register too: 409 MiB at
8 rows a line, 352 at 4, 301 at 2 (12.0 s), against 287 for the benchmark's 1M lines
and their register of 50,000 rows, whose count the register does not change."""
INDEX_SHARE = 4
"""The claim index (an id and a number per line) has one partition per this many member
partitions. Its rows are a tenth the width of a claim line, but grouping them by claim
takes some 60-70 bytes a row: at 8, a split task's peak reached 363 MiB at 50M lines
(partitions of 1.6M rows, against 1.4M at 10M), above every decide task's (346 at
most); at 4, 259 at most at 50M and 281 at 10M, and the split pass no slower (twice
the tasks, each 0.1 s against 0.16-0.24)."""
REGISTER_SHARE = 2
"""The register's partitions hold this many times fewer rows than the claims' (by
``authorization_id``; validated in the workers ahead of the claims' reading). A
register task's peak follows its partition, and a worker keeps some of it through the
passes after: at as many rows as the claims' (192,000 at 50M lines, 167,000 at 10M,
where the count rounds lower), the register's tasks reached 262 MiB at 50M against
239, and the decide tasks after them 315 against 310 (medians); at half, 209 and
196.5, and the decide tasks 312 at both sizes (README, Performance)."""
MAX_PIECES = 128
"""The most pieces a member or claim-index partition is read in: every batch read goes
to every partition, so a partition comes in a piece a batch (one a 16 MB span: 88 at
10M lines, 440 at 50M), and a task reading it holds Arrow's objects for each piece
(~15 KB a piece of 30 columns). Past this many batches, a pass of its own gathers each
partition into one piece first: at 50M lines a decide task's peak 335 MiB against 344
(medians; 332 at 10M), a split task's 334 at most against 379, for the by-member spill
read and written once more (README, Performance). An output range comes in a piece a
member partition; past this many partitions, a write task combines them as it reads
(``COMBINE_EVERY``)."""
COMBINE_EVERY = 32
"""Pieces of an output range combined into one as a write task reads them, where there
are more than ``MAX_PIECES``. Read as they were (mapped, a piece a member partition), a
range of 131,072 lines held 30 MiB more in 246 pieces than in 50 (Arrow's objects, each
piece's schema and dictionaries), so a write task's memory grew with the input. In a 50M
run, a write task's peak 278 MiB (median; 289 at most) against 285 (322) uncombined, and
273 (306) at 10M; the same time a task (0.20 s). The copies' freed memory stays with
the worker a while (Arrow's allocator): a write task starts at 267 MiB against 226,
where a decide task starts at 265 and peaks at 336."""

INDEX_SCHEMA = pa.schema([pa.field("claim_id", pa.string()), pa.field("part", pa.int32())])
"""A claim line's id and the member partition it went to (pass 1)."""
SPLIT_SCHEMA = pa.schema([pa.field("claim_id", pa.string())])
"""Claim ids alone: the claims whose lines went to several member partitions (pass 2),
and pass 1's sample of claim ids."""
SPAN = pa.field(SPAN_COLUMN, pa.int32())
"""Which span of an input a spilled claim line was read from: its rows are numbered
within the span until the spans before it have been counted."""

DECISION_FIELDS = [
    pa.field("decision", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("carc", pa.string()),
    pa.field("rarc", pa.string()),
    pa.field("group_code", pa.string()),
    pa.field("liable_npi", pa.string()),
    pa.field("denied_amount", pa.decimal128(18, 2)),
    pa.field("matched_authorization_id", pa.string()),
    pa.field("code_substituted", pa.bool_()),
    pa.field("records_required", pa.bool_()),
    pa.field("modality", pa.string()),
    pa.field("body_region", pa.string()),
    pa.field("run_id", pa.string()),
]
assert tuple(f.name for f in DECISION_FIELDS) == DECISION_COLUMNS


@dataclass
class Execution:
    """What a run produced, besides its files."""

    run_id: str
    inputs: list[dict[str, object]]
    ledger: LedgerState | None
    files: list[FileCounts]
    parts: SummaryParts
    register_valid_rows: int
    outputs: list[dict[str, object]] = field(default_factory=list)

    @property
    def claim_rows(self) -> int:
        return sum(f.rows for f in self.files if f.source == "claims")

    @property
    def rejected_claim_rows(self) -> int:
        return sum(f.rejected for f in self.files if f.source == "claims")


def run_id_for(parts: Sequence[str]) -> str:
    """A run's id: a digest of its inputs (paths as given, in order, and content), its
    as-of, its rules and its ledger."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def member_partition_count(claim_rows: int, register_rows: int, rows_per_partition: int) -> int:
    """Enough member partitions for the claim lines (``rows_per_partition`` each) and
    for the register's state, which is scattered by member too (:data:`STATE_SHARE`)."""
    return max(
        partitions_for(claim_rows, rows_per_partition),
        partitions_for(register_rows, rows_per_partition * STATE_SHARE),
    )


def estimated_rows(paths: Sequence[str]) -> int:
    """About how many rows the files hold, before they are read: a Parquet file's from
    its footer, a CSV file's by its size and its lines' width (:func:`rows_by_size`)."""
    rows = 0
    for path in paths:
        if path.lower().endswith(".parquet"):
            rows += pq.ParquetFile(path).metadata.num_rows
        else:
            rows += rows_by_size(path)
    return rows


def partitions_for(rows: int, rows_per_partition: int) -> int:
    """Enough partitions that each holds about ``rows_per_partition`` of ``rows``."""
    return max(1, math.ceil(rows / rows_per_partition))


def parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The writer of ``adjudicated.parquet`` and of each of its row groups.

    No Arrow schema is stored in the file: the Parquet schema alone reads back as the
    published one (text, decimals, booleans, integers), whether a column was written
    from text or from a dictionary of text (``CODED_COLUMNS``)."""
    return pq.ParquetWriter(
        str(path),
        schema,
        store_schema=False,
        compression="zstd",
        use_dictionary=[name for name in schema.names if name not in PLAIN_COLUMNS],
        write_statistics=[name for name in SORTED_BY if name in schema.names],
    )


def _sort_keys(table: pa.Table) -> pa.Array:
    keys = table.select(list(SORTED_BY))
    line = SORTED_BY.index("claim_line_number")  # as a number: line 10 after line 9
    keys = keys.set_column(line, SORTED_BY[line], pc.cast(keys.column(line), pa.int64()))
    file = SORTED_BY.index(SOURCE_FILE)
    keys = keys.set_column(file, SOURCE_FILE, _ranked(keys.column(file)))
    return pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in SORTED_BY])


def _ranked(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column of dictionaries (``CODED``) as each value's rank in its text's order:
    Arrow sorts no dictionaries."""
    return pa.chunked_array(
        [
            pc.take(pc.rank(chunk.dictionary, tiebreaker="dense"), chunk.indices)
            for chunk in column.chunks
        ],
        pa.uint64(),
    )


def _range_of(claim_ids: pa.ChunkedArray | pa.Array, bounds: pa.Array) -> np.ndarray:
    """Which sorted range each claim id falls in: how many of the (sorted) bounds are
    at or below it (a missing id: all of them). Ids of one width are looked up among
    the bounds by their bytes (:func:`_range_of_bytes`); otherwise one sort of the ids
    and the bounds together, with a bound before an equal id (comparing every id with
    every bound grew with the square of the input)."""
    if len(bounds) == 0:
        return np.zeros(len(claim_ids), dtype=np.int64)
    ids = claim_ids.combine_chunks() if isinstance(claim_ids, pa.ChunkedArray) else claim_ids
    found = _range_of_bytes(ids.cast(pa.string()), bounds.cast(pa.string()))
    if found is not None:
        return found
    together = pa.table(
        {
            "value": pa.concat_arrays([bounds.cast(pa.string()), ids.cast(pa.string())]),
            "is_id": np.concatenate([np.zeros(len(bounds), bool), np.ones(len(ids), bool)]),
        }
    )
    order = pc.sort_indices(
        together, sort_keys=[("value", "ascending"), ("is_id", "ascending")]
    ).to_numpy()
    bounds_so_far = np.cumsum(order < len(bounds))
    bucket = np.empty(len(ids), dtype=np.int64)
    at_ids = order >= len(bounds)
    bucket[order[at_ids] - len(bounds)] = bounds_so_far[at_ids]
    return bucket


def _range_of_bytes(ids: pa.Array, bounds: pa.Array) -> np.ndarray | None:
    """:func:`_range_of` where every id present has one width and no bound is longer:
    a binary search of each id's bytes among the bounds'. NumPy compares fixed-width
    bytes, the shorter bounds padded with zero bytes, and counts a bound the same as
    Arrow's order would (a bound that is a prefix of an id is at or below it either
    way). 200,000 ids among 75 bounds: 46.5 ms -> 11.5 ms. None otherwise."""
    present = len(ids) - ids.null_count
    if present == 0:
        return None
    width = int(pc.max(pc.binary_length(ids)).as_py())
    rows, values = fixed_width(ids, width)
    longest = pc.max(pc.binary_length(bounds)).as_py()
    if len(rows) != present or longest > width:
        return None
    keys = np.ascontiguousarray(values).view(f"S{width}").ravel()
    sorted_bounds = np.array(bounds.cast(pa.binary()).to_pylist(), dtype=f"S{width}")
    ranges = np.full(len(ids), len(bounds), dtype=np.int64)  # a missing id sorts last
    ranges[rows] = np.searchsorted(sorted_bounds, keys, side="right")
    return ranges


def sample_every(lines: int) -> int:
    """One claim in how many is sampled, for about ``lines`` claim lines: at least
    ``SAMPLE_EVERY``, and thinner past ``SAMPLED_LINES`` lines."""
    return SAMPLE_EVERY * max(1, math.ceil(lines / (SAMPLED_LINES * SAMPLE_EVERY)))


def _range_bounds(sample: list[pa.Array], ranges: int) -> pa.Array:
    """Claim ids that split the sorted output into about ``ranges`` ranges. The
    ``sample`` is sorted, and its distinct ids found next to each other: Arrow's
    ``unique`` held a table of hashes of some 40 MiB besides (at 50M lines, the sample's
    ids three times over: 17.6 MiB against 53.8)."""
    if ranges <= 1 or not sample:
        return pa.array([], pa.string())
    values = pa.chunked_array(sample, pa.string())
    ordered = values.take(pc.sort_indices(values)).combine_chunks()
    if len(ordered) == 0:
        return pa.array([], pa.string())
    rest = ordered.slice(1)
    ordered = pa.concat_arrays(
        [ordered.slice(0, 1), rest.filter(pc.not_equal(rest, ordered.slice(0, len(rest))))]
    )
    picks = sorted({int(len(ordered) * i / ranges) for i in range(1, ranges)})
    return pc.take(ordered, pa.array(picks, pa.int64()))  # distinct places of distinct ids


def execute(
    claims: Sequence[str],
    authorizations: str,
    as_of: datetime,
    rules: Rules,
    directory: Path,
    *,
    ledger: Path | None = None,
    ledger_entries: Sequence[str] | None = None,
    rows_per_partition: int = ROWS_PER_PARTITION,
    observer: Observer | None = None,
    workers: int = WORKERS,
) -> Execution:
    """Run the job and write its data files into ``directory``."""
    observer = observer or Silent()
    prepare_process()
    schema = text_schema(
        claims,
        contract=claims_contract.CONTRACT_COLUMNS,
        required=claims_contract.REQUIRED_COLUMNS,
        one_of=[("claim_line_start_date", "claim_start_date")],
        reserved=ADDED_COLUMNS,
    )
    register_schema = text_schema(
        [authorizations],
        contract=register_contract.CONTRACT_COLUMNS,
        required=register_contract.REQUIRED_COLUMNS,
    )
    # Contract columns no file has are added, empty (25 of them in a file with two
    # diagnoses and two modifiers): carried through no spill, they are added back to
    # the lines decided and written.
    lacked = lacked_by_all(claims, claims_contract.CONTRACT_COLUMNS)
    # Each file measured once (a CSV file at nine places: :func:`rows_by_size`).
    partitions = member_partition_count(
        claim_rows := estimated_rows(claims),
        register_rows := estimated_rows([authorizations]),
        rows_per_partition,
    )
    workers = workers if partitions > 1 else 1
    partitions = math.ceil(partitions / workers) * workers  # no worker left to finish alone
    read_as = {path: signature(path) for path in dict.fromkeys([*claims, authorizations])}
    # Spans and digests (each reads the files once) beside the register's reading: the
    # spans first, the reading waits for them (the command may have cut them already).
    with _blamed_on_change(read_as), ThreadPoolExecutor(max_workers=2) as beside:
        cut = beside.submit(
            lambda: [(n, span) for n, path in enumerate(claims) for span in _spans(path, workers)]
        )
        # A file cut as the command started is held to what it was then.
        read_as |= {
            path: was for path in claims if (was := cut_early_signature(path, workers)) is not None
        }
        digests: dict[str, Future[str]] = {
            path: beside.submit(sha256_of, path)
            for path in dict.fromkeys([*claims, authorizations])
        }
        index_partitions = math.ceil(partitions / INDEX_SHARE)
        ranges = partitions_for(claim_rows, ROWS_PER_GROUP)  # about: lines not counted yet
        # A decide task writes to every output range twice, its lines and its rejects,
        # and its rejects without a claim id to about as many blocks of rows.
        open_files = partitions + index_partitions + 3 * ranges + OPEN_FILES_MARGIN
        _allow_open_files(open_files)
        files = {path: FileCounts(path, "claims") for path in claims}
        register_file = FileCounts(authorizations, "authorizations")
        ledger_state = read_ledger(ledger, only=ledger_entries) if ledger is not None else None
        output_schema = _output_schema(schema)
        with (
            _spill_root(directory) as where,
            Spill(
                partitions_for(register_rows, max(1, rows_per_partition // REGISTER_SHARE)),
                register_schema,
                where,
            ) as by_key,
            Spill(partitions, STATE_SCHEMA, where) as state_by_member,
            Spill(
                partitions, _without(schema, [*lacked, SOURCE_FILE]).append(SPAN), where
            ) as by_member,
            Spill(index_partitions, INDEX_SCHEMA, where) as claim_index,
            Spill(1, SPLIT_SCHEMA, where) as sampled,
            Spill(partitions, SPLIT_SCHEMA, where) as split_ids,
            Spill(
                partitions_for(register_rows, ROWS_PER_GROUP), REJECTS_SPILLED, where
            ) as register_rejects,
            _workers(workers) as pool,
        ):
            context = _Context(
                as_of,
                rules,
                partitions,
                by_member,
                claims_schema=schema,
                open_files=open_files,
                spans=cut.result(),
                **_files_of(cut.result()),  # the one list the cutting made
                claim_index=claim_index,
                sampled=sampled,
                sample_every=sample_every(ranges * ROWS_PER_GROUP),
                split_ids=split_ids,
                state_by_member=state_by_member,
                register_rejects=register_rejects,
                block_rows=ROWS_PER_GROUP,
                ledger_state=ledger_state,
                ledger_partition=None
                if ledger_state is None
                else partition_of(
                    pa.array(ledger_state.rows["member_id"].astype("str"), pa.string()),
                    partitions,
                ),
            )
            # The claims' reading is queued first, so that the workers start on it as
            # soon as they are ready, while this process scatters the register (queued
            # behind the register's scatter and tasks, the reading had started 2-4 s
            # later at 10M lines: README, Partitions). The register's tasks follow the
            # reading. The reading's tasks are handed a context without the register's
            # spill, which is being written as they are handed over.
            reading = pool(_read_task, context, len(context.spans))
            _scatter_register(authorizations, register_schema, by_key, register_file)
            by_key.close_writers()
            _hand_back()  # what scattering the register took
            context = replace(context, register_by_key=by_key)
            registered = pool(_register_task, context, by_key.partitions)
            context, bounds, batches = _read_pass(reading, context, files, observer)
            _close_reading(pool, context, batches)
            inputs, run_id = _identity(
                [*files.values(), register_file], digests, as_of, rules, ledger_state
            )
            _refuse_changed(read_as, context.spans)  # every input read, its digest taken
            _refuse_copies(inputs)
            with (
                Spill(len(bounds) + 1, _coded(_without(output_schema, lacked)), where) as by_range,
                Spill(
                    len(bounds) + 2 + _row_blocks(files), REJECTS_SPILLED, where
                ) as claim_rejects,
            ):
                context = replace(
                    context,
                    by_range=by_range,
                    claim_rejects=claim_rejects,
                    rows_before_file=_rows_before_file(files),
                    bounds=bounds,
                    run_id=run_id,
                )
                context, register_valid_rows, split_rows = _split_pass(
                    pool,
                    context,
                    index_partitions,
                    registered=registered,
                    register_file=register_file,
                    observer=observer,
                )
                # Lines of claims across members, set aside: partitions of the usual size.
                # Its directory is removed with the spill root's, as the run ends: removed
                # here, between passes, the workers would wait while the disk is told of
                # its blocks behind the discards of the files just read.
                split_lines = Spill(
                    max(1, math.ceil(split_rows / rows_per_partition)), schema, where
                )
                parts, units = _decide_pass(
                    pool, replace(context, split_lines=split_lines), files, observer
                )
                by_range.close_writers()
                adjudicated_rows, adjudicated_digest = _write_pass(
                    pool, context, directory / "adjudicated.parquet", observer
                )
                rejected_rows = _write_rejects(context, directory / "rejects.parquet")
    outputs = [
        ("adjudicated.parquet", adjudicated_rows),
        ("rejects.parquet", rejected_rows),
        *_write_units(directory, units if ledger is not None else None),
    ]
    known = {"adjudicated.parquet": adjudicated_digest}
    execution = Execution(
        run_id=run_id,
        inputs=inputs,
        ledger=ledger_state,
        files=[*files.values(), register_file],
        parts=parts,
        register_valid_rows=register_valid_rows,
    )
    write_json(summary_of(execution, as_of, rules), directory / "summary.json")
    execution.outputs = [
        {"path": name, "sha256": known.get(name) or sha256_of(directory / name), "rows": rows}
        for name, rows in outputs
    ] + [{"path": "summary.json", "sha256": sha256_of(directory / "summary.json"), "rows": None}]
    execution.outputs.sort(key=lambda f: str(f["path"]))
    observer.finish("writing")
    return execution


def _write_rejects(context: _Context, path: Path) -> int:
    """rejects.parquet from the rejects spilled by the tasks: the claims' a range of
    ``claim_id`` at a time, in the ranges' order (a range too big, in parts of its own:
    :func:`_sorted_rejects`), then the register's, each sorted as it is read
    (:mod:`pipeline.rejects`); how many rows."""
    assert context.claim_rejects is not None and context.register_rejects is not None
    claims, register = context.claim_rejects, context.register_rejects

    def pieces() -> Iterator[pa.Table]:
        claims.close_writers()
        for partition in range(claims.partitions):
            yield from _sorted_rejects(context, claims, partition)
        for _, table in register:  # its partitions in order, its writers closed first
            let_go_of_read_files()
            if table.num_rows:
                yield take_rows(table, order(table))

    return write_sorted(pieces(), path)


def _sorted_rejects(context: _Context, spill: Spill, partition: int) -> Iterator[pa.Table]:
    """A partition of claim lines' rejects, sorted: at once, up to a row group of them
    (:data:`ROW_GROUP_ROWS`); past it, a part at a time.

    A partition is one range of ``claim_id``, whole claims, so one claim id on many
    lines makes it big; the rejects with a line number but no claim id are one
    partition, as they sort by line before file and row. Counted first (their files
    mapped, read no further than the pieces' sizes), a partition too big is read twice,
    a piece at a time: to sample one reject in :data:`SAMPLE_ONE_IN` and cut them into
    parts of about ``ROWS_PER_GROUP`` (:func:`cut_points`), then to spill each reject to
    its part (:func:`parts_of`); each part is then sorted in turn. A feed of 10M lines
    whose ``claim_id`` came empty: the parent peaked at 591 MiB, against 2,828 sorting
    them at once."""
    rows = sum(piece.num_rows for piece in spill.pieces(partition, keep=True))
    if rows <= ROW_GROUP_ROWS:
        table = spill.read(partition)
        let_go_of_read_files()
        if table.num_rows:
            yield take_rows(table, order(table))
        return
    cuts = cut_points(_sampled(context, spill, partition), partitions_for(rows, ROWS_PER_GROUP))
    with Spill(cuts.num_rows + 1, spill.schema, spill.directory.parent) as parted:
        for piece in spill.pieces(partition, mapped=False):
            # Each part's file closed once written (one open at a time, however many).
            parted.add(piece, parts_of(_cut_keys(context, piece), cuts), once=True)
        let_go_of_read_files()
        for _, table in parted:
            let_go_of_read_files()
            if table.num_rows:
                yield take_rows(table, order(table))


def _sampled(context: _Context, spill: Spill, partition: int) -> pa.Table:
    """One in :data:`SAMPLE_ONE_IN` of a partition's rejects, as the keys they are cut by
    (:func:`_cut_keys`). Read a piece at a time into memory, the files kept to be read
    again: mapped, a file's pages stay with the process until its every piece is let go
    of (a file a worker, 470 MB of them at 10M lines)."""
    sampled = [
        _cut_keys(context, piece.take(np.arange(0, piece.num_rows, SAMPLE_ONE_IN)))
        for piece in spill.pieces(partition, mapped=False, keep=True)
    ]
    return pa.concat_tables(sampled)


def _cut_keys(context: _Context, rejects: pa.Table) -> pa.Table:
    """Claim lines' rejects as the keys a partition of them is cut by (:data:`CUT_BY`)."""
    assert context.rows_before_file is not None
    keys = rejects.select(["claim_id", LINE_KEY])
    return keys.append_column(PLACE, pa.array(_row_places(rejects, context.rows_before_file)))


def _write_units(directory: Path, units: list[pd.DataFrame] | None) -> list[tuple[str, int]]:
    """units.parquet for a run with a ledger: its name and rows."""
    if units is None:
        return []
    entry = sorted_entry(units)
    path = directory / "units.parquet"
    return [("units.parquet", write_parquet(entry, path, schema=LEDGER_SCHEMA))]


def _allow_open_files(needed: int) -> None:
    """A spill being written keeps a file per partition open: let this process (and
    the workers it starts) open ``needed`` files, raising its soft limit as far as the
    hard one allows, or say what to change."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    allowed = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (allowed, hard))
    if allowed < needed:
        raise PipelineError(
            f"the run needs about {needed:,} open files (a file per partition) but may open "
            f"only {allowed:,}: raise the limit (ulimit -n) or --partition-rows"
        )


@contextmanager
def _spill_root(directory: Path) -> Iterator[Path]:
    """Where a run's spill files go: a hidden directory inside its (staging) output
    directory, removed when the run ends; a killed run leaves them only there."""
    root = Path(tempfile.mkdtemp(prefix=".spill-", dir=directory))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _identity(
    files: list[FileCounts],
    digests: dict[str, Future[str]],
    as_of: datetime,
    rules: Rules,
    ledger_state: LedgerState | None,
) -> tuple[list[dict[str, object]], str]:
    """The manifest's inputs (content digests and rows) and the run's id."""
    inputs: list[dict[str, object]] = [
        {"source": f.source, "path": f.path, "sha256": digests[f.path].result(), "rows": f.rows}
        for f in files
    ]
    # Each input's path as given, in order, beside its content: the lines carry the path
    # (source_file), and the files' order cuts the row groups. A run given a ledger
    # says so even where it holds no entries yet: it publishes units.parquet.
    ledger = (
        () if ledger_state is None else ("ledger", *(f"{n}:{s}" for n, s in ledger_state.entries))
    )
    run_id = run_id_for(
        [
            *(f"{i['source']}:{i['path']}:{i['sha256']}" for i in inputs),
            as_of.isoformat(),
            rules.digest,
            *ledger,
        ]
    )
    return inputs, run_id


def _scatter_register(path: str, schema: pa.Schema, spill: Spill, counts: FileCounts) -> None:
    """The register's rows to partitions by ``authorization_id``: every version of an
    authorization meets, for its checks and for its state as of the run."""
    for batch in text_batches(path, schema, register_contract.CONTRACT_COLUMNS):
        counts.rows += batch.num_rows
        spill.add(batch, partition_of(batch.column("authorization_id"), spill.partitions))


def _register_pass(
    registered: Iterator[tuple[dict[str, FileCounts], set[str], int]],
    context: _Context,
    counts: FileCounts,
) -> tuple[_Context, int]:
    """The register's partitions validated (``registered``: the results of
    :func:`_register_task`, in order): the context with the members of its invalid rows,
    and how many rows were valid."""
    assert context.state_by_member is not None
    invalid_members: set[str] = set()
    valid = 0
    for found_counts, invalid, valid_rows in registered:
        merge_counts({counts.path: counts}, found_counts)
        invalid_members.update(invalid)
        valid += valid_rows
    context.state_by_member.close_writers()
    return replace(context, invalid_members=frozenset(invalid_members)), valid


def _split_pass(
    pool: _Runner[Any],
    context: _Context,
    index_partitions: int,
    *,
    registered: Iterator[tuple[dict[str, FileCounts], set[str], int]],
    register_file: FileCounts,
    observer: Observer,
) -> tuple[_Context, int, int]:
    """Pass 2 over the claim index (:func:`_split_task`), and the register's results
    taken meanwhile (:func:`_register_pass`): the context with the register's invalid
    members, the register's valid rows, and how many lines are of claims across members.

    The index's tasks are queued before the register's results are taken: a worker done
    with the reading goes on to the index while the other validates the register (at 1M
    lines one task, which had run alone)."""
    split_ids = context.split_ids
    assert split_ids is not None
    splitting = pool(_split_task, context, index_partitions)
    context, register_valid_rows = _register_pass(registered, context, register_file)
    split_rows = 0
    for indexed, split in splitting:
        split_rows += split
        observer.advance("validating", indexed)
    split_ids.close_writers()
    observer.finish("validating")
    return context, register_valid_rows, split_rows


def _decide_pass(
    pool: _Runner[Any],
    context: _Context,
    files: dict[str, FileCounts],
    observer: Observer,
) -> tuple[SummaryParts, list[pd.DataFrame]]:
    """Validate and decide every member partition, then validate the lines set aside
    (claims across members): the summary's figures and the ledger entry's parts.
    Counts are added to ``files``; the tasks spill their rejects."""
    assert context.split_lines is not None
    parts = SummaryParts()
    units: list[pd.DataFrame] = []
    for counts, found_parts, found_units, rows in pool(_decide_task, context, context.partitions):
        merge_counts(files, counts)
        parts.merge(found_parts)
        if found_units is not None:
            units.append(found_units)
        observer.advance("deciding", rows)
    context.split_lines.close_writers()
    for counts in pool(_set_aside_task, context, context.split_lines.partitions):
        merge_counts(files, counts)
    observer.finish("deciding", parts.decisions())
    return parts, units


def _read_pass(
    reading: Iterator[tuple[int, int]],
    context: _Context,
    files: dict[str, FileCounts],
    observer: Observer,
) -> tuple[_Context, pa.Array, int]:
    """Pass 1, span by span (``reading``: the results of :func:`_read_task`, in the
    order of ``context.spans``): the context with where each span's rows start in its file,
    the claim ids that split the output into ranges (from a sample of them: one claim
    in 64, each once, about 6 MB of ids at 50M lines and no more past 134M
    (:func:`sample_every`), spilled by the reading tasks and read here once they are
    done, not beside their reading), and how many batches were read (the most pieces a
    partition was written in)."""
    assert context.sampled is not None
    rows_before = np.zeros(len(context.spans), dtype=np.int64)
    in_file: dict[int, int] = {}
    batches = 0
    for index, (rows, read) in enumerate(reading):
        ordinal, span = context.spans[index]
        rows_before[index] = in_file.get(ordinal, 0)
        in_file[ordinal] = rows_before[index] + rows
        files[span.path].rows += rows
        batches += read
        observer.advance("reading", rows)
    observer.finish("reading")
    ranges = math.ceil(sum(in_file.values()) / ROWS_PER_GROUP)  # by the lines alone
    context.sampled.close_writers()
    bounds = _range_bounds(context.sampled.read(0).column("claim_id").chunks, ranges)
    _hand_back()  # the sample's memory, kept by the allocators otherwise
    return replace(context, rows_before=rows_before), bounds, batches


def _close_reading(pool: _Runner[Any], context: _Context, batches: int) -> None:
    """After pass 1: its spills' files closed, and, where the claims were read in more
    than ``MAX_PIECES`` ``batches``, each member partition and claim-index partition
    gathered into one piece (:func:`_gather_task`)."""
    assert context.claim_index is not None
    context.by_member.close_writers()
    context.claim_index.close_writers()
    if batches > MAX_PIECES:
        for _ in pool(_gather_task, context, context.partitions):
            pass


def _output_schema(claims_schema: pa.Schema) -> pa.Schema:
    """The decided lines' columns: the claim lines' and the decision's."""
    return pa.schema([*claims_schema, *DECISION_FIELDS])


def _coded(schema: pa.Schema) -> pa.Schema:
    """``schema`` with ``CODED_COLUMNS`` as dictionaries: the output as spilled and
    encoded."""
    return pa.schema(
        [field.with_type(CODED) if field.name in CODED_COLUMNS else field for field in schema]
    )


def _write_pass(
    pool: _Runner[Any], context: _Context, path: Path, observer: Observer
) -> tuple[int, str]:
    """Pass 4: each range sorted and encoded by a task, its row group joined to the file
    at ``path`` in order (a file of no rows is written by one writer); the rows written
    and the file's SHA-256 (hashed as it is joined, beside the workers' encoding, where
    reading it again after took 0.17 s at 10M lines)."""
    assert context.by_range is not None
    with JoinedParquet(path) as joined:
        for part, rows in pool(_write_task, context, context.by_range.partitions):
            if part is not None:
                joined.add(part)
                part.unlink()
            observer.advance("writing", rows)
        if joined.groups:
            return joined.close(), joined.digest.hexdigest()
    parquet_writer(path, _output_schema(context.claims_schema)).close()
    return 0, sha256_of(path)


def _write_task(index: int) -> tuple[Path | None, int]:
    """Pass 4 for one range of the output: its lines sorted and written as a Parquet
    file of one row group, beside the range's spill (None for no lines), and how many."""
    context = _context()
    assert context.by_range is not None
    release_writers()  # the decide pass's, open on the ranges this pass reads and deletes
    many = context.partitions > MAX_PIECES  # the range comes in a piece a member partition
    table = context.by_range.read(index, combine_every=COMBINE_EVERY if many else 0)
    if table.num_rows == 0:
        return None, 0
    schema = _coded(_output_schema(context.claims_schema))
    part = context.by_range.directory / f"part-{index:05d}.parquet"
    with parquet_writer(part, schema) as writer:
        ordered = _filled(take_rows(table, _sort_keys(table)), schema)
        writer.write_table(ordered, row_group_size=ordered.num_rows)
    return part, ordered.num_rows


def _read_task(index: int) -> tuple[int, int]:
    """Pass 1 for one span of a claims file: every row to its member's partition, and
    its claim id and member partition to the claim's index partition (see
    :meth:`Spill.writer`), and a sample of its claim ids to ``sampled``. The span's rows
    and the batches it was read in."""
    context = _context()
    assert context.claim_index is not None and context.sampled is not None
    [(_, span)] = context.spans  # its own alone (see _slim)
    reading = [context.by_member, context.claim_index, context.sampled]
    by_member, claim_index, sampled = (spill.writer(beside=reading) for spill in reading)
    schema = context.by_member.schema.remove(context.by_member.schema.get_field_index(SPAN.name))
    rows = batches = 0
    sample: list[pa.Array] = []
    for batch in text_batches(span.path, schema, claims_contract.CONTRACT_COLUMNS, span=span):
        # A line without a member goes by its claim: lines without one would otherwise
        # all meet in one partition (they are rejected; their claim is split if another
        # of its lines names a member).
        members = pc.coalesce(batch.column("member_id"), batch.column("claim_id"))
        part = partition_of(members, by_member.partitions)
        part = dealt(part, members, rows, by_member.partitions)
        by_member.add(
            batch.append_column(SPAN, pa.array(np.full(batch.num_rows, index, np.int32))), part
        )
        hashed = stable_hash(batch.column("claim_id"))
        lines = pa.table(
            [batch.column("claim_id"), pa.array(part.astype(np.int32))], schema=INDEX_SCHEMA
        )
        by_claim = (hashed % np.uint64(claim_index.partitions)).astype(np.int64)
        claim_index.add(
            lines, dealt(by_claim, batch.column("claim_id"), rows, claim_index.partitions)
        )
        rows += batch.num_rows
        batches += 1
        picked = (hashed >> np.uint64(40)) % np.uint64(context.sample_every) == 0
        sample.append(
            pc.drop_null(batch.column("claim_id").filter(pa.array(picked))).combine_chunks()
        )
    if sample:
        # A claim once, not once a line: the sample the parent reads and sorts is some
        # 1.9 times smaller (the benchmark's claims), and the ranges' bounds the same.
        ids = pc.unique(pa.concat_arrays(sample))
        sampled.add(pa.table([ids], schema=SPLIT_SCHEMA), np.zeros(len(ids), np.int64))
    return rows, batches


def dealt(partition: np.ndarray, keys: pa.ChunkedArray, first: int, count: int) -> np.ndarray:
    """``partition`` with the rows whose key is missing dealt round the ``count``
    partitions by their place in the span (``first``: the batch's first row's). Such a
    line (no member and no claim id; in the claim index, no claim id) is rejected for
    that, and meets no other line in a check: otherwise all of them went to one
    partition, and a feed's 400,000 blank rows made one of 400,000 lines (a run of
    the benchmark's 1M lines and them peaked at 2,260 MiB; dealt, 1,525; with the
    rejects spilled too, in blocks of rows, 1,357: :func:`_spill_rejects`)."""
    missing = np.flatnonzero(keys.is_null().to_numpy(zero_copy_only=False))
    if len(missing):
        partition = partition.copy()
        partition[missing] = (first + missing) % count
    return partition


def _gather_task(index: int) -> None:
    """Member partition ``index``, and the claim index's partition ``index`` if there is
    one, each gathered into one piece (:meth:`Spill.gather`)."""
    context = _context()
    assert context.claim_index is not None
    release_writers()  # the reading's files, all written: their disk is freed once read
    if index < context.claim_index.partitions:
        context.claim_index.gather(index)
    context.by_member.gather(index)


def _spans(path: str, ways: int) -> list[Span]:
    """``path``'s spans for ``ways`` readers: those the command cut as it started, else
    cut now."""
    early = cut_early(path, ways)
    return early if early is not None else spans_of(path, ways=ways)


def _without(schema: pa.Schema, names: Sequence[str]) -> pa.Schema:
    """``schema`` without the fields ``names``."""
    return pa.schema([field for field in schema if field.name not in names])


def _filled(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: the columns it lacks added, empty."""
    present = set(table.column_names)
    lacked = [field.type for field in schema if field.name not in present]
    empty = iter(empty_columns(len(table), lacked))
    columns = [
        table.column(field.name) if field.name in present else next(empty) for field in schema
    ]
    return pa.table(columns, schema=schema)


def _numbered(table: pa.Table, context: _Context) -> pa.Table:
    """Spilled claim lines with their rows numbered within their files, not their spans,
    and their files named (the spill carries each line's span, not its file's path)."""
    assert context.rows_before is not None and context.span_files is not None
    span = table.column(SPAN.name).to_numpy()
    rows = table.column(SOURCE_ROW).to_numpy() + context.rows_before[span]
    files = pa.DictionaryArray.from_arrays(
        context.span_files[span], pa.array(context.paths, pa.string())
    )
    table = table.drop_columns([SPAN.name]).append_column(SOURCE_FILE, files)
    return table.set_column(table.schema.get_field_index(SOURCE_ROW), SOURCE_ROW, pa.array(rows))


def _refuse_changed(read_as: dict[str, Signature], spans: Sequence[tuple[int, Span]] = ()) -> None:
    """Refuse a run whose inputs changed while it read them: its lines would be of two
    versions of a file, or of one its manifest's digest is not. A file's spans must
    reach the size it was found at."""
    cut_to: dict[str, int] = {}
    for _, span in spans:
        if span.end is not None:
            cut_to[span.path] = max(cut_to.get(span.path, 0), span.end)
    for path, was in read_as.items():
        try:
            now = signature(path)
        except OSError:
            now = None
        if now != was or cut_to.get(path, was[2]) != was[2]:
            raise InputChanged(
                f"{path}: changed while the run read it (written to, or another file put "
                "in its place); run again once the file is complete"
            )


@contextmanager
def _blamed_on_change(read_as: dict[str, Signature]) -> Iterator[None]:
    """A reading that failed on a file that changed meanwhile (a row cut in two, a
    field count gone wrong) is told as the change, not as a defect of the file."""
    try:
        yield
    except PipelineError as error:
        _refuse_changed(read_as)
        raise error


def _refuse_copies(inputs: list[dict[str, object]]) -> None:
    """Refuse claims files of the same bytes under two names: each line would be read
    twice, and every one rejected as its own copy. Files with no rows may be alike."""
    seen: dict[object, object] = {}
    for entry in inputs:
        if entry["source"] != "claims" or not entry["rows"]:
            continue
        if entry["sha256"] in seen:
            raise InputError(
                f"{seen[entry['sha256']]} and {entry['path']} hold the same bytes: one file "
                "given twice under two names, whose every line would be rejected as a copy"
            )
        seen[entry["sha256"]] = entry["path"]


def _standing() -> str | None:
    """This process's working directory; None where it is gone (the command refuses
    to start there; this is for a caller of the engine that did not check)."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class _Context:
    """What every worker needs, handed over once when the worker starts."""

    as_of: datetime
    rules: Rules
    partitions: int
    by_member: Spill
    claims_schema: pa.Schema
    """Every column of the claim lines; ``by_member`` and ``by_range`` leave out the
    contract columns no claims file has (added back, empty, where they are read), and
    ``by_member`` each line's file, named by its span (some 50 bytes a line)."""
    open_files: int = 0
    """The files a process may need open at once (:func:`_allow_open_files`): workers
    started ahead of the run raise their own limit to it."""
    spans: list[tuple[int, Span]] = field(default_factory=list)
    """Each span with its file's place in the claims files given (a file given twice is
    numbered twice from 1, as two files are). A reading task's context holds its own
    span alone, and other tasks' none (:func:`_slim`): with a span a file, a run of
    4,000 files shipped each of its 4,000 reading tasks all 4,000 spans."""
    paths: tuple[str, ...] = ()
    """The claims files' paths, each once, in the order given."""
    span_files: np.ndarray | None = None
    """Each span's file, its place in ``paths``."""
    rows_before: np.ndarray | None = None
    claim_index: Spill | None = None
    sampled: Spill | None = None
    """Pass 1's sample of claim ids (see :func:`_read_pass`)."""
    sample_every: int = SAMPLE_EVERY
    """One claim in how many is sampled (:func:`sample_every`)."""
    split_ids: Spill | None = None
    split_lines: Spill | None = None
    register_by_key: Spill | None = None
    state_by_member: Spill | None = None
    by_range: Spill | None = None
    register_rejects: Spill | None = None
    """The register's rejects, a file a register task (written beside the reading)."""
    claim_rejects: Spill | None = None
    """The claim lines' rejects, by the output's ranges of ``claim_id`` (see
    :func:`_spill_rejects`)."""
    rows_before_file: dict[str, int] | None = None
    """Each claims file's rows before it among the files, their paths sorted."""
    block_rows: int = ROWS_PER_GROUP
    """Rows a block of the rejects spilled by their row (:func:`_in_blocks`)."""
    bounds: pa.Array | None = None
    run_id: str = ""
    invalid_members: frozenset[str] = frozenset()
    ledger_state: LedgerState | None = None
    ledger_partition: np.ndarray | None = None
    working_directory: str | None = field(default_factory=_standing)
    """Where the run stands, which its relative paths are read from: workers started
    ahead of it stand where the command started (``verify`` then moves into the
    run's recorded working directory), and move here for each task."""


_CONTEXT: _Context | None = None


def _files_of(spans: Sequence[tuple[int, Span]]) -> dict[str, Any]:
    """The ``paths`` and ``span_files`` of a context with these spans."""
    places: dict[str, int] = {}
    span_files = [places.setdefault(span.path, len(places)) for _, span in spans]
    return {"paths": tuple(places), "span_files": np.array(span_files, np.int32)}


def _slim(context: _Context, task: Callable[[int], Any], index: int) -> _Context:
    """Only what one task needs: a reading task its own span (see ``_Context.spans``),
    a partition's decisions only its members' ledger rows; nothing else needs the
    ledger."""
    context = replace(context, spans=[context.spans[index]] if task is _read_task else [])
    ledger_state = context.ledger_state
    if task is not _decide_task or ledger_state is None:
        return replace(context, ledger_state=None, ledger_partition=None)
    if context.ledger_partition is not None:
        mine = context.ledger_partition == index
        ledger_state = replace(ledger_state, rows=ledger_state.rows[mine])
    return replace(context, ledger_state=ledger_state, ledger_partition=None)


def _enter(context: _Context) -> None:
    global _CONTEXT  # noqa: PLW0603 (one context per worker process, set once)
    _CONTEXT = context
    _allow_open_files(context.open_files)  # a worker's own limit, as the run's was raised
    if context.working_directory is not None:
        os.chdir(context.working_directory)


def _context() -> _Context:
    assert _CONTEXT is not None, "a worker runs only after _enter"
    return _CONTEXT


def _validated(
    table: pa.Table, validate: Callable[[pd.DataFrame], Validated], source: str
) -> tuple[Validated | None, dict[str, FileCounts]]:
    """Rows of an input validated, with their counts per file (None for no rows)."""
    if table.num_rows == 0:
        return None, {}
    validated = validate(to_frame(table))
    paths = pc.unique(table.column(SOURCE_FILE)).to_pylist()
    counts = {path: FileCounts(path, source) for path in paths}
    count_validated(counts, validated)
    return validated, counts


def _claims_validated(
    table: pa.Table, context: _Context
) -> tuple[Validated | None, dict[str, FileCounts]]:
    """Claim lines validated at the run's as-of, with their counts per file."""
    # What the checks computed stays remembered for the kernel (the claim codes); the
    # task lets go of it as it ends (_hand_back).
    check = functools.partial(validate_claims, as_of=context.as_of, remember=True)
    return _validated(table, check, "claims")


def _register_task(index: int) -> tuple[dict[str, FileCounts], set[str], int]:
    """Register pass for one partition of authorizations: its counts, the members of its
    invalid rows, and how many rows are valid; its rejects spilled, and its state as of
    the run scattered to the members' partitions."""
    context = _context()
    assert context.register_by_key is not None and context.state_by_member is not None
    assert context.register_rejects is not None
    validated, counts = _validated(
        context.register_by_key.read(index), validate_authorizations, "authorizations"
    )
    if validated is None:
        return {}, set(), 0
    known, invalid = state_and_invalid_members(validated, context.as_of)
    state = pa.Table.from_pandas(known, schema=STATE_SCHEMA, preserve_index=False)
    # A worker reads or indexes claims between register tasks, its task writers open on
    # other spills.
    context.state_by_member.add_as(
        index, state, partition_of(state.column("member_id"), context.partitions)
    )
    if not validated.rejects.empty:
        rejects = as_spilled(validated.rejects)
        rows = rejects.column("source_row").to_numpy() - 1  # one file: its rows' order
        blocks = context.register_rejects.partitions
        context.register_rejects.add_as(
            index, rejects, _in_blocks(rows, blocks, context.block_rows)
        )
    return counts, set(invalid.astype(str)), len(validated.valid)


def _split_task(index: int) -> tuple[int, int]:
    """Pass 2 for one partition of the claim index: each claim whose lines went to
    several member partitions, sent to each of them (see :meth:`Spill.writer`). How
    many lines the partition indexed, and how many of them are such claims' lines."""
    context = _context()
    assert context.claim_index is not None and context.split_ids is not None
    # Asked for first: the reading's file writers (and their buffers, a file per member
    # partition) are let go before the index partition is read.
    split_ids = context.split_ids.writer()
    lines = context.claim_index.read(index)
    if lines.num_rows == 0:
        return 0, 0
    # Lines with no claim id are no claim (each is rejected for that alone), and are
    # spread over the index's partitions (:func:`dealt`). One grouping of every line
    # (the least and greatest partition of its claim), where two made the distinct pairs
    # first; the pairs only for the few claims split. In this thread: the workers share
    # the cores already (1.4M lines: 0.20 s -> 0.14 s).
    named = lines.filter(pc.is_valid(lines.column("claim_id")))
    extent = named.group_by("claim_id", use_threads=False).aggregate(
        [("part", "min"), ("part", "max")]
    )
    split = extent.filter(pc.not_equal(extent.column("part_min"), extent.column("part_max")))
    if not split.num_rows:
        return lines.num_rows, 0
    across = lines.filter(
        pc.is_in(lines.column("claim_id"), split.column("claim_id").combine_chunks())
    )
    touched = across.group_by(["claim_id", "part"]).aggregate([])
    split_ids.add(touched.select(["claim_id"]), touched.column("part").to_numpy().astype(np.int64))
    return lines.num_rows, across.num_rows


def _decide_task(
    index: int,
) -> tuple[dict[str, FileCounts], SummaryParts, pd.DataFrame | None, int]:
    """Pass 3 for one member partition: its counts, its figures, its units and how many
    lines it decided; its decided lines and its rejects scattered to their ranges of
    claim_id (see :meth:`Spill.writer`). Lines of claims that span members are set
    aside, by claim, for :func:`_set_aside_task`."""
    context = _context()
    assert context.state_by_member is not None and context.split_ids is not None
    assert context.by_range is not None and context.bounds is not None
    assert context.rows_before is not None and context.claim_rejects is not None
    # Asked for first: the earlier passes' file writers (and their buffers, a file per
    # partition) are let go before the partition is read.
    writing = [context.by_range, context.claim_rejects]
    by_range, rejected = (spill.writer(beside=writing) for spill in writing)
    table = context.by_member.read(index)
    # In the order of the output's ranges of claim_id: the decided lines then go to their
    # ranges as slices, where scattering them took every column of the decided lines
    # once more. The take also makes one chunk per column: a partition arrives in a
    # slice from every batch read (380 at 50M lines), and every step after pays per slice.
    ranges = _range_of(table.column("claim_id"), context.bounds)
    order = np.argsort(ranges, kind="stable")
    table = _filled(_numbered(take_rows(table, order), context), _coded(context.claims_schema))
    ranges = ranges[order]
    split = context.split_ids.read(index).column("claim_id")
    if len(split) and table.num_rows:
        across = pc.is_in(table.column("claim_id"), split.combine_chunks()).to_numpy(
            zero_copy_only=False
        )
        _set_aside(context, index, table.filter(across))
        table, ranges = table.filter(~across), ranges[~across]
    parts = SummaryParts()
    validated, counts = _claims_validated(table, context)
    if validated is None:
        return {}, parts, pd.DataFrame(), 0
    _spill_rejects(rejected, validated.rejects, context)
    if not validated.passed.all():
        forget()  # the checked rows' columns, where the valid rows are copies of them
    lines = validated.valid.reset_index(drop=True)
    if lines.empty:
        return counts, parts, None, 0
    ledger_state = context.ledger_state
    standing = standing_takes(ledger_state) if ledger_state is not None else None
    partition = Partition(
        lines=lines,
        register=_state_of(context.state_by_member.read(index)),
        members_with_invalid_records=context.invalid_members,
        units_taken_before=taken_before(standing, lines) if standing is not None else None,
    )
    decided, took = decide(partition, context.rules, context.run_id)
    output = lines.join(decided)
    parts.add(output)
    decided_table = _as_arrow(output, by_range.schema)
    by_range.add(decided_table, ranges[validated.passed])
    # A run without a ledger keeps no entry: nothing that grows with the input is held.
    entry = (
        ledger_rows(context.run_id, context.as_of, took, lines, standing)
        if standing is not None
        else None
    )
    return counts, parts, entry, len(lines)


def _spill_rejects(spill: Spill, rejects: pd.DataFrame, context: _Context) -> None:
    """Claim lines' rejects to the output's ranges of their ``claim_id``, for
    :func:`_write_rejects`. Those without one sort after every claim's, by line and then
    by file and row: with a line, to the range after the claims'; without, as a blank
    row's, to the blocks after that by their file's place among the files sorted and
    their row (:func:`_in_blocks`), so that 400,000 blank rows are not one range."""
    assert context.bounds is not None and context.rows_before_file is not None
    if rejects.empty:
        return
    table = as_spilled(rejects)
    ranges = len(context.bounds) + 1
    part = _range_of(table.column("claim_id"), context.bounds)
    claimless = table.column("claim_id").is_null().to_numpy(zero_copy_only=False)
    lineless = claimless & table.column(LINE_KEY).is_null().to_numpy(zero_copy_only=False)
    part[claimless] = ranges
    if lineless.any():
        rows = _row_places(table.filter(pa.array(lineless)), context.rows_before_file)
        blocks = spill.partitions - ranges - 1
        part[lineless] = ranges + 1 + _in_blocks(rows, blocks, context.block_rows)
    # In pieces of at most a block, the most the parent then reads of them at once (a
    # claim's lines set aside are validated together: 1M of them made 4M rejects).
    for start in range(0, table.num_rows, context.block_rows):
        end = start + context.block_rows
        spill.add(table.slice(start, context.block_rows), part[start:end])


def _row_places(rejects: pa.Table, rows_before_file: dict[str, int]) -> np.ndarray:
    """Each claim line reject's row as its place among the claims files' rows (from 0),
    the files in their paths' order: the order of rejects.parquet's file and row."""
    files = pa.array(list(rows_before_file), pa.string())
    place = pc.index_in(rejects.column("source_file"), files).to_numpy()
    before = np.asarray(list(rows_before_file.values()), np.int64)[place]
    return before + rejects.column("source_row").to_numpy() - 1


def _in_blocks(rows: np.ndarray, blocks: int, block_rows: int) -> np.ndarray:
    """Each row's block of ``block_rows`` rows (rows counted from 0), the last block
    taking any past ``blocks``' end (a count estimated short)."""
    return np.minimum(rows // block_rows, blocks - 1)


def _rows_before_file(files: dict[str, FileCounts]) -> dict[str, int]:
    """Each claims file's rows before it, its path among the paths sorted: rejects'
    order (:func:`_spill_rejects`)."""
    before: dict[str, int] = {}
    rows = 0
    for path in sorted(files):
        before[path] = rows
        rows += files[path].rows
    return before


def _row_blocks(files: dict[str, FileCounts]) -> int:
    """The blocks of ``ROWS_PER_GROUP`` rows the claims files' rows make."""
    return partitions_for(sum(f.rows for f in files.values()), ROWS_PER_GROUP)


def _as_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` as Arrow in ``schema``. Converted as it is first and cast after: asked
    for text straight away, pyarrow made the decision and reason categoricals text value
    by value (34 of 44 ms for 200,000 decided lines; this way 10 in all)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.select(schema.names).cast(schema)


def _set_aside(context: _Context, index: int, lines: pa.Table) -> None:
    """A member partition's lines of claims that span members, to their claim's
    partition of ``split_lines``: in files of this task's own, closed when written."""
    assert context.split_lines is not None
    spill = context.split_lines
    spill.add_as(index, lines, partition_of(lines.column("claim_id"), spill.partitions))


SET_ASIDE_ROWS = 50_000
"""Lines of claims set aside (their lines name different members) validated at once:
each is rejected, most more than once (see :func:`_set_aside_task`)."""


def _set_aside_task(index: int) -> dict[str, FileCounts]:
    """The lines set aside by :func:`_decide_task`, every line of each of their claims
    together: validated, and rejected (their lines disagree on the member). Their counts;
    their rejects spilled as the decide tasks' are."""
    context = _context()
    assert context.split_lines is not None and context.claim_rejects is not None
    assert context.by_range is not None and context.bounds is not None
    rejected = context.claim_rejects.writer(beside=[context.by_range])
    # The claim rules over every line at once, from the columns they read, then the
    # rest a piece of lines at a time, as the partition is read again: a claim's lines
    # are set aside whole, and each of them is rejected (1M lines under one claim id
    # made 4M rejects, which pandera's failure cases held at 1.8 KB each: the worker
    # validating them at once peaked at 7,224 MiB, now 487).
    decided = claim_rules_passed(_rule_columns(context.split_lines, index))
    counts: dict[str, FileCounts] = {}
    start = 0
    # Spilled in a piece from each member partition (20 lines each at --partition-rows
    # 1000), the lines are validated SET_ASIDE_ROWS at a time: a validation costs some
    # 45 ms however few its lines (50,000 lines took 97 s a piece at a time, 10 s so).
    pieces = context.split_lines.pieces(index, mapped=False)
    for lines in rebatched(pieces, SET_ASIDE_ROWS):
        end = start + lines.num_rows
        piece = {name: passes[start:end] for name, passes in decided.items()}
        check = functools.partial(validate_claims, as_of=context.as_of, decided=piece)
        validated, found = _validated(lines, check, "claims")
        assert validated is not None
        if validated.passed.any():
            raise RuntimeError("a claim whose lines name different members passed")
        _spill_rejects(rejected, validated.rejects, context)
        for path in found:
            counts.setdefault(path, FileCounts(path, "claims"))
        merge_counts(counts, found)
        start = end
    return counts


def _rule_columns(spill: Spill, partition: int) -> pa.Table:
    """A partition's columns the claim rules read, copied out of its files (mapped,
    their other columns never read) and the files kept to be read again."""
    columns = claim_rule_columns()
    pieces = [
        piece.select(columns).combine_chunks() for piece in spill.pieces(partition, keep=True)
    ]
    return pa.concat_tables(pieces) if pieces else spill.schema.empty_table().select(columns)


def _state_of(table: pa.Table) -> pd.DataFrame:
    """A member partition's register state, in the order a whole-register state has."""
    ordered = table.sort_by([("authorization_id", "ascending"), ("hcpcs_code", "ascending")])
    return to_frame(ordered)


_Runner = Callable[[Callable[[int], _T], _Context, int], Iterator[_T]]


@contextmanager
def _workers(count: int) -> Iterator[_Runner[Any]]:
    """Run a task over every partition, in partition order, in ``count`` processes.

    Each task ships its own context: the workers (:mod:`pipeline.workers`) are
    started once and serve every pass; those the command started early for this
    run, else started now, importing the engine while this process reads the
    register.
    """
    if count <= 1:

        def serial(task: Callable[[int], Any], context: _Context, partitions: int) -> Iterator[Any]:
            for index in range(partitions):
                _enter(_slim(context, task, index))
                yield _finished(task(index))

        yield serial
        return
    pool = take(count)
    try:

        def parallel(
            task: Callable[[int], Any], context: _Context, partitions: int
        ) -> Iterator[Any]:
            calls = ((task, _slim(context, task, index), index) for index in range(partitions))
            return pool.map(_call, calls, chunksize=1)

        yield parallel
    except BaseException:
        # A failed or stopped run: its staging directory is removed next, so the tasks
        # the workers are in are waited for, lest they write into it as it goes.
        if getattr(pool, "_broken", False):
            # A worker died (killed, or for want of memory). The pool ends the others
            # with SIGTERM, which they ignore (see pipeline.workers._prepared), and waits
            # for them: for ever, where one waits on the queue the dead one held.
            for process in list(getattr(pool, "_processes", {}).values()):
                with suppress(OSError, ValueError, AttributeError):
                    process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        # Not waited for: the workers end (0.1-0.2 s: their interpreters shut down) while
        # this process writes the rest of the run's files.
        pool.shutdown(wait=False, cancel_futures=True)


def _call(call: tuple[Callable[[int], _T], _Context, int]) -> _T:
    task, context, index = call
    _enter(context)
    return _finished(task(index))


def _finished(result: _T) -> _T:
    """A task's result, once the memory its partition took is handed back."""
    _hand_back()
    return result


def _hand_back() -> None:
    """Give the memory a process is done with back to the system: the columns the checks
    remembered are let go (the register's state, computed after its validation,
    remembers its dates), and Arrow's allocator and malloc keep freed memory for reuse,
    so each process would otherwise hold its largest partition's worth from then on
    (with two workers and the parent, three times over).

    Arrow's jemalloc is not purged by ``release_unused`` in pyarrow 26: the call names
    ``arena.MALLCTL_ARENAS_ALL.purge`` (the constant left unexpanded, read off the
    library's strings), which jemalloc does not know, so it does nothing. Its
    background thread returns the pages over about a second after they are freed
    (Arrow's ``dirty_decay_ms``): a worker starts a task holding some 100 MB of the
    last one's freed pages, which the task then reuses. The call stays for the other
    pools."""
    forget()
    let_go_of_read_files()  # the spill files read, no longer mapped
    pa.default_memory_pool().release_unused()
    _malloc_trim()


def _malloc_trim() -> None:
    """glibc's malloc_trim (NumPy and pandas allocate through malloc); elsewhere nothing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def summary_of(execution: Execution, as_of: datetime, rules: Rules) -> dict[str, object]:
    """summary.json: counts by decision and reason, denied dollars, rows per input file."""
    figures = execution.parts.as_dict()
    needing = figures.pop("needing_authorization")
    adjudicated = sum(figures["decisions"].values())  # type: ignore[attr-defined]
    return {
        "run_id": execution.run_id,
        "as_of": as_of.isoformat(),
        "rules_digest": rules.digest,
        "inputs": [f.as_dict() for f in execution.files],
        "lines": {
            "read": execution.claim_rows,
            "adjudicated": adjudicated,
            "rejected": execution.rejected_claim_rows,
            "needing_authorization": needing,
        },
        **figures,
    }
