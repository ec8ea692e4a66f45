"""Reading input files as text with their lineage, and writing outputs.

Only this module, :mod:`pipeline.spans` (where a CSV file may be cut) and the
publisher touch the inputs and outputs. Every value is read as text: a reader
that guesses types turns place of service ``02`` into ``2``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.errors import InputError
from pipeline.partition import empty_columns
from pipeline.spans import Span, ends_in_quoted_value, file_kind

SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"
LINEAGE_COLUMNS = (SOURCE_FILE, SOURCE_ROW)
SPAN_COLUMN = "_span"
"""The engine's own column on a spilled claim line: which span it was read from."""


@dataclass(frozen=True)
class InputFile:
    """One file read: where it was, how many data rows it had."""

    path: str
    rows: int


HEAD_BYTES = 1 << 20
"""How much of a CSV file is read for its header."""


def _compression(path: str) -> str | None:
    """``gzip`` for a name ending ``.gz`` in any case (Arrow's own detection knows only
    the lower-case ``.gz``, and read a ``.CSV.GZ`` file's compressed bytes as text)."""
    return "gzip" if path.lower().endswith(".gz") else None


def _csv_head(path: str) -> tuple[list[str], bool]:
    """The header row of a CSV file, compressed or not, and whether the file holds
    nothing but it (blank lines aside)."""
    if _compression(path):
        with open(path, "rb") as raw:
            if raw.read(2) != b"\x1f\x8b":  # gzip's magic number
                raise InputError(f"{path}: cannot be read as a UTF-8 CSV file: not gzip")
    try:
        with pa.input_stream(path, compression=_compression(path)) as stream:
            head = stream.read(HEAD_BYTES)
    except OSError as error:  # a gzip file cut short
        raise _unreadable(path, error) from error
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16's byte-order marks
        raise InputError(f"{path}: cannot be read as a UTF-8 CSV file: it is UTF-16 text")
    text = io.StringIO(head.decode("utf-8-sig", errors="replace"), newline="")
    try:
        first = next(csv.reader(text), None)
    except csv.Error as error:
        raise InputError(f"{path}: the header row cannot be read: {error}") from error
    if not first:
        raise InputError(f"{path}: the file is empty; expected a header row")
    # What follows the header, unread as CSV (a long value would exceed the reader's
    # field limit): nothing but line breaks means no row (blanks are a row, and wrong).
    alone = len(head) < HEAD_BYTES and not text.read().strip("\r\n")
    return [name.strip() for name in first], alone


def _unreadable(path: str, error: Exception, block: int = 0) -> InputError:
    """A CSV file the reader refused (or a gzip file cut short), with the reader's
    complaint without the offending row, which may hold member ids (``block``: the
    reader's block size)."""
    if isinstance(error, OSError) and error.errno:  # the system refused it: its words
        return InputError(f"{path}: cannot be read: {os.strerror(error.errno)}")
    text = str(error)
    shape = re.search(r"Expected \d+ columns, got \d+", text)
    if "straddles two block boundaries" in text:
        why = (
            f"a row lies across more than two of the reader's {block >> 20} MiB blocks "
            f"(a row longer than {block >> 20} to {2 * block >> 20} MiB, by where it falls: "
            "a value that long in a column the job passes through?)"
        )
    elif shape:
        why = shape.group(0).lower() + " in a row (a stray comma or an unclosed quote?)"
    elif "UTF8" in text or "utf-8" in text.lower():
        why = "it is not UTF-8 text"
    elif "inflate failed" in text:
        why = (
            "its gzip data cannot be unpacked: damaged, or followed by bytes that are not "
            "gzip (zeros padding a copy?)"
        )
    else:
        why = text.split(":", maxsplit=1)[0]
    return InputError(f"{path}: cannot be read as a UTF-8 CSV file: {why}")


_BLANKS = np.array([ord(" "), ord("\t")], dtype=np.uint8)


def _padded(column: pa.ChunkedArray) -> bool:
    """Whether any value starts or ends with a space or a tab: the first and last byte
    of each value, read from the column's buffers (four text scans took twice as long),
    where its bytes hold a blank or a byte below one at all (most columns hold none: one
    comparison over them, where a space and a tab were looked for in two)."""
    for text in column.chunks:
        width = np.int64 if text.type == pa.large_string() else np.int32
        _, offset_buffer, data_buffer = text.buffers()
        if data_buffer is None:
            continue
        offsets = np.frombuffer(offset_buffer, dtype=width)[
            text.offset : text.offset + len(text) + 1
        ]
        data = np.frombuffer(data_buffer, dtype=np.uint8)
        used = data[int(offsets[0]) : int(offsets[-1])]
        if not np.any(used <= _BLANKS.max()):  # one pass: no byte a blank or below
            continue
        starts, ends = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
        filled = ends > starts  # a null's slot may hold bytes: counted (a trim for nothing)
        if not filled.any():
            continue
        edges = np.concatenate([data[starts[filled]], data[ends[filled] - 1]])
        if np.isin(edges, _BLANKS).any():
            return True
    return False


def _tidy(column: pa.ChunkedArray, *, may_hold_empty: bool = True) -> pa.ChunkedArray:
    """Leading and trailing blanks (spaces and tabs) trimmed; an empty value is null.

    Each step rewrites the column, so each runs only where it changes something:
    trimming where a value starts or ends with a blank, nulling where a value is
    empty: where trimming left one, or the file ``may_hold_empty`` ones (the CSV
    reader nulls empty cells; Parquet may hold "").
    """
    if _padded(column):
        column = pc.utf8_trim(column, characters=" \t")
    elif not may_hold_empty:
        return column
    shortest = pc.min(pc.binary_length(column)).as_py()
    if shortest is None or shortest > 0:
        return column
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def constant_text(value: str, rows: int) -> pa.Array:
    """``value`` repeated ``rows`` times, built without a Python list."""
    indices = pa.array(np.zeros(rows, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value])).cast(pa.string())


def text_of(choice: np.ndarray, names: Sequence[str | None], index: pd.Index) -> pd.Series:
    """``names[choice]`` on each row, as text: built in Arrow, since pandas converts a
    NumPy array of strings value by value (20x slower at 200,000 rows)."""
    values = pa.array(list(names), pa.string()).take(pa.array(choice, pa.int64()))
    return pd.Series(pd.array(values, dtype="str"), index=index)


def categories_of(choice: np.ndarray, names: Sequence[str | None], index: pd.Index) -> pd.Series:
    """``names[choice]`` on each row (missing where the name is None), as a categorical
    whose categories are the names' distinct values in their order, used or not: the
    same for every partition, so its Arrow dictionary is too (see the engine's
    ``CODED_COLUMNS``)."""
    distinct = list(dict.fromkeys(name for name in names if name is not None))
    place = {name: code for code, name in enumerate(distinct)}
    codes = np.array([-1 if name is None else place[name] for name in names], dtype=np.int32)
    categories = pd.Index(distinct, dtype="str")
    return pd.Series(pd.Categorical.from_codes(codes[choice], categories=categories), index=index)


def text_at(values: pa.Array | pa.ChunkedArray, at: np.ndarray, index: pd.Index) -> pd.Series:
    """``values[at]`` on each row (missing where ``at`` is -1), as text."""
    taken = pc.take(values, pa.array(at, pa.int64(), mask=at < 0))
    if isinstance(taken, pa.ChunkedArray):
        taken = taken.combine_chunks()
    return pd.Series(pd.array(taken, dtype="str"), index=index)


def read_inputs(
    paths: Sequence[str],
    *,
    contract: Sequence[str],
    required: Sequence[str],
    one_of: Iterable[tuple[str, ...]] = (),
    reserved: Sequence[str] = (),
) -> tuple[pd.DataFrame, list[InputFile]]:
    """Read whole files of one table as text, with each row's file and 1-based data row.

    The same reading as the engine's, batch by batch (:func:`text_batches`),
    gathered into one frame: for ``validate``, which checks files by hand.
    """
    schema = text_schema(
        paths, contract=contract, required=required, one_of=one_of, reserved=reserved
    )
    tables: list[pa.Table] = []
    files: list[InputFile] = []
    for path in paths:
        batches = list(text_batches(path, schema, contract, whole=True))
        tables.extend(batches)
        files.append(InputFile(path=path, rows=sum(b.num_rows for b in batches)))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return to_frame(table.combine_chunks()), files


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A table as pandas with its text as Arrow strings: no conversion, no copy."""
    return table.to_pandas(
        types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_string(t) else None
    )


def _require_columns(
    path: str,
    columns: Sequence[str],
    required: Sequence[str],
    one_of: Iterable[tuple[str, ...]],
) -> None:
    present = set(columns)
    missing = [name for name in required if name not in present]
    for group in one_of:
        if not present.intersection(group):
            missing.append(" or ".join(group))
    if not missing:
        return
    wanted = {name.lower() for group in missing for name in group.split(" or ")}
    cased = [name for name in columns if name.lower() in wanted and name not in wanted]
    hint = (
        f" (names are matched as the contract writes them, in lower case; the file has "
        f"{', '.join(cased)})"
        if cased
        else ""
    )
    raise InputError(f"{path} is missing required columns: {', '.join(missing)}{hint}")


# --- writing -----------------------------------------------------------------


def write_parquet(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> int:
    """Write ``frame`` as Parquet with no index and no library metadata (neither
    pandas' nor Arrow's schema: the Parquet schema alone, read back as ``schema``'s
    text and numbers); returns rows.

    The file depends only on the data and the pyarrow version, so reruns are
    byte-identical.
    """
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd", write_statistics=True, store_schema=False)
    return table.num_rows


def write_json(document: Any, path: Path) -> None:
    """Write ``document`` as sorted, indented JSON with a final newline."""
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def sha256_of(path: Path | str) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- reading in batches ----------------------------------------------------------

BATCH_BYTES = 32 << 20
"""CSV block size when a whole file is read at once (the threaded reader)."""
STREAM_BLOCK_BYTES = 1 << 20
"""CSV block size when a file is streamed. The streaming reader reads up to some thirty
blocks ahead of what it has parsed: with 8 MB blocks, streaming the register took 171 MiB
at 10M lines and 339 MiB at 50M; with 1 MB blocks, 125 and 131 MiB, in the same time (a
million claim lines streamed in 0.76-0.85 s against 0.98-1.0 s with 8 MB blocks)."""
STREAM_ROWS = 131_072
"""Streamed blocks are gathered to at least this many rows before they are handed on, so
that spilled partitions are not cut into slivers."""


def column_names(path: str) -> list[str]:
    """The columns a file has, without reading its rows."""
    return _columns(path)[0]


def _columns(path: str) -> tuple[list[str], bool]:
    """The columns a file has, and whether it is a CSV file of a header alone (see
    :func:`_csv_head`), from one read of its head."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file")
    if not Path(path).is_file():
        raise InputError(f"{path}: not a regular file (a directory, a pipe or a device)")
    if file_kind(path) == "csv":
        return _csv_head(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: cannot be read as a Parquet file: {error}") from error
    for field in schema:  # refused by its footer, though it has no rows to cast
        if pa.types.is_nested(field.type):
            raise InputError(
                f"{path}: column {field.name} of type {field.type} cannot be read as text"
            )
    # Blanks around a name are no part of it, as in a CSV file's header.
    return [name.strip() for name in schema.names], False


def text_schema(
    paths: Sequence[str],
    *,
    contract: Sequence[str],
    required: Sequence[str],
    one_of: Iterable[tuple[str, ...]] = (),
    reserved: Sequence[str] = (),
) -> pa.Schema:
    """One schema for every file of a table: the contract's columns, the others, lineage.

    Refuses a file that lacks a required column, naming every one it lacks; a file
    with a column named like one of ``reserved`` (the columns the job adds: its
    values would be lost or clash), naming them; and a file given twice (its rows
    would be read twice).
    """
    _refuse_repeats(paths)
    passed: dict[str, None] = {}
    for path in paths:
        names = column_names(path)
        _require_columns(path, names, required, list(one_of))
        # Named only once the required columns are there: a file without its header row
        # would have its first row's values (member ids, NPIs) named as columns.
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            named = ", ".join(name or "(an empty name)" for name in duplicated)
            raise InputError(f"{path}: the header names a column twice: {named}")
        if "" in names:
            raise InputError(
                f"{path}: the header has a column without a name (a comma at its start or "
                "end, or an index column written by pandas?); name it, or remove it from "
                "every row"
            )
        # In any case: a reader that folds case (DuckDB, Spark, a warehouse) would read a
        # passed-through `Decision` for the job's `decision`, or rename one of them.
        ours = {name.casefold(): name for name in reserved}
        clashing = [
            name if name in reserved else f"{name} (as {ours[name.casefold()]})"
            for name in names
            if name.casefold() in ours
        ]
        if clashing:
            raise InputError(
                f"{path} has columns the job writes itself: {', '.join(clashing)}; "
                "rename them to pass them through"
            )
        _refuse_other_cases(path, names, contract)
        passed.update(
            dict.fromkeys(n for n in names if n not in contract and n not in LINEAGE_COLUMNS)
        )
    _refuse_folded_twice(paths, list(passed))
    fields = [pa.field(name, pa.string()) for name in [*contract, *passed]]
    return pa.schema(
        [*fields, pa.field(SOURCE_FILE, pa.string()), pa.field(SOURCE_ROW, pa.int64())]
    )


def _refuse_other_cases(path: str, names: Sequence[str], contract: Sequence[str]) -> None:
    """Refuses a contract column written in another case (``Revenue_Center_Code``): it
    would pass through as another column, and the contract's be read empty, changing
    decisions without a word."""
    ours = {name.casefold(): name for name in contract}
    cased = [
        f"{name} (as {ours[name.casefold()]})"
        for name in names
        if name.casefold() in ours and name not in ours.values()
    ]
    if cased:
        raise InputError(
            f"{path} names contract columns in another case: {', '.join(cased)}; names "
            "are matched as the contract writes them, in lower case: rename them"
        )


def _refuse_folded_twice(paths: Sequence[str], passed: Sequence[str]) -> None:
    """Refuses files whose columns passed through differ in case alone (``Notes`` and
    ``notes``): a reader that folds case would take one for the other."""
    folded: dict[str, list[str]] = {}
    for name in passed:
        folded.setdefault(name.casefold(), []).append(name)
    twice = [" and ".join(names) for names in folded.values() if len(names) > 1]
    if twice:
        raise InputError(
            f"{', '.join(paths)}: columns passed through differ in case alone: "
            f"{'; '.join(twice)}; a reader that folds case would take one for the other: "
            "rename one of them"
        )


def _refuse_repeats(paths: Sequence[str]) -> None:
    """Refuses a file named twice, by the same path or another to the same file."""
    seen: dict[tuple[int, int] | str, str] = {}
    for path in paths:
        try:
            stat = os.stat(path)
            key: tuple[int, int] | str = (stat.st_dev, stat.st_ino)
        except OSError:
            key = os.path.abspath(path)  # unreadable: refused by name when it is read
        if key in seen:
            twice = path if seen[key] == path else f"{seen[key]} and {path}"
            raise InputError(f"{twice}: the same file is given twice; give it once")
        seen[key] = path


def lacked_by_all(paths: Sequence[str], columns: Sequence[str]) -> list[str]:
    """Which of ``columns`` no file of ``paths`` has: read, they are added, empty."""
    present = {name for path in paths for name in column_names(path)}
    return [name for name in columns if name not in present]


def _csv_batches(path: str, whole: bool, span: Span | None = None) -> Iterator[pa.Table]:
    within = span is not None and span.end is not None
    if whole and within:
        raise ValueError("a span is read in batches, not whole")
    header, alone = _columns(path)
    if alone and not within:
        # A header and no row: with no line break after it, the reader could not skip
        # it and would call the file unreadable.
        return
    _refuse_an_open_quote(path, span)
    read_options = pacsv.ReadOptions(
        column_names=header,
        skip_rows=0 if within else 1,
        block_size=BATCH_BYTES if whole else STREAM_BLOCK_BYTES,
    )
    # Line breaks inside quoted values are read as part of the value wherever a block
    # ends (off, a block could end inside one and fail the file; on costs no time here).
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    # Only an empty cell is empty: the reader's default would also read NA, NULL, nan,
    # N/A and the like as null, where the contract reads text as written.
    convert_options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        packed = _compression(path)
        if whole:  # the threaded reader: 2.5x faster, the whole file in memory
            table = pacsv.read_csv(
                path if packed is None else pa.input_stream(path, compression=packed),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            yield table.combine_chunks()  # one chunk per column: later steps pay per chunk
            return
        with contextlib.ExitStack() as stack:
            source: Any = path
            if packed is not None:
                source = stack.enter_context(pa.input_stream(path, compression=packed))
            elif span is not None and span.end is not None:
                # The span's bytes where the file is mapped, read by Arrow without a copy
                # or a call into Python (1.8M lines: 1.15-1.21 -> 0.97-1.08 s of CPU).
                mapped = stack.enter_context(pa.memory_map(path))
                source = pa.BufferReader(mapped.read_at(span.end - span.start, span.start))
            reader = pacsv.open_csv(
                source,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            gathered: list[pa.RecordBatch] = []
            for batch in reader:
                gathered.append(batch)
                if sum(b.num_rows for b in gathered) >= STREAM_ROWS:
                    yield pa.Table.from_batches(gathered)
                    gathered = []
            if gathered:
                yield pa.Table.from_batches(gathered)
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as error:
        raise _unreadable(path, error, read_options.block_size) from error


def _refuse_an_open_quote(path: str, span: Span | None) -> None:
    """Refuse a file whose last quoted value is never closed (read by its last span or
    whole): the reader would take the rest of the file for that one value, the rows in
    it lost, and the run published (a span ends at a line's end outside any quoted
    value). On the benchmark's 1.47 GB file, its last span: some 16 MB."""
    try:
        if span is not None and span.end is not None:  # a plain file's span
            if span.end < os.path.getsize(path):
                return
            with open(path, "rb") as plain:
                plain.seek(span.start)
                open_quote = ends_in_quoted_value(plain)
        else:
            with pa.input_stream(path, compression=_compression(path)) as stream:
                open_quote = ends_in_quoted_value(stream)
    except OSError as error:
        raise _unreadable(path, error) from error
    if open_quote:
        raise InputError(
            f"{path}: cannot be read as a UTF-8 CSV file: a quoted value is never closed "
            "(a stray double quote at the start of a value?); the rows after it would be lost"
        )


def _parquet_batches(path: str, whole: bool) -> Iterator[pa.Table]:
    try:
        parquet = pq.ParquetFile(path)
        if whole:
            yield _as_text(path, parquet.read())
            return
        for batch in parquet.iter_batches(batch_size=250_000):
            table = pa.Table.from_batches([batch])
            yield _as_text(path, table)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: cannot be read as a Parquet file: {error}") from error


def _as_text(path: str, table: pa.Table) -> pa.Table:
    """A Parquet file's columns as the text a CSV file would hold (:func:`_float_text`)."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            text = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise InputError(
                f"{path}: column {name} of type {column.type} cannot be read as text"
            ) from error
        try:
            text.validate(full=True)  # Parquet's text is not checked as it is read
        except pa.ArrowInvalid as error:
            raise InputError(f"{path}: column {name} is not UTF-8 text") from error
        columns.append(_float_text(text) if pa.types.is_floating(column.type) else text)
    return pa.table(columns, names=[name.strip() for name in table.column_names])


def _float_text(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Floating-point values as text that keeps their point: Arrow writes ``70553.0`` as
    ``70553``, which a code or a line number would then accept, where the contract
    rejects ``70553.0`` (as in a CSV file, or from pandas' ``to_csv``)."""
    whole = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)


def text_batches(
    path: str,
    schema: pa.Schema,
    contract: Sequence[str],
    *,
    whole: bool = False,
    span: Span | None = None,
) -> Iterator[pa.Table]:
    """A file's rows (or a span's) in batches (or ``whole``, one table), as text in
    ``schema``, tidied, with lineage (a span's rows numbered from 1)."""
    kind = file_kind(path)
    if kind == "csv":
        batches = _csv_batches(path, whole, span)
    else:
        batches = _parquet_batches(path, whole)
    first_row = 1
    for table in batches:
        rows = table.num_rows
        present = {*table.column_names, *LINEAGE_COLUMNS}
        lacked = sum(name not in present for name in schema.names)
        empty = iter(empty_columns(rows, [pa.string()] * lacked))  # another file's columns
        columns = []
        for field in schema:
            if field.name == SOURCE_FILE:
                columns.append(constant_text(path, rows))
            elif field.name == SOURCE_ROW:
                columns.append(pa.array(np.arange(first_row, first_row + rows, dtype=np.int64)))
            elif field.name in present:  # a set: the names' list is made anew each call
                column = table.column(field.name)
                columns.append(
                    _tidy(column, may_hold_empty=kind != "csv")
                    if field.name in contract
                    else column
                )
            else:
                columns.append(next(empty))
        first_row += rows
        yield pa.table(columns, schema=schema)
