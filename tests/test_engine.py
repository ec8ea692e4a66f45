"""The local engine: partitions bound memory and change nothing in the output."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from benchmarks.generate import generate
from pipeline import engine, io, spans
from pipeline import partition as partition_module
from pipeline import workers as early
from pipeline.engine import (
    CODED,
    SAMPLE_EVERY,
    SAMPLED_LINES,
    SPAN,
    _Context,
    _decide_task,
    _files_of,
    _range_bounds,
    _range_of,
    _read_task,
    _slim,
    _sort_keys,
    dealt,
    estimated_rows,
    execute,
    member_partition_count,
    parquet_writer,
    partitions_for,
    sample_every,
)
from pipeline.errors import InputError
from pipeline.io import write_parquet
from pipeline.memory import use_jemalloc
from pipeline.partition import (
    Spill,
    empty_columns,
    filter_rows,
    let_go_of_read_files,
    partition_of,
    rebatched,
    stable_hash,
    take_rows,
)
from pipeline.progress import Silent
from pipeline.rejects import write_sorted
from pipeline.rules import load_rules
from pipeline.run import validate_files
from pipeline.spans import Span
from schemas.outputs import REJECT_SCHEMA
from tests.waiting import soon

AS_OF = datetime(2026, 6, 30, 23, 59, 59)
REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("adjudicated.parquet", "rejects.parquet", "summary.json", "units.parquet")


def test_stable_hash_is_fixed_across_runs_and_machines() -> None:
    values = pa.array(["M0001", "M0002", None, "", "MBR0001"])
    # Pinned: a change here would move every member to another partition.
    assert stable_hash(values).tolist()[:2] == stable_hash(pa.array(["M0001", "M0002"])).tolist()
    assert stable_hash(values)[2] == stable_hash(values)[3]
    assert len(set(stable_hash(pa.array([f"M{i:06d}" for i in range(10_000)])).tolist())) == 10_000


def test_stable_hash_values_are_pinned() -> None:
    # Both ways of summing (ids of a few lengths; others, here a 300-byte value) give
    # these values, the same as every earlier version: spills from either agree.
    values = ["M0001", "M0002", None, "", "MBR0001", "\u00e9" * 3, "C-1", "CLM000000001"]
    pinned = [
        7956505806766806205,
        14121997002848169286,
        0,
        0,
        6840346282526874778,
        7134558601950318813,
        4131500604012373041,
        9245279169189876779,
    ]
    assert stable_hash(pa.array(values)).tolist() == pinned
    with_long = stable_hash(pa.array([*values, "x" * 300])).tolist()
    assert with_long == [*pinned, 8641222300577816141]
    sliced = pa.array(["skipped", *values]).slice(1)  # offsets that do not start at 0
    assert stable_hash(pa.chunked_array([sliced[:3], sliced[3:]])).tolist() == pinned


def test_stable_hash_is_the_same_summed_either_way() -> None:
    chance = np.random.default_rng(7)
    ascii_ids = [
        "".join(chance.choice(list("AB0123456789-"), size=size))
        for size in chance.choice([0, 1, 5, 10, 12, 20], size=5_000)
    ]
    values = [*ascii_ids, "\u00e9" * 3, "\u00e9" * 5, None]  # seven byte lengths in all
    by_position = stable_hash(pa.array(values))
    by_byte = stable_hash(pa.array([*values, "y" * 100]))[:-1]  # a value too long for it
    assert by_position.tolist() == by_byte.tolist()
    assert len(set(by_position.tolist())) == len({v or "" for v in values})  # no collision


def test_take_rows_and_filter_rows_are_a_take_and_a_filter() -> None:
    table = pa.Table.from_batches(
        [
            pa.record_batch({"a": ["x", None, "z"], "b": pa.nulls(3, pa.string())}),
            pa.record_batch({"a": [None, "w", "v"], "b": pa.nulls(3, pa.string())}),
        ]
    )
    for indices in ([5, 0, 3, 1], [], [2, 2]):
        taken = take_rows(table, np.array(indices, dtype=np.int64))
        assert taken.equals(table.take(pa.array(indices, pa.int64())))
        assert taken.schema.equals(table.schema)
    assert take_rows(table.slice(0, 0), np.array([], dtype=np.int64)).num_rows == 0
    for keep in ([True, False, True, True, False, True], [False] * 6, [True] * 6):
        kept = filter_rows(table, np.array(keep))
        assert kept.equals(table.filter(pa.array(keep)))
        assert kept.schema.equals(table.schema)


def test_partitions_are_balanced() -> None:
    members = pa.array([f"M{i:09d}" for i in range(80_000)])
    counts = np.bincount(partition_of(members, 8), minlength=8)
    assert counts.min() > 9_000 and counts.max() < 11_000


def test_lines_with_no_key_are_dealt_round_the_partitions() -> None:
    keys = pa.chunked_array([[None, None, "M1"], [None, None, None, "M2"]])
    hashed = np.array([2, 2, 1, 2, 2, 2, 0])
    assert dealt(hashed, keys, 5, 3).tolist() == [2, 0, 1, 2, 0, 1, 0]
    assert hashed.tolist() == [2, 2, 1, 2, 2, 2, 0]  # the caller's left as it was


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    where = tmp_path_factory.mktemp("generated")
    claims, register = generate(30_000, seed=11, bad_fraction=0.01)
    # Invalid register rows: some end before they start, some are recorded twice.
    register.loc[register.index[::150], "valid_to"] = "2020-01-01"
    register = pd.concat([register, register.iloc[7::300]], ignore_index=True)
    for name, frame in (("claims.csv", claims), ("authorizations.csv", register)):
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), where / name)
    return str(where / "claims.csv"), str(where / "authorizations.csv")


@pytest.mark.slow
def test_output_is_the_same_bytes_whatever_the_partition_count(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims, register = generated
    monkeypatch.setattr(engine, "ROWS_PER_GROUP", 2_000)  # several row groups joined
    rules = load_rules()
    ledger = tmp_path / "ledger"
    runs = {}
    # At 300 rows a partition the register, too, is split (over several partitions).
    for rows in (10_000_000, 4_000, 300):
        out = tmp_path / f"rows-{rows}"
        out.mkdir()
        runs[rows] = execute(
            [claims], register, AS_OF, rules, out, ledger=ledger, rows_per_partition=rows
        )
    assert len({r.run_id for r in runs.values()}) == 1
    assert runs[300].files[-1].rejected > 0, "the register has invalid rows to spread"
    groups = pq.ParquetFile(tmp_path / "rows-10000000" / "adjudicated.parquet").metadata
    assert groups.num_row_groups > 10
    for name in OUTPUTS:
        single = (tmp_path / "rows-10000000" / name).read_bytes()
        for rows in (4_000, 300):
            assert (tmp_path / f"rows-{rows}" / name).read_bytes() == single, (name, rows)


@pytest.mark.slow
def test_workers_side_by_side_write_the_same_bytes(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims, _ = generated
    monkeypatch.setattr(engine, "ROWS_PER_GROUP", 2_000)  # several row groups joined
    for workers in (1, 2):
        # One worker reads the file whole; two read it in 28 spans side by side.
        monkeypatch.setattr(spans, "SPAN_BYTES", 10_000_000 if workers == 1 else 200_000)
        assert len(spans.spans_of(claims)) == (1 if workers == 1 else 28)
        _run_generated(generated, tmp_path, f"workers-{workers}", workers)
    # With two workers a partition's rows arrive in whichever order the workers wrote them,
    # numbered within their spans until the spans before them are counted.
    _assert_same_outputs(tmp_path / "workers-1", tmp_path / "workers-2")


def _run_generated(generated: tuple[str, str], where: Path, name: str, workers: int) -> None:
    """A run of the generated files, 4,000 lines a partition, published in ``where/name``
    with its own ledger."""
    claims, register = generated
    out = where / name
    out.mkdir()
    execute(
        [claims],
        register,
        AS_OF,
        load_rules(),
        out,
        ledger=where / f"ledger-{name}",
        rows_per_partition=4_000,
        workers=workers,
    )


def _assert_same_outputs(one: Path, other: Path) -> None:
    for name in OUTPUTS:
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


@pytest.mark.slow
def test_partitions_written_in_many_pieces_are_gathered_first_to_the_same_bytes(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spans, "SPAN_BYTES", 200_000)  # 28 spans: a piece of each a partition
    read = Spill.read
    pieces: dict[int, list[int]] = {}
    range_pieces: dict[int, list[int]] = {}
    for most in (10_000, 4):
        monkeypatch.setattr(engine, "MAX_PIECES", most)
        seen: list[int] = []
        seen_ranges: list[int] = []
        pieces[most], range_pieces[most] = seen, seen_ranges

        def counted(
            spill: Spill,
            partition: int,
            combine_every: int = 0,
            seen: list[int] = seen,
            seen_ranges: list[int] = seen_ranges,
        ) -> pa.Table:
            table = read(spill, partition, combine_every=combine_every)
            if SPAN.name in spill.schema.names:  # a member partition
                seen.append(table.column(0).num_chunks)
            elif "decision" in spill.schema.names and table.num_rows:  # an output range
                seen_ranges.append(table.column(0).num_chunks)
            return table

        monkeypatch.setattr(Spill, "read", counted)
        _run_generated(generated, tmp_path, f"most-{most}", workers=1)
    partitions = len(pieces[10_000])
    assert partitions > 4 and min(pieces[10_000]) > 4
    # Gathered, each member partition is read once in its pieces, then decided in one.
    assert pieces[4] == pieces[10_000] + [1] * partitions
    # Past MAX_PIECES member partitions, each range's pieces (one a partition) are
    # combined as they are read: no more than COMBINE_EVERY of them, into one.
    assert max(range_pieces[10_000]) > 1
    assert range_pieces[4] == [1] * len(range_pieces[10_000])
    _assert_same_outputs(tmp_path / "most-4", tmp_path / "most-10000")


def test_every_row_is_in_exactly_one_output(generated: tuple[str, str], tmp_path: Path) -> None:
    claims, register = generated
    execute([claims], register, AS_OF, load_rules(), tmp_path, rows_per_partition=3_000)
    adjudicated = pd.read_parquet(tmp_path / "adjudicated.parquet", columns=["source_row"])
    rejects = pd.read_parquet(tmp_path / "rejects.parquet").query("source == 'claims'")
    valid, rejected = set(adjudicated["source_row"]), set(rejects["source_row"])
    assert not valid & rejected
    assert valid | rejected == set(range(1, 30_001))
    assert len(adjudicated) == len(valid)


def test_rejects_are_written_a_range_at_a_time_in_the_order_of_all_at_once(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tasks spill their rejects by the output's ranges; the run never holds them
    # all, and writes the bytes that sorting them all at once writes (``validate``).
    claims, register = generated
    monkeypatch.setattr(engine, "ROWS_PER_GROUP", 2_000)
    written = _rejects_written(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    execute([claims], register, AS_OF, load_rules(), out, rows_per_partition=4_000, workers=2)
    _assert_rejects_as_written_at_once(out, [claims], register)
    pieces = [table.num_rows for table in written]
    assert len(pieces) > 10 and max(pieces) < sum(pieces) / 5, pieces


def _rejects_written(monkeypatch: pytest.MonkeyPatch) -> list[pa.Table]:
    """The pieces the run's rejects.parquet is written from, each as it is written."""
    written: list[pa.Table] = []

    def recorded(tables: Iterator[pa.Table], path: Path) -> int:
        def each() -> Iterator[pa.Table]:
            for table in tables:
                written.append(table)
                yield table

        return write_sorted(each(), path)

    monkeypatch.setattr(engine, "write_sorted", recorded)
    return written


def _assert_rejects_as_written_at_once(out: Path, claims: list[str], register: str) -> None:
    """``out``'s rejects.parquet is the bytes the ``validate`` command's rejects, sorted
    all at once, write."""
    at_once = out.parent / f"{out.name}-all-at-once.parquet"
    write_parquet(validate_files(claims, register, AS_OF).rejects, at_once, REJECT_SCHEMA)
    assert (out / "rejects.parquet").read_bytes() == at_once.read_bytes()


def _run_limited(
    open_files: int, script: str, hard: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter that may open at most ``open_files`` files (its
    soft limit; its hard limit ``hard``, by default the same)."""
    hard = hard or open_files
    limit = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({open_files}, {hard}))"
    return subprocess.run(
        [sys.executable, "-c", f"{limit}\n{textwrap.dedent(script)}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_workers_hold_one_spill_open_at_a_time(generated: tuple[str, str], tmp_path: Path) -> None:
    # About a hundred partitions: a worker that kept the files of its three spills open
    # (three hundred) would run out of a 230-file limit.
    claims, register = generated
    script = f"""
        from datetime import datetime
        from pathlib import Path
        from pipeline.engine import execute
        from pipeline.rules import load_rules
        execute([{claims!r}], {register!r}, datetime(2026, 6, 30), load_rules(),
                Path({str(tmp_path)!r}), rows_per_partition=300, workers=2)
    """
    finished = _run_limited(230, script)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (tmp_path / "adjudicated.parquet").is_file()


def _command_script(generated: tuple[str, str], out: Path, *options: str) -> str:
    """A script that runs the command on ``generated`` in 100 partitions into ``out``."""
    claims, register = generated
    return f"""
        import sys
        from pipeline.cli import main
        sys.argv = ["adjudicate", "run", "--claims", {claims!r}, "--authorizations",
                    {register!r}, "--as-of", "2026-06-30", "--out", {str(out)!r},
                    "--partition-rows", "300", "--force", *{list(options)!r}]
        main()
    """


def test_too_many_partitions_for_the_open_file_limit_is_said(
    generated: tuple[str, str], tmp_path: Path
) -> None:
    finished = _run_limited(100, _command_script(generated, tmp_path / "out"))
    assert finished.returncode == 1
    assert "open files" in finished.stderr and "--partition-rows" in finished.stderr
    assert not (tmp_path / "out").exists()


def test_workers_started_before_the_run_raise_their_own_open_file_limit(
    generated: tuple[str, str], tmp_path: Path
) -> None:
    # The command starts its workers before the run counts its partitions; the run then
    # raises its soft limit, which the workers, already started, did not inherit.
    script = _command_script(generated, tmp_path / "out", "--workers", "2", "--quiet")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1_000:
        pytest.skip(f"the hard open-file limit here is {hard}")
    finished = _run_limited(64, script, hard=1_000)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (tmp_path / "out" / "adjudicated.parquet").is_file()


def test_each_row_group_holds_whole_claims_in_order(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims, register = generated
    monkeypatch.setattr(engine, "ROWS_PER_GROUP", 2_000)
    execute([claims], register, AS_OF, load_rules(), tmp_path, rows_per_partition=4_000)
    file = pq.ParquetFile(tmp_path / "adjudicated.parquet")
    sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    assert file.num_row_groups == round(sum(sizes) / 2_000)  # about 2,000 lines a group
    # Cut at sampled claim ids (one claim in 64: here some 230 of them), so only about.
    assert min(sizes) > 700 and max(sizes) < 4_000
    _assert_whole_claims_in_order(file)


def _assert_whole_claims_in_order(file: pq.ParquetFile) -> None:
    """Each row group's claim ids sorted, and each after the last group's."""
    last = None
    for index in range(file.num_row_groups):
        ids = file.read_row_group(index, columns=["claim_id"]).column(0).to_pylist()
        assert ids == sorted(ids) and (last is None or last < ids[0])  # no claim split
        last = ids[-1]


def test_the_ranges_bounds_are_the_sorted_distinct_sample_cut_evenly() -> None:
    chooser = np.random.default_rng(5)
    for _ in range(30):
        ids = [f"C{n:0{int(chooser.integers(1, 4))}d}" for n in chooser.integers(0, 500, 900)]
        cuts = sorted(chooser.integers(0, len(ids), int(chooser.integers(0, 6))).tolist())
        chunks = [
            pa.array(ids[a:b], pa.string())
            for a, b in zip([0, *cuts], [*cuts, len(ids)], strict=True)
        ]  # duplicates within and across chunks; some chunks empty
        ranges = int(chooser.integers(1, 40))
        distinct = sorted(set(ids))
        picks = sorted({int(len(distinct) * i / ranges) for i in range(1, ranges)})
        expected = list(dict.fromkeys(distinct[i] for i in picks))
        assert _range_bounds(chunks, ranges).to_pylist() == expected
    assert _range_bounds([pa.array([], pa.string())], 5).to_pylist() == []


def test_the_sample_thins_past_its_size_so_it_stays_the_same() -> None:
    assert sample_every(1) == sample_every(SAMPLED_LINES * SAMPLE_EVERY) == SAMPLE_EVERY
    assert sample_every(SAMPLED_LINES * SAMPLE_EVERY + 1) == 2 * SAMPLE_EVERY
    for lines in (10**8, 10**9, 10**10, 10**11):
        assert SAMPLED_LINES / 2 <= lines / sample_every(lines) <= SAMPLED_LINES


def test_a_thinner_sample_still_cuts_the_output_between_claims(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims, register = generated
    monkeypatch.setattr(engine, "ROWS_PER_GROUP", 2_000)
    # 30,000 lines: one claim in 256 sampled, where 64 would be.
    monkeypatch.setattr(engine, "SAMPLED_LINES", 140)  # 30,000 / (140 * 64): 3.3, so 4
    samples: list[list[str]] = []

    def recorded(sample: list[pa.Array], ranges: int) -> pa.Array:
        samples.append(pa.chunked_array(sample, pa.string()).to_pylist())
        return _range_bounds(sample, ranges)

    monkeypatch.setattr(engine, "_range_bounds", recorded)
    execute([claims], register, AS_OF, load_rules(), tmp_path, rows_per_partition=4_000)
    (sample,) = samples
    read = pacsv.ConvertOptions(
        include_columns=["claim_id"], column_types={"claim_id": pa.string()}
    )
    claim_ids = len(set(pacsv.read_csv(claims, convert_options=read).column(0).to_pylist()))
    # Each claim once (a claim's lines on both sides of a span's edge: twice at most).
    assert len(sample) - len(set(sample)) <= 2
    assert claim_ids / 256 / 2 < len(set(sample)) < claim_ids / 256 * 2
    file = pq.ParquetFile(tmp_path / "adjudicated.parquet")
    assert file.num_row_groups > 1
    _assert_whole_claims_in_order(file)


def test_the_output_encodes_each_column_as_its_values_need(tmp_path: Path) -> None:
    schema = pa.schema([pa.field("claim_id", pa.string()), pa.field("decision", pa.string())])
    with parquet_writer(tmp_path / "out.parquet", schema) as out:
        out.write_table(pa.table({"claim_id": ["C1", "C2", "C3"], "decision": ["DENY"] * 3}))
    group = pq.ParquetFile(tmp_path / "out.parquet").metadata.row_group(0)
    claim_id, decision = group.column(0), group.column(1)
    # Near-unique (PLAIN_COLUMNS): no dictionary; statistics where the file is sorted.
    assert not claim_id.has_dictionary_page and decision.has_dictionary_page
    assert claim_id.is_stats_set and (claim_id.statistics.min, claim_id.statistics.max) == (
        "C1",
        "C3",
    )
    assert not decision.is_stats_set


def test_coded_columns_share_one_dictionary_and_are_written_as_text(tmp_path: Path) -> None:
    names = ["CO", None, "PR", "CO"]  # a name twice, and one missing
    first = io.categories_of(np.array([0, 1, 0]), names, pd.RangeIndex(3))
    second = io.categories_of(np.array([3, 3]), names, pd.RangeIndex(2))
    # Every name's category, used or not: the same dictionary in every partition.
    assert list(first.cat.categories) == list(second.cat.categories) == ["CO", "PR"]
    schema = pa.schema([pa.field("carc", CODED)])
    with parquet_writer(tmp_path / "out.parquet", schema) as out:
        for part in (first, second):
            table = pa.Table.from_pandas(part.to_frame("carc"), preserve_index=False)
            out.write_table(table.cast(schema))
    file = pq.ParquetFile(tmp_path / "out.parquet")
    assert file.metadata.metadata is None  # no Arrow schema kept: it reads back as text
    assert file.schema_arrow == pa.schema([pa.field("carc", pa.string())])
    assert file.read().column("carc").to_pylist() == ["CO", None, "CO", "CO", "CO"]


def test_lines_sort_by_their_files_text_though_the_files_are_coded() -> None:
    # The same claim line in two files given b first: its file's text decides, not
    # its place among the files given (the dictionary's order).
    files = pa.DictionaryArray.from_arrays(pa.array([0, 1, 1, 0], pa.int32()), ["b.csv", "a.csv"])
    table = pa.table(
        {
            "claim_id": ["C1", "C1", "C1", "C0"],
            "claim_line_number": ["1", "1", "10", "2"],
            "source_file": pa.chunked_array([files[:2], files[2:]]),
            "source_row": [5, 9, 1, 3],
        }
    )
    ordered = table.take(_sort_keys(table))
    assert ordered.column("source_row").to_pylist() == [3, 9, 5, 1]


@pytest.mark.parametrize(
    "shape",
    [
        "C{n}",  # ids of several widths: sorted with the bounds
        "C{n:03d}",  # one width: looked up by their bytes
        "C{n:03d}é",  # one width, beyond ASCII
        "C{n:03d}\0",  # one width, a zero byte last
    ],
)
def test_a_claim_id_falls_in_the_range_its_bounds_say(shape: str) -> None:
    chooser = np.random.default_rng(3)
    for _ in range(20):
        ids: list[str | None] = [
            shape.format(n=n) for n in chooser.integers(0, 300, int(chooser.integers(0, 2_000)))
        ]
        every = int(chooser.integers(5, 50))
        ids[::every] = [None] * len(ids[::every])
        # Bounds as wide as the ids or shorter; now and then an id's prefix with a zero
        # byte, or an id with more after it (longer than every id).
        drawn = [shape.format(n=n) for n in chooser.integers(0, 300, 40)]
        bounds = sorted(
            {
                *(
                    bound[: int(chooser.integers(1, len(bound) + 1))]
                    for bound in drawn[: int(chooser.integers(0, 40))]
                ),
                *([drawn[0][:2] + "\0"] if chooser.random() < 0.3 else []),
                *([drawn[1] + "0"] if chooser.random() < 0.3 else []),
            }
        )
        half = len(ids) // 2
        claim_ids = pa.chunked_array([pa.array(ids[:half], pa.string()), pa.array(ids[half:])])
        # A claim id's range is how many bounds are at or below it (a missing id: all).
        expected = [
            len(bounds) if claim_id is None else sum(bound <= claim_id for bound in bounds)
            for claim_id in ids
        ]
        assert _range_of(claim_ids, pa.array(bounds, pa.string())).tolist() == expected


def test_claims_whose_lines_name_different_members_are_rejected_whole(tmp_path: Path) -> None:
    # A claim's lines go to their members' partitions; these claims' lines land in
    # several, are set aside and checked together, at any partition count.
    claims, register = generate(3_000, seed=5)
    claims = claims.copy()
    rows = claims.index
    sizes = claims["claim_id"].value_counts()
    first, second = sizes.index[sizes.ge(2)][:2]
    of_first, of_second = claims["claim_id"].eq(first), claims["claim_id"].eq(second)
    claims.loc[of_first, "member_id"] = "M-ONE"
    claims.loc[rows[of_first][0], "member_id"] = "M-OTHER"  # one claim, two members
    claims.loc[of_second, "member_id"] = None  # one claim, no member ...
    claims.loc[rows[of_second][0], "member_id"] = "M-ONE"  # ... on some lines
    claims.loc[rows[100:103], "claim_id"] = None  # lines without a claim, of three members
    duplicate = claims.loc[[rows[200]]].assign(member_id="M-COPY")
    claims = pd.concat([claims, duplicate], ignore_index=True)  # a copy under another member
    path = tmp_path / "claims.csv"
    pacsv.write_csv(pa.Table.from_pandas(claims, preserve_index=False), path)
    register_path = tmp_path / "authorizations.csv"
    pacsv.write_csv(pa.Table.from_pandas(register, preserve_index=False), register_path)
    # The claims' lines land in different partitions (a line without a member goes by
    # its claim id), so they are set aside.
    partitions = partitions_for(estimated_rows([str(path)]), 60)
    assert partitions > 40
    landing = partition_of(pa.array(["M-ONE", "M-OTHER", second]), partitions)
    assert len(set(landing.tolist())) == 3
    outputs = {}
    for rows_per_partition in (10_000_000, 60):
        out = tmp_path / f"rows-{rows_per_partition}"
        out.mkdir()
        execute(
            [str(path)],
            str(register_path),
            AS_OF,
            load_rules(),
            out,
            rows_per_partition=rows_per_partition,
        )
        outputs[rows_per_partition] = out
    for name in ("adjudicated.parquet", "rejects.parquet", "summary.json"):
        assert (outputs[60] / name).read_bytes() == (outputs[10_000_000] / name).read_bytes()
    rejects = pd.read_parquet(outputs[60] / "rejects.parquet")
    differs = rejects[
        rejects["check"].eq("differs_within_claim") & rejects["column"].eq("member_id")
    ]
    claim_lines = claims["claim_id"].isin([first, second])
    assert set(differs["source_row"]) >= set(claims.index[claim_lines] + 1)
    # Lines without a claim belong to none: rejected for that alone, at any partitioning.
    no_claim = set(claims.index[claims["claim_id"].isna()] + 1)
    assert not no_claim & set(differs["source_row"])
    assert no_claim <= set(rejects.loc[rejects["check"].eq("not_nullable"), "source_row"])
    copies = rejects[rejects["check"].eq("duplicate_claim_line")]
    assert {201, len(claims)} <= set(copies["source_row"])
    adjudicated = pd.read_parquet(outputs[60] / "adjudicated.parquet", columns=["source_row"])
    assert len(adjudicated) + rejects["source_row"].nunique() == len(claims)


def test_a_file_given_twice_is_refused_before_any_work(tmp_path: Path) -> None:
    samples = REPO / "data" / "samples"
    claims, register = str(samples / "claims.csv"), str(samples / "authorizations.csv")
    linked = tmp_path / "linked.csv"
    linked.symlink_to(claims)
    out = tmp_path / "out"
    out.mkdir()
    for twice in ([claims, claims], [claims, str(linked)]):
        with pytest.raises(InputError, match="the same file is given twice"):
            execute(twice, register, AS_OF, load_rules(), out)
    assert list(out.iterdir()) == []


def test_two_copies_of_a_file_are_each_numbered_from_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = REPO / "data" / "samples"
    claims, register = str(samples / "claims.csv"), str(samples / "authorizations.csv")
    # Not the same bytes, which are refused: the same lines, and a blank line after them.
    copy = str(tmp_path / "copy.csv")
    Path(copy).write_bytes(Path(claims).read_bytes() + b"\n")
    for span_bytes in (10_000_000, 3_000):
        monkeypatch.setattr(spans, "SPAN_BYTES", span_bytes)
        assert (len(spans.spans_of(claims)) > 3) == (span_bytes == 3_000)
        out = tmp_path / f"span-{span_bytes}"
        out.mkdir()
        execute([claims, copy], register, AS_OF, load_rules(), out)
    for name in ("adjudicated.parquet", "rejects.parquet", "summary.json"):
        assert (tmp_path / "span-3000" / name).read_bytes() == (
            tmp_path / "span-10000000" / name
        ).read_bytes(), name
    rows = pd.read_csv(claims, dtype=str).shape[0]
    rejects = pd.read_parquet(tmp_path / "span-3000" / "rejects.parquet")
    copies = rejects[rejects["check"].eq("duplicate_claim_line")]
    assert copies["source_row"].value_counts().max() == 2  # each row, once per copy
    assert set(copies["source_row"]) <= set(range(1, rows + 1))


def test_each_line_names_the_file_and_row_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = REPO / "data" / "samples"
    lines = (samples / "claims.csv").read_text().splitlines(keepends=True)
    cut = len(lines) * 3 // 5
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("".join(lines[:cut]))
    second.write_text(lines[0] + "".join(lines[cut:]))
    monkeypatch.setattr(spans, "SPAN_BYTES", 2_000)
    assert len(spans.spans_of(str(first))) > 2 and len(spans.spans_of(str(second))) > 1
    out = tmp_path / "out"
    out.mkdir()
    execute(
        [str(first), str(second)], str(samples / "authorizations.csv"), AS_OF, load_rules(), out
    )
    decided = pd.read_parquet(out / "adjudicated.parquet")
    assert set(decided["source_file"]) == {str(first), str(second)}
    read = {str(path): pd.read_csv(path, dtype=str) for path in (first, second)}
    for file, row, claim, number in decided[
        ["source_file", "source_row", "claim_id", "claim_line_number"]
    ].itertuples(index=False):
        written = read[file].iloc[row - 1]
        assert (written["claim_id"].strip(), written["claim_line_number"].strip()) == (
            claim,
            number,
        )


def test_a_writer_beside_another_keeps_its_files(tmp_path: Path) -> None:
    schema = pa.schema([pa.field("claim_id", pa.string())])
    rows = pa.table({"claim_id": ["A", "B"]})
    with Spill(2, schema, tmp_path) as first, Spill(2, schema, tmp_path) as second:
        for _ in range(3):  # a worker's tasks, each writing both spills
            first.writer(beside=[second]).add(rows, np.array([0, 1]))
            second.writer(beside=[first]).add(rows, np.array([1, 1]))
        with Spill(1, schema, tmp_path) as third:
            third.writer().add(rows, np.array([0, 0]))  # the next pass lets both go
            assert first.read(0).num_rows == 3 and first.read(1).num_rows == 3
            assert second.read(1).num_rows == 6
            third.close_writers()


@pytest.mark.parametrize(
    "partition",
    [[0, 0, 1, 1, 1, 3], [1, 0, 3, 1, 0, 1], [0, -1, 1, 1, -1, 3]],
    ids=["in partition order", "shuffled", "some left out"],
)
def test_a_spill_keeps_each_partitions_rows_in_their_order(
    tmp_path: Path, partition: list[int]
) -> None:
    schema = pa.schema([pa.field("claim_id", pa.string())])
    rows = pa.table({"claim_id": [f"C{i}" for i in range(len(partition))]}, schema)
    with Spill(4, schema, tmp_path) as spill:
        spill.add(rows, np.array(partition))
        spill.close_writers()
        for index in range(4):
            expected = [f"C{i}" for i, p in enumerate(partition) if p == index]
            assert spill.read(index).column("claim_id").to_pylist() == expected


def test_tables_rebatched_keep_their_rows_in_order_in_tables_of_the_size_asked() -> None:
    values = iter(range(100))
    sizes = (3, 0, 5, 1, 4)
    tables = [
        pa.table({"n": pa.array([next(values) for _ in range(n)], pa.int64())}) for n in sizes
    ]
    batches = list(rebatched(tables, 4))
    assert [batch.num_rows for batch in batches] == [4, 4, 4, 1]
    assert [n for batch in batches for n in batch.column("n").to_pylist()] == list(range(13))
    assert list(rebatched([pa.table({"n": pa.array([], pa.int64())})], 4)) == []


def test_a_spill_written_a_file_at_a_time_appends_to_a_partition_written_before(
    tmp_path: Path,
) -> None:
    # Written with ``once``, each file is closed after its write (one open at a time);
    # a partition written again is appended to, not begun afresh.
    schema = pa.schema([pa.field("claim_id", pa.string())])
    with Spill(3, schema, tmp_path) as spill:
        for first in (0, 10):
            rows = pa.table({"claim_id": [f"C{first + i}" for i in range(6)]}, schema)
            spill.add(rows, np.array([0, 2, 0, 2, 2, 0]), once=True)
            assert not spill._files
        read = [spill.read(index).column("claim_id").to_pylist() for index in range(3)]
    assert read == [
        ["C0", "C2", "C5", "C10", "C12", "C15"],
        [],
        ["C1", "C3", "C4", "C11", "C13", "C14"],
    ]


def test_a_spill_write_stopped_midway_is_closed_there_and_then(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run stopped (TERM, INT) while a spill was written: its buffer was left to be
    # let go of after the spill closed the file, and Arrow printed an error about
    # writing to a closed file.
    def stopped(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    schema = pa.schema([pa.field("claim_id", pa.string())])
    monkeypatch.setattr(pa.ipc.RecordBatchStreamWriter, "write_table", stopped)
    spill = Spill(2, schema, tmp_path)
    caught: list[BaseException] = []
    try:
        spill.add(pa.table({"claim_id": ["C1", "C2"]}, schema), np.array([0, 1]))
    except KeyboardInterrupt as stop:
        spill.remove()  # as a run's spills are, while the stop goes up the stack
        caught.append(stop)
    assert caught
    caught.clear()  # the stop's frames let go of last, as a run's are
    gc.collect()
    assert "closed file" not in capfd.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")
def test_a_spill_file_read_is_deleted_at_once_and_let_go_of_by_a_thread_after_the_task(
    tmp_path: Path,
) -> None:
    schema = pa.schema([pa.field("claim_id", pa.string())])
    with Spill(2, schema, tmp_path) as spill:
        spill.add(pa.table({"claim_id": ["C1", "C2", "C3"]}, schema), np.array([0, 1, 0]))
        spill.close_writers()
        assert spill.read(0).column("claim_id").to_pylist() == ["C1", "C3"]  # then dropped
        assert not list(spill.directory.glob("00000-*")), "deleted as it is read"
        # Its last reference is held: freeing its disk can block (``discard``), and is
        # left to a thread once the task that read it is done.
        [held] = _open_files_under(spill.directory)
        assert held.endswith(" (deleted)")
        let_go_of_read_files()
        assert soon(lambda: _open_files_under(spill.directory) == [])


def _recorded(events: list[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, noting ``name`` in ``events`` as each call starts."""

    def call(*args: Any, **kwargs: Any) -> Any:
        events.append(name)
        return function(*args, **kwargs)

    return call


def test_no_spill_directory_is_removed_before_the_output_is_written(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Removing a directory frees its blocks, which on a file system mounted with
    # ``discard`` waits behind the discards of the spill files deleted before it: done
    # between two passes, the workers would wait for it.
    claims, register = generated
    events: list[str] = []

    class Stages(Silent):
        def advance(self, stage: str, rows: int) -> None:
            events.append(stage)

    monkeypatch.setattr(shutil, "rmtree", _recorded(events, "removed", shutil.rmtree))
    execute(
        [claims],
        register,
        AS_OF,
        load_rules(),
        tmp_path,
        rows_per_partition=4_000,
        observer=Stages(),
    )
    assert "deciding" in events and "writing" in events and "removed" in events
    last_written = max(at for at, event in enumerate(events) if event == "writing")
    assert events.index("removed") > last_written
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".spill-")]


def test_the_claims_reading_is_queued_before_the_register_is_scattered(
    generated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers start on the claims as soon as they are ready, while this process
    # scatters the register; the register's tasks are queued behind the reading.
    claims, register = generated
    events: list[str] = []
    workers_of = engine._workers

    @contextmanager
    def recorded_workers(count: int) -> Iterator[Callable[..., Iterator[Any]]]:
        with workers_of(count) as pool:

            def queued(task: Callable[[int], Any], context: Any, partitions: int) -> Iterator[Any]:
                events.append(task.__name__)
                return pool(task, context, partitions)

            yield queued

    monkeypatch.setattr(engine, "_workers", recorded_workers)
    scatter = _recorded(events, "scatter", engine._scatter_register)
    monkeypatch.setattr(engine, "_scatter_register", scatter)
    register_pass = _recorded(events, "register's results", engine._register_pass)
    monkeypatch.setattr(engine, "_register_pass", register_pass)
    execute([claims], register, AS_OF, load_rules(), tmp_path, rows_per_partition=4_000)
    assert events[:3] == ["_read_task", "scatter", "_register_task"]
    # The claim index's tasks are queued before the register's results are waited for.
    assert events.index("_split_task") < events.index("register's results")


def test_a_partition_gathered_is_one_piece_of_the_same_rows_in_their_order(
    tmp_path: Path,
) -> None:
    schema = pa.schema([pa.field("claim_id", pa.string())])
    with Spill(3, schema, tmp_path) as spill:
        writer = spill.writer()
        for start in range(0, 12, 3):  # four writes, a piece each a partition
            ids = [f"C{i}" for i in range(start, start + 3)]
            writer.add(pa.table({"claim_id": ids}, schema), np.array([0, 1, 0]))
        assert spill.read(1).column(0).num_chunks == 4  # read (and deleted) once
        assert spill.gather(0) == 8
        assert spill.gather(1) == 0
        gathered = spill.read(0).column("claim_id")
        assert gathered.num_chunks == 1
        assert gathered.to_pylist() == [f"C{i}" for i in range(12) if i % 3 != 1]
        assert spill.read(1).num_rows == 0


def test_a_partition_read_combining_its_pieces_keeps_its_rows_in_their_order(
    tmp_path: Path,
) -> None:
    schema = pa.schema([pa.field("claim_id", pa.string())])
    with Spill(1, schema, tmp_path) as spill:
        for source in (1, 2):  # two writers' files, five writes (pieces) each
            writer = Spill(1, schema, directory=spill.directory, source=source)
            for write in range(5):
                ids = [f"C{source}-{write}-{i}" for i in range(3)]
                writer.add(pa.table({"claim_id": ids}, schema), np.zeros(3, np.int64))
            writer.close_writers()
        read = spill.read(0, combine_every=4).column("claim_id")
        assert read.num_chunks == 3  # 4 + 4 + the last 2 pieces, across the two files
        assert read.to_pylist() == [
            f"C{source}-{write}-{i}" for source in (1, 2) for write in range(5) for i in range(3)
        ]
        assert not list(spill.directory.glob("*.arrow"))  # deleted once read


CODED_TEXT = pa.dictionary(pa.int32(), pa.string())


def test_empty_columns_are_nulls_of_their_types_on_one_buffer_of_zeros() -> None:
    kinds = [pa.string(), CODED_TEXT, pa.int64(), pa.bool_(), pa.string()]
    columns = empty_columns(1000, kinds)
    for column, kind in zip(columns, kinds, strict=True):
        column.validate(full=True)
        assert column.type == kind
        assert column.null_count == len(column) == 1000
        assert column.to_pylist() == [None] * 1000
    text, coded, *_, more_text = columns
    shared = {text.buffers()[1].address, coded.buffers()[1].address, more_text.buffers()[1].address}
    assert len(shared) == 1  # the offsets of both text columns and the codes: one buffer
    assert text.buffers()[1].to_pybytes() == bytes(4 * 1001)
    assert pa.concat_arrays([text, pa.array(["x"])]).to_pylist() == [None] * 1000 + ["x"]
    assert coded.take(pa.array([3, 1])).to_pylist() == [None, None]
    assert empty_columns(0, [pa.string()])[0].to_pylist() == []


def test_columns_the_files_lack_take_no_memory_of_arrows_a_column() -> None:
    # Columns the files lack (the benchmark's lack 25), added to each partition's and
    # each range's lines: with pa.nulls, 4 bytes a row each, allocated and zeroed.
    lacked = [pa.field(f"diagnosis_code_{i}", pa.string()) for i in range(3, 26)]
    schema = pa.schema([pa.field("claim_id", pa.string()), *lacked, ("code", CODED_TEXT)])
    lines = pa.table({"claim_id": [f"C{i:07d}" for i in range(200_000)]})
    pool = pa.default_memory_pool()
    before = pool.bytes_allocated()
    filled = engine._filled(lines, schema)
    assert pool.bytes_allocated() - before < 1 << 20  # 20 MB as pa.nulls
    assert filled.schema.equals(schema)
    assert filled.select([1, 24]).to_pylist()[-1] == {"diagnosis_code_3": None, "code": None}


def test_a_spill_stores_an_empty_column_as_nothing_and_reads_it_back_in_its_type(
    tmp_path: Path,
) -> None:
    schema = pa.schema(
        [pa.field("claim_id", pa.string()), pa.field("note", pa.string()), ("code", CODED_TEXT)]
    )
    rows = 10_000
    empty = pa.table(
        [
            pa.array([f"C{i:07d}" for i in range(rows)]),
            pa.nulls(rows, pa.string()),
            pa.nulls(rows, CODED_TEXT),
        ],
        schema=schema,
    )
    filled = empty.set_column(1, "note", pa.array(["n"] * rows))
    sizes = {}
    for name, table in (("empty", empty), ("filled", filled)):
        with Spill(1, schema, tmp_path) as spill:
            spill.add(table, np.zeros(rows, np.int64))
            spill.close_writers()
            sizes[name] = sum(path.stat().st_size for path in spill.directory.glob("*.arrow"))
            read = spill.read(0)
            assert read.schema.equals(schema)
            assert read.equals(table)
    assert sizes["filled"] - sizes["empty"] >= 4 * rows + rows  # its offsets and its text
    # A column empty in one write and not in another: each read back in the spill's type.
    with Spill(1, schema, tmp_path) as spill:
        for table in (empty, filled, empty):
            spill.add(table, np.zeros(rows, np.int64))
        spill.close_writers()
        read = spill.read(0)
        assert read.schema.equals(schema)
        assert read.column("note").to_pylist() == [None] * rows + ["n"] * rows + [None] * rows
        assert read.combine_chunks().equals(pa.concat_tables([empty, filled, empty]))


@pytest.mark.parametrize("partitions", [16, 500])
def test_a_spills_open_files_hold_no_memory_between_writes(tmp_path: Path, partitions: int) -> None:
    # Files are kept open from task to task, one a partition: between writes they hold
    # nothing of Arrow's memory, however many partitions (each held an IPC writer and
    # its buffer, so a worker's memory grew with the input's output ranges).
    schema = pa.schema([pa.field("claim_id", pa.string())])
    pool = pa.default_memory_pool()
    with Spill(partitions, schema, tmp_path) as spill:
        before = pool.bytes_allocated()
        for _ in range(2):
            spill.add(pa.table({"claim_id": ["C1"] * partitions}, schema), np.arange(partitions))
        assert pool.bytes_allocated() == before
        assert [spill.read(p).num_rows for p in (0, partitions - 1)] == [2, 2]


def _open_files_under(directory: Path) -> list[str]:
    """The files under ``directory`` this process holds open (deleted or not)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if target.startswith(str(directory)):
            held.append(target)
    return held


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open files read from /proc")
def test_a_pass_lets_go_of_the_files_the_last_pass_wrote(tmp_path: Path) -> None:
    # A task writer keeps its files open from task to task; reading a partition deletes
    # its files, whose disk is freed only once no process holds them open.
    schema = pa.schema([pa.field("claim_id", pa.string())])
    with Spill(2, schema, tmp_path) as spill, Spill(2, schema, tmp_path) as later:
        spill.writer().add(pa.table({"claim_id": ["C1", "C2"]}, schema), np.array([0, 1]))
        later.writer(beside=[spill]).add(pa.table({"claim_id": ["C3"]}, schema), np.array([1]))
        assert spill.read(0).num_rows == 1
        let_go_of_read_files()  # the reader's own hold on what it read, as its task ends
        assert soon(lambda: len(_open_files_under(spill.directory)) == 2)
        held = _open_files_under(spill.directory)
        assert len(held) == 2 and any(path.endswith("(deleted)") for path in held)
        partition_module.release_writers(keep=[later])
        assert _open_files_under(spill.directory) == []
        assert len(_open_files_under(later.directory)) == 1
        partition_module.release_writers()
        assert _open_files_under(tmp_path) == []
        assert spill.read(1).num_rows == 1  # what was written stays readable


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc: Linux wheels")
def test_arrow_s_own_work_takes_jemalloc_in_a_fresh_process() -> None:
    # Arrow's C++ default pool (its group-bys and readers), not only pyarrow's: named
    # by the package before pyarrow loads, inherited by every worker.
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    code = "import pipeline, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "jemalloc"
    # pyarrow loaded before the package: too late for Arrow's default, and pyarrow's
    # pool is still jemalloc once the package prepares the process.
    code = (
        "import pyarrow as pa; from pipeline.memory import use_jemalloc; "
        "print(pa.default_memory_pool().backend_name); use_jemalloc(); "
        "print(pa.default_memory_pool().backend_name)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert found.stdout.split() == ["mimalloc", "jemalloc"]


def test_arrow_memory_comes_from_jemalloc_unless_the_environment_names_a_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.system_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        use_jemalloc()
        assert pa.default_memory_pool().backend_name == "system"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        use_jemalloc()
        assert pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)


def test_a_file_grown_after_its_spans_were_cut_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command cuts a large file's spans as it starts, before the run stats its
    # inputs: lines appended between the two would be in the digest, not in the spans.
    samples = REPO / "data" / "samples"
    claims = tmp_path / "claims.csv"
    shutil.copy(samples / "claims.csv", claims)
    monkeypatch.setattr(spans, "SPAN_BYTES", 3_000)
    cut = spans.spans_of(str(claims))
    assert len(cut) > 1 and cut[-1].end == claims.stat().st_size
    with claims.open("a") as file:
        file.write(claims.read_text().splitlines()[1] + "\n")
    monkeypatch.setattr(engine, "cut_early", lambda path, ways: cut)
    out = tmp_path / "out"
    out.mkdir()
    register = str(samples / "authorizations.csv")
    with pytest.raises(InputError, match="changed while the run read it"):
        execute([str(claims)], register, AS_OF, load_rules(), out)


def test_a_file_written_over_after_the_command_cut_it_is_refused(tmp_path: Path) -> None:
    # Cut as the command started, before the run stats its inputs: the run holds the
    # file to what it was as it was cut, so a same-size rewrite between is seen.
    samples = REPO / "data" / "samples"
    claims = tmp_path / "claims.csv"
    shutil.copy(samples / "claims.csv", claims)
    register = str(samples / "authorizations.csv")
    for rewritten in (False, True):
        out = tmp_path / f"out-{rewritten}"
        out.mkdir()
        with early.started_early(2, [str(claims)], 10):
            assert early.cut_early(str(claims), 2) is not None
            if rewritten:
                text = claims.read_bytes()
                claims.unlink()  # another file of the same size in its place
                claims.write_bytes(text)
            refused = (
                pytest.raises(InputError, match="changed while the run read it")
                if rewritten
                else contextlib.nullcontext()
            )
            with refused:
                execute([str(claims)], register, AS_OF, load_rules(), out, rows_per_partition=10)


def test_blank_rows_are_spread_and_rejected_alike_at_any_partition_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows with no member and no claim id (a spreadsheet's trailing empty rows) all went
    # to one member partition and one claim index partition, whatever the count.
    claims, register = generate(2_000, seed=5, bad_fraction=0.0)
    claims = pd.concat(
        [claims, pd.DataFrame(None, index=range(3_000), columns=claims.columns, dtype=str)],
        ignore_index=True,
    )
    claims.loc[claims.index[100:400:3], "claim_id"] = None  # lines with a member only
    for name, frame in (("claims.csv", claims), ("authorizations.csv", register)):
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / name)
    read: list[np.ndarray] = []
    add = partition_module.Spill.add

    def counted(spill: Any, table: pa.Table, partition: np.ndarray, **kw: Any) -> None:
        lines = "claim_line_number" in table.column_names and "check" not in table.column_names
        if lines and spill.partitions > 1:  # claim lines, not their rejects
            read.append(partition)
        add(spill, table, partition, **kw)

    monkeypatch.setattr(partition_module.Spill, "add", counted)
    for rows in (10_000_000, 500):
        out = tmp_path / f"rows-{rows}"
        out.mkdir()
        execute(
            [str(tmp_path / "claims.csv")],
            str(tmp_path / "authorizations.csv"),
            AS_OF,
            load_rules(),
            out,
            rows_per_partition=rows,
            workers=1,  # in this process, where the spills are watched
        )
    sizes = np.bincount(np.concatenate(read))
    assert len(sizes) >= 10 and sizes.max() < 2 * sizes.mean(), sizes
    rejects = pd.read_parquet(tmp_path / "rows-500" / "rejects.parquet")
    assert rejects["source_row"].nunique() == 3_000 + 100
    for name in OUTPUTS[:3]:  # no ledger
        single = (tmp_path / "rows-10000000" / name).read_bytes()
        assert (tmp_path / "rows-500" / name).read_bytes() == single, name


def test_rejects_without_a_claim_are_written_in_blocks_in_the_order_of_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rejects without a claim id sort after every claim's, by line, file and row: blank
    # rows (no line either) go to blocks of rows by their file's place among the files
    # sorted, so that a feed's blank rows are not held as one range; the register's
    # rejects by their row likewise. Two files given out of their paths' order.
    claims, register = generate(1_500, seed=8, bad_fraction=0.02, register_ratio=0.3)
    blank = pd.DataFrame(None, index=range(700), columns=claims.columns, dtype=str)
    halves = [pd.concat([claims.iloc[:750], blank], ignore_index=True), claims.iloc[750:].copy()]
    halves[1].loc[halves[1].index[::40], "claim_id"] = None  # a line number, no claim
    register.loc[register.index[::3], "valid_to"] = "2020-01-01"  # ends before it starts
    paths = [tmp_path / "b.csv", tmp_path / "a.csv"]
    for path, frame in (*zip(paths, halves, strict=True), (tmp_path / "r.csv", register)):
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
    monkeypatch.setattr(engine, "ROWS_PER_GROUP", 100)
    pieces = _rejects_written(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    names = [str(path) for path in paths]
    execute(names, str(tmp_path / "r.csv"), AS_OF, load_rules(), out, rows_per_partition=400)
    _assert_rejects_as_written_at_once(out, names, str(tmp_path / "r.csv"))
    blanks = [p for p in pieces if p.column("claim_line_number").null_count == p.num_rows]
    claims_blank = [p for p in blanks if p.column("source")[0].as_py() == "claims"]
    assert len(claims_blank) >= 7, [p.num_rows for p in claims_blank]  # 700 blank rows
    assert len(blanks) - len(claims_blank) >= 2, "the register's rejects in blocks too"


def test_a_range_of_many_rejects_is_sorted_in_parts_in_the_order_of_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parent sorted each range of rejects at once: a feed whose claim_id came empty
    # (its rejects sort by line, then file and row, one partition: 10M lines, the parent
    # at 2,828 MiB), or one claim id on many lines (a range of whole claims). Past a row
    # group of rejects, a range is cut into parts by a sample of its keys, each part
    # sorted in turn. Two files given out of their paths' order, line numbers crowded
    # on a few values (``01`` and ``1`` one line), rows with more than one reject (the
    # one claim's lines disagree on their member; claim-less rows with a dozen bad
    # values: parts are cut by rejects, not rows), two workers' pieces.
    claims, register = generate(4_000, seed=12, bad_fraction=0.05, register_ratio=0.3)
    claims.loc[claims.index[::5], "claim_line_number"] = "01"
    claims.loc[claims.index[:2_400], "claim_id"] = None
    bad = ["plan_type", "claim_type", "hcpcs_code", "rendering_npi", "billing_npi"]
    bad += ["diagnosis_code_1", "charge_amount", "claim_start_date", "claim_end_date"]
    claims.loc[claims.index[:1_200], bad] = "!"
    claims.loc[claims.index[2_400:3_200], "claim_id"] = "C-ONE"
    halves = [claims.iloc[2_000:], claims.iloc[:2_000]]
    paths = [tmp_path / "b.csv", tmp_path / "a.csv"]
    for path, frame in (*zip(paths, halves, strict=True), (tmp_path / "r.csv", register)):
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
    monkeypatch.setattr(engine, "ROWS_PER_GROUP", 100)
    monkeypatch.setattr(engine, "ROW_GROUP_ROWS", 500)
    monkeypatch.setattr(engine, "SAMPLE_ONE_IN", 1)  # parts cut where they are meant to be
    pieces = _rejects_written(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    names = [str(path) for path in paths]
    execute(
        names, str(tmp_path / "r.csv"), AS_OF, load_rules(), out, rows_per_partition=700, workers=2
    )
    _assert_rejects_as_written_at_once(out, names, str(tmp_path / "r.csv"))

    def sizes(claim: str | None) -> list[int]:
        """The pieces holding one claim's rejects (of lines with a line number, for None)."""
        return [
            piece.num_rows
            for piece in pieces
            if piece.column("claim_line_number").null_count < piece.num_rows
            and pc.any(
                pc.is_null(piece.column("claim_id"))
                if claim is None
                else pc.equal(piece.column("claim_id"), claim)
            ).as_py()
        ]

    for claim, rejects in ((None, 1_200 * 10), ("C-ONE", 4 * 800)):
        written = sizes(claim)
        assert sum(written) >= rejects and len(written) >= 12, (claim, written)
        assert max(written) <= 2 * 100, (claim, written)  # about ROWS_PER_GROUP a part


def test_a_claim_set_aside_is_validated_in_pieces_as_if_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lines of a claim that name several members are set aside and validated
    # together: 1M lines under one claim id held 4M rejects as pandera's failure cases
    # (7.2 GB). Its claim rules (lines checked against each other) are applied over
    # every line first, the rest a piece at a time; the rejects and counts are those of
    # validating every line at once (the ``validate`` command).
    claims, register = generate(2_000, seed=13, bad_fraction=0.05, register_ratio=0.3)
    claims.loc[claims.index[300:1_100], "claim_id"] = "C-ONE"
    claims.loc[claims.index[300:1_100:9], "plan_type"] = "HMO"
    pacsv.write_csv(pa.Table.from_pandas(claims, preserve_index=False), tmp_path / "c.csv")
    pacsv.write_csv(pa.Table.from_pandas(register, preserve_index=False), tmp_path / "r.csv")
    validated: list[int] = []
    check = engine.validate_claims

    def counted(lines: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        if "decided" in kwargs:
            validated.append(len(lines))
        return check(lines, *args, **kwargs)

    tasks: list[int] = []
    set_aside = engine._set_aside_task

    def task(index: int) -> Any:
        tasks.append(index)
        return set_aside(index)

    monkeypatch.setattr(engine, "validate_claims", counted)
    monkeypatch.setattr(engine, "_set_aside_task", task)
    monkeypatch.setattr(engine, "SET_ASIDE_ROWS", 64)
    out = tmp_path / "run"
    out.mkdir()
    claims_file, register_file = str(tmp_path / "c.csv"), str(tmp_path / "r.csv")
    execute(
        [claims_file], register_file, AS_OF, load_rules(), out, rows_per_partition=300, workers=1
    )
    assert sum(validated) >= 800 and max(validated) <= 64, validated
    # 64 lines at a time, whatever the pieces they were spilled in (one a member
    # partition): a partition's last validation alone may hold fewer.
    assert sum(lines < 64 for lines in validated) <= len(tasks), (validated, tasks)
    _assert_rejects_as_written_at_once(out, [claims_file], register_file)
    summary = json.loads((out / "summary.json").read_text())
    whole = validate_files([claims_file], register_file, AS_OF)
    entry = next(f for f in summary["inputs"] if f["path"] == claims_file)
    assert entry["rejected"] == whole.claims.rejected_rows
    by_check = whole.claims.rejects.groupby(["column", "check"]).size()
    assert {(c["column"], c["check"]): c["rejects"] for c in entry["rejects_by_check"]} == {
        key: int(count) for key, count in by_check.items()
    }


def test_a_task_is_shipped_the_spans_it_reads_and_no_others(tmp_path: Path) -> None:
    # Every task carried every span: a run of 4,000 files (a span each) took 38 s where
    # one worker took 17, each of the 4,000 reading tasks shipping 260 KB of spans.
    spans = [(n, Span(f"/claims/{n // 2}.csv", start=n)) for n in range(6)]
    schema = pa.schema([("claim_id", pa.string())])
    with Spill(1, schema, tmp_path) as spill:
        context = _Context(AS_OF, load_rules(), 1, spill, schema, spans=spans, **_files_of(spans))
        assert _slim(context, _read_task, 3).spans == [spans[3]]
        slim = _slim(context, _decide_task, 3)
    assert slim.spans == []
    assert slim.paths == ("/claims/0.csv", "/claims/1.csv", "/claims/2.csv")
    assert slim.span_files is not None and slim.span_files.tolist() == [0, 0, 1, 1, 2, 2]


def test_the_member_partitions_are_counted_by_the_register_too(tmp_path: Path) -> None:
    # A night's few lines against a large register made one partition holding the
    # register's whole state (200,000 lines, 4M register rows: 668 MiB against 301).
    claims = tmp_path / "claims.csv"
    claims.write_text("claim_id\n" + "C1\n" * 100)
    register = tmp_path / "register.csv"
    register.write_text("authorization_id\n" + "A1\n" * 1_000)
    share = engine.STATE_SHARE

    def counted(rows_per_partition: int) -> int:
        lines, rows = estimated_rows([str(claims)]), estimated_rows([str(register)])
        return member_partition_count(lines, rows, rows_per_partition)

    assert counted(100) == 1_000 // (100 * share)
    register.write_text("authorization_id\n" + "A1\n" * 100)
    assert counted(10) == 10  # by the lines
