"""rejects.parquet's order, and its writing a sorted piece at a time."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline import rejects as rejects_file
from pipeline.io import write_parquet
from pipeline.rejects import as_spilled, sort_rejects, write_sorted
from schemas.outputs import REJECT_COLUMNS, REJECT_SCHEMA


def _rejects(rows: Sequence[tuple[str, str | None, str | None, str, int]]) -> pd.DataFrame:
    """Rejects of (source, claim_id, claim_line_number, source_file, source_row)."""
    frame = pd.DataFrame(rows, columns=["source", "claim_id", "claim_line_number", "file", "row"])
    return pd.DataFrame(
        {
            "source": frame["source"],
            "source_file": frame["file"],
            "source_row": frame["row"].astype("int64"),
            "claim_id": frame["claim_id"].astype("str"),
            "claim_line_number": frame["claim_line_number"].astype("str"),
            "column": "member_id",
            "check": "not_nullable",
            "value": None,
            "message": "member_id is missing",
        }
    ).astype({"value": "str"})


def test_rejects_sort_as_the_contract_orders_the_lines() -> None:
    # Claims before the register; by claim (one without an id last) and by line as a
    # number (``010`` and ``10`` one line, told apart by where they were read; a line
    # that is no number after those that are), then by file and row.
    rows = [
        ("authorizations", None, None, "a.csv", 2),
        ("claims", None, "1", "c.csv", 1),
        ("claims", "C2", "1", "c.csv", 2),
        ("claims", "C1", "10", "c.csv", 5),
        ("claims", "C1", "x", "c.csv", 4),
        ("claims", "C1", "010", "c.csv", 3),
        ("claims", "C1", "2", "d.csv", 9),
        ("claims", "C1", "2", "c.csv", 9),
        ("claims", "", "7", "c.csv", 8),
        ("claims", None, None, "c.csv", 6),
    ]
    ordered = sort_rejects(_rejects(rows))
    assert list(zip(ordered["source_file"], ordered["source_row"], strict=True)) == [
        ("c.csv", 8),
        ("c.csv", 9),
        ("d.csv", 9),
        ("c.csv", 3),
        ("c.csv", 5),
        ("c.csv", 4),
        ("c.csv", 2),
        ("c.csv", 1),
        ("c.csv", 6),
        ("a.csv", 2),
    ]


def test_the_order_is_the_rows_own_not_the_order_they_came_in() -> None:
    # Rejects spilled by several workers are read in the order of the workers' files:
    # the value and the message break any tie the keys leave.
    frame = _rejects([("claims", "C1", "1", "c.csv", 3)] * 4 + [("claims", "C0", "2", "c.csv", 1)])
    frame["value"] = ["b", "a", None, "a"] + ["z"]
    frame["message"] = ["m", "n", "m", "m"] + ["m"]
    ordered = sort_rejects(frame)
    for seed in range(5):
        shuffled = frame.sample(frac=1, random_state=seed)
        pd.testing.assert_frame_equal(sort_rejects(shuffled), ordered)
    assert ordered["value"].tolist()[1:4] == ["a", "a", "b"]
    assert ordered["value"].isna().tolist() == [False] * 4 + [True]
    assert ordered["message"].tolist()[1:3] == ["m", "n"]


def test_a_line_number_past_what_an_integer_holds_still_sorts() -> None:
    frame = _rejects(
        [("claims", "C1", "99999999999999999999", "c.csv", 1), ("claims", "C1", "3", "c.csv", 2)]
    )
    assert sort_rejects(frame)["source_row"].tolist() == [2, 1]
    assert as_spilled(frame).column(rejects_file.LINE_KEY).to_pylist() == [1e20, 3.0]


def test_lines_past_a_doubles_precision_sort_alike_whatever_else_was_rejected() -> None:
    # 2**53 + 1 and 2**53 are one double: such lines (rejected: a line is at most nine
    # digits) go by file and row, with or without a register reject beside them. Sorted
    # by pandas, they were told apart only where every reject had a whole-number line.
    Row = tuple[str, str | None, str | None, str, int]
    lines: list[Row] = [("claims", "C1", "9007199254740993", "c.csv", 1)]
    lines += [("claims", "C1", "9007199254740992", "c.csv", 2)]
    register: list[Row] = [("authorizations", None, None, "a.csv", 5)]
    assert sort_rejects(_rejects(lines))["source_row"].tolist() == [1, 2]
    assert sort_rejects(_rejects(lines + register))["source_row"].tolist() == [1, 2, 5]


def _many(count: int, seed: int = 5) -> pd.DataFrame:
    """``count`` rejects, sorted, of varied text (some of it missing)."""
    rng = np.random.default_rng(seed)
    rows = [
        ("claims", f"C{rng.integers(0, count // 3 + 1):06d}", str(rng.integers(1, 9)), "c.csv", i)
        for i in range(count)
    ]
    frame = _rejects(rows)
    frame["value"] = [None if i % 7 == 0 else f"v{rng.integers(0, 50)}" for i in range(count)]
    frame["message"] = [f"message {i % 13}" for i in range(count)]
    return sort_rejects(frame)


def _pieces(frame: pd.DataFrame, cuts: list[int]) -> list[pa.Table]:
    table = as_spilled(frame)
    edges = [0, *cuts, table.num_rows]
    return [table.slice(a, b - a) for a, b in zip(edges, edges[1:], strict=False)]


@pytest.mark.parametrize("count", [0, 1, 2_500])
def test_written_a_piece_at_a_time_the_file_is_the_bytes_of_one_write(
    tmp_path: Path, count: int
) -> None:
    frame = _many(count)
    at_once, in_pieces = tmp_path / "at-once.parquet", tmp_path / "in-pieces.parquet"
    write_parquet(frame[list(REJECT_COLUMNS)], at_once, REJECT_SCHEMA)
    cuts = sorted({0, 3, 700, 701, 1_900} & set(range(count + 1)))
    assert write_sorted(_pieces(frame, cuts), in_pieces) == count
    assert in_pieces.read_bytes() == at_once.read_bytes()


def test_row_groups_are_cut_where_one_write_cuts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rejects_file, "ROW_GROUP_ROWS", 100)
    frame = _many(1_050)
    table = as_spilled(frame).select(list(REJECT_COLUMNS))
    at_once = io.BytesIO()
    pq.write_table(
        table, at_once, row_group_size=100, compression="zstd", store_schema=False
    )  # what write_parquet does, in groups of 100
    path = tmp_path / "in-pieces.parquet"
    write_sorted(_pieces(frame, [1, 99, 100, 101, 350, 990]), path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 11
    assert path.read_bytes() == at_once.getvalue()


def test_the_row_group_is_the_size_pyarrow_writes_at_once(tmp_path: Path) -> None:
    # write_sorted holds a row group: it must cut where pyarrow's write_table does by
    # default, or the file's bytes change with the way it was written.
    rows = rejects_file.ROW_GROUP_ROWS + 1
    text = pa.array(["x"] * rows)
    table = pa.table(
        {
            name: pa.array(np.arange(rows)) if name == "source_row" else text
            for name in REJECT_COLUMNS
        },
        schema=REJECT_SCHEMA,
    )
    pq.write_table(table, tmp_path / "default.parquet")
    metadata = pq.ParquetFile(tmp_path / "default.parquet").metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [rejects_file.ROW_GROUP_ROWS, 1]


def test_parts_follow_the_order_of_claim_then_line_then_file_and_row() -> None:
    # A partition of rejects too big to sort at once is cut by a sample of its (claim,
    # line, row) keys; a reject's part must never be before that of a reject it sorts
    # after, and a reject with a cut's keys starts the cut's part. Claims and lines
    # crowd on a few values (one claim id on many lines, a feed's line numbers), with
    # no claim, no line, -0.0, infinities and fractions among them; rows repeat (a row
    # with several rejects).
    generator = np.random.default_rng(5)
    size = 20_000
    ids = np.array(["C2", "C10", "C1", None], dtype=object)
    claims = generator.choice(ids, size=size, p=[0.5, 0.2, 0.1, 0.2])
    lines = generator.choice(
        [-np.inf, -1.0, -0.0, 0.0, 1.0, 1.5, 2.0, 10.0, np.inf, np.nan],
        size=size,
        p=[0.01, 0.01, 0.02, 0.02, 0.5, 0.02, 0.2, 0.1, 0.01, 0.11],
    )
    keys = pa.table(
        {
            "claim_id": pa.array(claims, pa.string()),
            rejects_file.LINE_KEY: pa.array(lines, pa.float64(), from_pandas=True),
            rejects_file.PLACE: generator.integers(0, 5_000, size=size),
        }
    )
    cuts = rejects_file.cut_points(keys.take(np.arange(0, size, 64)), 16)
    assert cuts.num_rows == 15
    parts = rejects_file.parts_of(keys, cuts)
    ordered = pc.sort_indices(
        keys, sort_keys=[(name, "ascending", "at_end") for name in rejects_file.CUT_BY]
    ).to_numpy()
    assert np.all(np.diff(parts[ordered]) >= 0)
    assert parts.min() == 0 and parts.max() == cuts.num_rows
    assert list(rejects_file.parts_of(cuts, cuts)) == list(range(1, cuts.num_rows + 1))
    sizes = np.bincount(parts)
    assert sizes.max() < 4 * size / len(sizes), sizes  # about as many a part
