"""rejects.parquet's order, and its writing a sorted piece at a time.

A run's rejects are spilled by the tasks that find them, by the output's ranges of
``claim_id`` (those without one, and the register's, by blocks of their rows: see
``pipeline.engine._spill_rejects``), and written from the spill a range at a time: what
the run holds of them is one range and one row group, not every reject of the run (held
until the end, they took some 550 bytes a reject row: 1M lines with every date written
``MM/DD/YYYY`` peaked at 2,555 MiB, now 1,476).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.partition import rebatched
from schemas.outputs import REJECT_COLUMNS, REJECT_SCHEMA

LINE_KEY = "_line"
"""The claim line number as a number, spilled beside a reject to sort it by."""
SPILL_SCHEMA = REJECT_SCHEMA.append(pa.field(LINE_KEY, pa.float64()))
"""A reject as spilled: rejects.parquet's columns and its line as a number."""
ROW_GROUP_ROWS = 1 << 20
"""Rejects a row group: what ``pyarrow.parquet.write_table`` writes by default, so that
the file is the bytes it was when the rejects were written at once."""


def line_numbers(claim_line_number: pd.Series) -> np.ndarray:
    """Each line number as a number (``010`` and ``10`` are one line), NaN for text that
    is none."""
    return pd.to_numeric(claim_line_number, errors="coerce").to_numpy(dtype="float64")


def as_spilled(rejects: pd.DataFrame) -> pa.Table:
    """A validation's rejects as Arrow, with their line as a number (:data:`SPILL_SCHEMA`)."""
    table = pa.Table.from_pandas(
        rejects[list(REJECT_COLUMNS)], schema=REJECT_SCHEMA, preserve_index=False
    )
    line = pa.array(line_numbers(rejects["claim_line_number"]), pa.float64(), from_pandas=True)
    return table.replace_schema_metadata(None).append_column(LINE_KEY, line)


def order(table: pa.Table) -> pa.Array:
    """The places of ``table``'s rejects (:data:`SPILL_SCHEMA`) in rejects.parquet's order:
    claims before the register, then by claim and line (as a number), source file, source
    row, column and check, anything missing last. The value and the message break what
    ties remain, so that the order is the rows' own, not the order they were read in."""
    keys = {
        "register": pc.not_equal(table.column("source"), "claims"),
        "claim_id": table.column("claim_id"),
        "line": table.column(LINE_KEY),
        "source_file": table.column("source_file"),
        "source_row": table.column("source_row"),
        "column": table.column("column"),
        "check": table.column("check"),
        "value": table.column("value"),
        "message": table.column("message"),
    }
    return pc.sort_indices(
        pa.table(keys), sort_keys=[(name, "ascending", "at_end") for name in keys]
    )


SAMPLE_ONE_IN = 64
"""Every how many rejects one is sampled to cut a partition too big to sort at once
(:func:`cut_points`)."""
PLACE = "_place"
"""A claim line reject's row as its place among the claims files' rows, the files in
their paths' order: the order of rejects.parquet's file and row, as one number."""
CUT_BY = ("claim_id", LINE_KEY, PLACE)
"""The keys a partition of claim lines' rejects is cut into parts by: rejects.parquet's
order but for the column, check, value and message, which only tell apart the rejects
of one row (a row's rejects stay in one part)."""


def cut_points(sample: pa.Table, parts: int) -> pa.Table:
    """Where to cut the rejects ``sample`` stands for (:data:`CUT_BY`'s columns) into
    about ``parts`` parts of as many rejects each: the keys that start each part after
    the first, in order (a key twice makes a part of none)."""
    ordered = pc.sort_indices(sample, sort_keys=[(n, "ascending", "at_end") for n in CUT_BY])
    picks = ordered.to_numpy()[(np.arange(1, parts) * sample.num_rows) // parts]
    return sample.select(list(CUT_BY)).take(picks)


def parts_of(keys: pa.Table, cuts: pa.Table) -> np.ndarray:
    """Each reject's part (0 .. as many as ``cuts``) by its :data:`CUT_BY` keys, the
    parts in rejects.parquet's order: how many cuts come at or before it.

    The cuts and the rejects are ranked together a key at a time (as Arrow orders them,
    nulls last: rank's default), then ordered together, a cut before a reject of the
    same keys."""
    both = pa.concat_tables([cuts.select(list(CUT_BY)), keys.select(list(CUT_BY))])
    ranks = [
        pc.rank(both.column(name), "ascending", tiebreaker="dense").to_numpy() for name in CUT_BY
    ]
    is_reject = np.repeat(np.array([0, 1], np.int8), [cuts.num_rows, keys.num_rows])
    ordered = np.lexsort((is_reject, *reversed(ranks)))
    cuts_so_far = np.cumsum(is_reject[ordered] == 0)
    rejects = is_reject[ordered] == 1
    parts = np.empty(keys.num_rows, dtype=np.int64)
    parts[ordered[rejects] - cuts.num_rows] = cuts_so_far[rejects]
    return parts


def sort_rejects(rejects: pd.DataFrame) -> pd.DataFrame:
    """``rejects`` in rejects.parquet's order (:func:`order`), numbered afresh."""
    places = order(as_spilled(rejects)).to_numpy()
    return rejects.iloc[places].reset_index(drop=True)


def write_sorted(pieces: Iterable[pa.Table], path: Path) -> int:
    """Write ``pieces`` (each in :data:`SPILL_SCHEMA`, sorted, and sorted among
    themselves) as rejects.parquet, in row groups of :data:`ROW_GROUP_ROWS`, holding at
    most a row group and a piece; how many rows.

    The same bytes as ``pyarrow.parquet.write_table`` of them all at once (each row group
    written from one chunk a column, as a table made from pandas has)."""
    rows = 0
    rejects = (piece.select(list(REJECT_COLUMNS)).cast(REJECT_SCHEMA) for piece in pieces)
    with pq.ParquetWriter(
        path, REJECT_SCHEMA, compression="zstd", write_statistics=True, store_schema=False
    ) as writer:
        for group in rebatched(rejects, ROW_GROUP_ROWS):
            writer.write_table(group.combine_chunks())
            rows += group.num_rows
        if not rows:
            writer.write_table(REJECT_SCHEMA.empty_table())
    return rows
