"""Row groups encoded apart and joined are the file one writer would have written."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.engine import parquet_writer
from pipeline.rowgroups import JoinedParquet


def _lines(rows: int) -> pa.Table:
    chooser = np.random.default_rng(7)
    return pa.table(
        {
            "claim_id": [f"C{n:07d}" for n in range(rows)],
            "claim_line_number": [str(n % 4 + 1) for n in range(rows)],
            "decision": chooser.choice(np.array(["AUTHORIZED", "DENIED", "PEND", None]), rows),
            "charge_amount": [f"{n * 1.25:.2f}" for n in range(rows)],
            "source_row": pa.array(np.arange(1, rows + 1), pa.int64()),
            "empty": pa.nulls(rows, pa.string()),
        }
    )


def _parts(table: pa.Table, sizes: list[int], where: Path) -> list[Path]:
    parts, start = [], 0
    for index, size in enumerate(sizes):
        part = where / f"part-{index}.parquet"
        with parquet_writer(part, table.schema) as writer:
            writer.write_table(table.slice(start, size), row_group_size=size)
        parts.append(part)
        start += size
    return parts


@pytest.mark.parametrize("sizes", [[5_000], [3_000, 1, 4_000, 2_999], [20] * 15, [20] * 17])
def test_joined_row_groups_are_one_writers_bytes(tmp_path: Path, sizes: list[int]) -> None:
    table = _lines(sum(sizes))
    one = tmp_path / "one.parquet"
    with parquet_writer(one, table.schema) as writer:
        start = 0
        for size in sizes:
            writer.write_table(table.slice(start, size), row_group_size=size)
            start += size
    joined = tmp_path / "joined.parquet"
    with JoinedParquet(joined) as out:
        for part in _parts(table, sizes, tmp_path):
            out.add(part)
        assert out.close() == sum(sizes)
    assert joined.read_bytes() == one.read_bytes()
    assert out.digest.hexdigest() == hashlib.sha256(one.read_bytes()).hexdigest()
    file = pq.ParquetFile(joined)
    assert file.read().equals(table)
    assert [file.metadata.row_group(i).num_rows for i in range(len(sizes))] == sizes


def test_the_joiner_holds_about_the_footer_it_will_write(tmp_path: Path) -> None:
    # Memory flat in the input: what is kept of each row group joined is its share of
    # the footer (200 groups of 6 columns: 95 KB as bytes, 4 MB as Python lists).
    parts = _parts(_lines(4_000), [20] * 200, tmp_path)
    tracemalloc.start()
    try:
        with JoinedParquet(tmp_path / "joined.parquet") as out:
            for part in parts:
                out.add(part)
            held, _ = tracemalloc.get_traced_memory()
            out.close()
    finally:
        tracemalloc.stop()
    footer = int.from_bytes((tmp_path / "joined.parquet").read_bytes()[-8:-4], "little")
    assert 0 < held < 3 * footer


def test_a_part_of_two_row_groups_is_refused(tmp_path: Path) -> None:
    table = _lines(100)
    part = tmp_path / "part.parquet"
    with parquet_writer(part, table.schema) as writer:
        writer.write_table(table, row_group_size=50)
    with JoinedParquet(tmp_path / "joined.parquet") as out, pytest.raises(ValueError, match="one"):
        out.add(part)


def test_a_part_of_another_schema_is_refused(tmp_path: Path) -> None:
    table = _lines(100)
    first = _parts(table, [100], tmp_path)[0]
    other = tmp_path / "other.parquet"
    with parquet_writer(other, table.drop_columns(["empty"]).schema) as writer:
        writer.write_table(table.drop_columns(["empty"]))
    with (
        pytest.raises(ValueError, match="differs"),
        JoinedParquet(tmp_path / "joined.parquet") as out,
    ):
        out.add(first)
        out.add(other)
    assert out.file.closed  # a failed join keeps no file open


@pytest.mark.parametrize(
    "settings",
    [{"write_page_index": True}, {"bloom_filter_options": {"claim_id": True}}],
    ids=["page index", "bloom filter"],
)
def test_a_part_holding_more_than_its_column_chunks_is_refused(
    tmp_path: Path, settings: dict[str, object]
) -> None:
    table = _lines(100)
    part = tmp_path / "part.parquet"
    pq.write_table(table, part, **settings)
    with JoinedParquet(tmp_path / "joined.parquet") as out:
        with pytest.raises(ValueError, match="holds"):
            out.add(part)


def test_no_part_is_no_file_to_join(tmp_path: Path) -> None:
    with JoinedParquet(tmp_path / "joined.parquet") as out:
        with pytest.raises(ValueError, match="no part"):
            out.close()
