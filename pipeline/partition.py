"""Partitions that bound memory: a stable hash of a key, and spill files on disk.

A partition is a stable hash of a text key modulo the partition count: the same
key lands in the same partition on every machine and every rerun (Python's
``hash()`` is salted per process, so it is not used). Rows are scattered batch
by batch into Arrow IPC files per partition (one per process that writes), then
read back one partition at a time, so peak memory follows the partition size,
not the input size.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from schemas.checks import text_bytes

_MULTIPLIER = np.uint64(1099511628211)
_MAX_POWERS = 256


def _powers(length: int) -> np.ndarray:
    powers = np.ones(max(length, 1), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(1, len(powers)):
            powers[i] = powers[i - 1] * _MULTIPLIER
    return powers


_POWERS = _powers(_MAX_POWERS)


_SHAPES = 16
"""Text of at most this many lengths (up to :data:`_WIDEST` bytes) is hashed a byte
position at a time; other text a byte at a time."""
_WIDEST = 64


def stable_hash(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each text value that is the same on every machine and run.

    Vectorised over the UTF-8 bytes: the sum of (byte + 1) * M**position,
    modulo 2**64, then mixed. Empty and missing values hash alike.

    Ids come in a few lengths: values of one length are summed a byte position at a
    time (a claim id column of 227,000 values in ~6 ms instead of ~45, where each
    byte was widened to 64 bits and summed value by value).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    offsets, data = text_bytes(pc.fill_null(values.cast(pa.large_string()), ""))
    lengths = np.diff(offsets)
    starts = offsets[:-1]
    shapes = np.flatnonzero(np.bincount(lengths)[1:]) + 1 if len(lengths) else lengths
    if len(shapes) <= _SHAPES and int(lengths.max(initial=0)) <= _WIDEST:
        hashed = _by_position(data, starts, lengths, shapes)
    else:
        hashed = _by_byte(data, starts, lengths)
    with np.errstate(over="ignore"):
        hashed ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        hashed ^= hashed >> np.uint64(33)
        hashed *= np.uint64(0xFF51AFD7ED558CCD)
        hashed ^= hashed >> np.uint64(33)
    return hashed


def _by_position(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, shapes: np.ndarray
) -> np.ndarray:
    """The unmixed sums, a length at a time and a byte position at a time."""
    hashed = np.zeros(len(lengths), dtype=np.uint64)
    for length in shapes.tolist():
        rows = np.flatnonzero(lengths == length)
        if len(rows) == len(lengths):  # one length: the bytes are a matrix already
            matrix = data.reshape(len(rows), length)
        else:
            matrix = data[starts[rows][:, None] + np.arange(length)]
        total = np.zeros(len(rows), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for position in range(length):
                byte = matrix[:, position].astype(np.uint64) + np.uint64(1)
                total += byte * _POWERS[position]
        hashed[rows] = total
    return hashed


def _by_byte(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The unmixed sums, every byte of every value at once."""
    longest = int(lengths.max(initial=0))
    powers = _POWERS if longest <= _MAX_POWERS else _powers(longest)
    position = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    hashed = np.zeros(len(lengths), dtype=np.uint64)
    with np.errstate(over="ignore"):
        contribution = (data.astype(np.uint64) + np.uint64(1)) * powers[position]
        filled = lengths > 0
        if filled.any():
            hashed[filled] = np.add.reduceat(contribution, starts[filled])
    return hashed


def take_rows(table: pa.Table, indices: pa.Array | np.ndarray) -> pa.Table:
    """``table.take(indices)`` (see :func:`_each_column`: with 25 of the 66 output
    columns empty, a sixth of the time of a take of decided lines)."""
    indices = pa.array(indices)
    return _each_column(table, len(indices), lambda column: column.take(indices))


def rebatched(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """``tables``' rows, in order, as tables of ``rows`` rows (the last of those left).
    What is left over after each is combined into one piece, letting go of the pieces
    before it."""
    held: list[pa.Table] = []
    count = 0
    for table in tables:
        held.append(table)
        count += table.num_rows
        while count >= rows:
            joined = pa.concat_tables(held)
            yield joined.slice(0, rows)
            held, count = [joined.slice(rows).combine_chunks()], count - rows
    if count:
        yield pa.concat_tables(held)


def filter_rows(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """``table.filter(keep)`` (see :func:`_each_column`: a million lines with 25 of 53
    columns empty kept their 99% in 0.16 s instead of 0.38)."""
    mask = pa.array(keep, pa.bool_())
    return _each_column(table, int(np.count_nonzero(keep)), lambda column: column.filter(mask))


def _each_column(
    table: pa.Table, rows: int, select: Callable[[pa.ChunkedArray], pa.ChunkedArray]
) -> pa.Table:
    """``select`` applied to each column of ``table``, giving ``rows`` rows; a column with
    no value at all is made anew instead (Arrow takes and filters an empty text column
    as slowly as a full one)."""
    empty = [i for i, column in enumerate(table.columns) if column.null_count == len(column)]
    columns = [column if i in empty else select(column) for i, column in enumerate(table.columns)]
    return _emptied(columns, table.schema, empty, rows)


def _emptied(
    columns: list[pa.ChunkedArray], schema: pa.Schema, empty: list[int], rows: int
) -> pa.Table:
    """``columns`` as a table of ``schema``, those at the places ``empty`` made anew as
    ``rows`` nulls (:func:`empty_columns`)."""
    made = empty_columns(rows, [schema.field(i).type for i in empty])
    for i, column in zip(empty, made, strict=True):
        columns[i] = column
    return pa.table(columns, schema=schema)


def empty_columns(rows: int, types: Sequence[pa.DataType]) -> list[pa.Array]:
    """``rows`` nulls of each of ``types``. Columns of text, and of text coded as a
    dictionary, are all made of one buffer of zeros (their validity, their offsets or
    codes), which is not written to: where ``pa.nulls`` allocates and zeroes one for
    each column (25 empty columns of 200,000 lines: 20 MB)."""
    zeros: pa.Buffer | None = None
    columns = []
    for kind in types:
        text = pa.types.is_string(kind)
        coded = pa.types.is_dictionary(kind) and kind.index_type == pa.int32()
        if not (text or coded):
            columns.append(pa.nulls(rows, kind))
            continue
        if zeros is None:  # calloc'd: pages of zeros the system maps only when written
            zeros = pa.py_buffer(np.zeros(4 * (rows + 1), dtype=np.uint8))
        if text:
            columns.append(pa.Array.from_buffers(kind, rows, [zeros, zeros, zeros], rows))
        else:
            nothing = pa.array([], kind.value_type)
            buffers = [zeros, zeros]
            columns.append(pa.DictionaryArray.from_buffers(kind, rows, buffers, nothing, rows))
    return columns


def _sparse(table: pa.Table) -> pa.Table:
    """``table`` with each column that holds no value as Arrow's null type, which a
    spill file stores as nothing: an empty column of text is otherwise stored as its
    offsets, 4 bytes a row (a file with every contract column, 25 of them empty: some
    100 bytes a line in each of the two spills of its lines). See :func:`_dense`."""
    rows = table.num_rows
    empty = [i for i, column in enumerate(table.columns) if column.null_count == rows > 0]
    if not empty:
        return table
    fields, columns = list(table.schema), table.columns
    for i in empty:
        fields[i], columns[i] = fields[i].with_type(pa.null()), pa.nulls(rows)
    return pa.table(columns, schema=pa.schema(fields))


def _dense(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A piece of a spill, written by :func:`_sparse`, in the spill's ``schema``."""
    if table.schema.equals(schema):
        return table
    empty = [i for i, field in enumerate(schema) if table.schema.field(i).type != field.type]
    return _emptied(table.columns, schema, empty, table.num_rows)


def partition_of(values: pa.Array | pa.ChunkedArray, partitions: int) -> np.ndarray:
    """The partition (0 .. partitions-1) of each value."""
    if partitions == 1:
        return np.zeros(len(values), dtype=np.int64)
    return (stable_hash(values) % np.uint64(partitions)).astype(np.int64)


WRITE_BUFFER = 64 << 10
"""Bytes gathered before a spill file is written to, while a table is written (the
buffer lives for one write: see :class:`Spill`). Arrow writes a record batch one buffer
at a time (three a column): unbuffered, a slice of a batch cost some 160 system calls
(at 10M lines, reading took 13.5 s unbuffered and 11.5 s buffered)."""

_PROCESS_WRITERS: dict[Path, Spill] = {}
"""Each process's writer into each spill it writes from tasks (see :meth:`Spill.writer`)."""


def release_writers(keep: Sequence[Spill] = ()) -> None:
    """Close this process's task writers' files (:meth:`Spill.writer`) but those of the
    spills in ``keep``. A spill's files are deleted as they are read, but a deleted
    file's disk and cached pages are freed only once no process holds it open: a pass
    that writes through no task writer lets go of the last pass's as it starts. Else
    all of them are freed only as the process ends: at 10M lines, the decided lines'
    3.6 GB, 0.8 s of the workers' exit, which the run waits for (the time moves into
    the pass that reads them, about as much)."""
    kept = {spill.directory for spill in keep}
    for directory in [d for d in _PROCESS_WRITERS if d not in kept]:
        _PROCESS_WRITERS.pop(directory).close_writers()


_READ_AND_DELETED: list[int] = []
"""Descriptors of the spill files this process read and deleted, held open until the
task that read them is done (:func:`let_go_of_read_files`)."""

_CLOSING: queue.SimpleQueue[list[int]] | None = None


def _delete_read(path: Path) -> None:
    """Delete a spill file just read, its last close left to :func:`let_go_of_read_files`.

    Freeing a file's disk can block: on a file system mounted with ``discard``, the
    process that drops a deleted file's last reference waits while the device is told
    of its blocks (sampled every 50 ms over a 10M run: the run's processes so blocked
    some 5 s in all, a core idle meanwhile). A table read from a file maps it, and the
    mapping was the last reference, dropped with the table in the middle of a task;
    held open here, the file's last reference is this descriptor, closed in a thread
    of its own (10M by turns, six runs each: 40.8 s against 43.9, the same output)."""
    _READ_AND_DELETED.append(os.open(path, os.O_RDONLY))
    path.unlink()


def let_go_of_read_files() -> None:
    """Close the spill files read and deleted (:func:`_delete_read`), in a thread of
    their own, once the tables read from them are dropped (at the end of a task): what
    freeing them costs then overlaps the next task's work."""
    global _CLOSING  # noqa: PLW0603 (one closing thread per process, started once)
    if not _READ_AND_DELETED:
        return
    if _CLOSING is None:
        _CLOSING = queue.SimpleQueue()
        threading.Thread(
            target=_close_each, args=(_CLOSING,), name="spill-closing", daemon=True
        ).start()
    _CLOSING.put(_READ_AND_DELETED.copy())
    _READ_AND_DELETED.clear()


def _close_each(descriptors: queue.SimpleQueue[list[int]]) -> None:
    while True:
        for descriptor in descriptors.get():
            os.close(descriptor)


class Spill:
    """Arrow IPC files per partition in a directory of their own.

    The process that makes a spill scatters rows into it directly (``add``).
    Tasks, in that process or in workers, write through :meth:`writer`: one
    file per partition and process, left open from task to task. A partition
    is read back as the files of every writer, in the order of their names;
    what reads a partition written by several processes must not depend on
    the order of its rows (the engine's kernel does not, and the output is
    sorted).

    Each write appends a whole IPC stream to its file (schema, dictionaries, the
    rows, end of stream), through a buffer that lives for that write only: what a
    file kept open holds between writes is its descriptor, so a process writing to
    a file per partition (or per output range) holds the same memory however many
    there are. Kept as one stream a file, each open file held an IPC writer and its
    buffer: between tasks, a worker held 8 MiB of Arrow's memory for 380 output
    ranges at 50M lines, against 4 MiB for 77 at 10M.
    A file is read as its streams one after the other.
    """

    def __init__(
        self,
        partitions: int,
        schema: pa.Schema,
        where: Path | None = None,
        *,
        directory: Path | None = None,
        source: int = 0,
    ) -> None:
        self.partitions = partitions
        self.schema = schema
        self.source = source
        self.directory = directory or Path(tempfile.mkdtemp(prefix="adjudicate-spill-", dir=where))
        self._owner = directory is None
        self._files: dict[int, pa.NativeFile] = {}
        self._written: set[int] = set()

    def writer(self, beside: Sequence[Spill] = ()) -> Spill:
        """This process's writer into the same files, for tasks: its own file per
        partition, kept open across tasks. Each write is a whole stream in the file once
        written, so once a task has returned its rows can be read, whether or not the
        writer is closed.

        A process's task writers write into one pass's spills at a time, so asking for
        this spill's writer closes the files of any other but those written ``beside``
        it in the same pass. A task that runs beside another pass's (the register's,
        beside the claims' reading and the claim index's) writes with :meth:`add_as`
        instead.
        """
        release_writers(keep=[self, *beside])
        writer = _PROCESS_WRITERS.get(self.directory)
        if writer is None:
            writer = Spill(
                self.partitions, self.schema, directory=self.directory, source=os.getpid()
            )
            _PROCESS_WRITERS[self.directory] = writer
        return writer

    def _path(self, partition: int) -> Path:
        return self.directory / f"{partition:05d}-{self.source:07d}.arrow"

    def add(self, table: pa.Table, partition: np.ndarray, *, once: bool = False) -> None:
        """Scatter ``table``'s rows to their partitions, keeping their order within each.

        A row whose partition is negative is left out (one copy of the rows, not a
        filter and then a scatter). ``once``: each file is closed as soon as it is
        written, and opened again to append to should its partition be written again
        (one file open at a time, however many partitions).
        """
        table = table.select(self.schema.names).cast(self.schema)
        dropped = int(np.count_nonzero(partition < 0))
        if self.partitions == 1 and not dropped:
            self._write(0, table, close=once)
            return
        counts = np.bincount(partition[partition >= 0], minlength=self.partitions)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        if not dropped and bool(np.all(partition[1:] >= partition[:-1])):
            shuffled = table  # already in partition order: slices of it, no copy
        else:
            shuffled = take_rows(table, np.argsort(partition, kind="stable")[dropped:])
        for index in np.flatnonzero(counts):
            self._write(int(index), shuffled.slice(bounds[index], counts[index]), close=once)

    def add_as(self, task: int, table: pa.Table, partition: np.ndarray) -> None:
        """Scatter one task's rows (as :meth:`add`) into files of the task's own, named
        by ``task`` and each closed once written: nothing is left open in the process,
        whose task writers may be open on another pass's spills."""
        own = Spill(self.partitions, self.schema, directory=self.directory, source=task)
        own.add(table, partition, once=True)

    def _write(self, partition: int, table: pa.Table, *, close: bool = False) -> None:
        file = self._files.get(partition)
        if file is None:
            mode = "ab" if partition in self._written else "wb"  # written, then closed
            file = self._files[partition] = pa.OSFile(str(self._path(partition)), mode)
        sink = pa.BufferedOutputStream(file, buffer_size=WRITE_BUFFER)
        table = _sparse(table)
        try:
            with ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
        except BaseException:
            # Stopped in the middle (the run interrupted): the buffer and its file closed
            # now, not when the buffer is let go of, after the spill closed the file
            # (Arrow then reports writing to a closed file).
            self._files.pop(partition)
            sink.close()
            raise
        sink.detach()  # the buffer written to the file, which stays open
        self._written.add(partition)
        if close:
            self._files.pop(partition).close()

    def close_writers(self) -> None:
        """Close the files, this process's task writer's too. What was written can be
        read before (each write is a whole stream, in the file once written)."""
        for file in self._files.values():
            file.close()
        self._files.clear()
        task_writer = _PROCESS_WRITERS.pop(self.directory, None)
        if task_writer is not None and task_writer is not self:
            task_writer.close_writers()

    def read(self, partition: int, *, combine_every: int = 0) -> pa.Table:
        """One partition's rows: each writer's in the order added, writers in order.

        Each partition is read once: its files are deleted as they are read (the
        table maps them; the disk space is freed once the task is done, see
        :func:`let_go_of_read_files`).

        ``combine_every``: the files are read into memory rather than mapped, and
        each run of this many pieces (a piece a write), and the last run, is combined
        into one as it is read. Arrow keeps its objects for every piece a table holds,
        and a partition written by many tasks comes in as many pieces.
        """
        combined: list[pa.Table] = []
        tables: list[pa.Table] = []

        def combine() -> None:  # the pieces read so far, as one
            if combine_every and tables:
                combined.append(pa.concat_tables(tables).combine_chunks())
                tables.clear()

        for table in self.pieces(partition, mapped=not combine_every):
            tables.append(table)
            if len(tables) == combine_every:
                combine()
        combine()
        if not combined and not tables:
            return self.schema.empty_table()
        return pa.concat_tables([*combined, *tables])

    def pieces(
        self, partition: int, *, mapped: bool = True, keep: bool = False
    ) -> Iterator[pa.Table]:
        """One partition's rows a piece (a write) at a time, in :meth:`read`'s order:
        ``mapped``, each file is mapped rather than read into memory; its files are
        deleted once read (see :meth:`read`), unless ``keep``, for reading again."""
        for path in sorted(self.directory.glob(f"{partition:05d}-*.arrow")):
            file: pa.NativeFile = (
                pa.BufferReader(pa.memory_map(str(path)).read_buffer())
                if mapped
                else pa.OSFile(str(path))
            )
            while file.tell() < file.size():  # a stream a write
                with ipc.open_stream(file) as reader:
                    table = _dense(reader.read_all(), self.schema)
                yield table
            file.close()
            if not keep:
                _delete_read(path)

    def gather(self, partition: int) -> int:
        """Rewrite one partition's files as one file of one piece (a stream of one record
        batch), its rows in the order :meth:`read` gives them; how many rows. A partition
        read in many pieces holds Arrow's objects for each while it is read and ordered
        (~15 KB a piece of 30 columns), and the pieces grow with the input's batches."""
        table = self.read(partition)
        if table.num_rows:
            one = Spill(self.partitions, self.schema, directory=self.directory)
            one._write(partition, table.combine_chunks(), close=True)
        return table.num_rows

    def __iter__(self) -> Iterator[tuple[int, pa.Table]]:
        self.close_writers()
        for partition in range(self.partitions):
            yield partition, self.read(partition)

    def remove(self) -> None:
        """Delete the spill files (only the spill that made the directory does)."""
        self.close_writers()
        if self._owner:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
