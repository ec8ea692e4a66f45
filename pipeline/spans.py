"""Where a plain CSV file can be cut into spans that readers read side by side.

Only the standard library and NumPy: the command line cuts the claims files while it
and its workers import the engine (:func:`pipeline.workers.started_early`), so that
the reading starts as soon as the workers can take it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pipeline.errors import InputError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
CUT_BLOCK_BYTES = 1 << 20
"""How much of a file the cutting reads at a time."""


def file_kind(path: str) -> str:
    """``csv`` or ``parquet`` by the file's extension; anything else is refused."""
    name = path.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(f"{path}: unsupported file type; expected .csv, .csv.gz or .parquet")


SPAN_BYTES = 16 << 20
"""A plain CSV file is read in spans of about this many bytes, side by side in workers.
A span is mapped while it is read, and its lines are scattered a batch (``STREAM_ROWS``)
at a time: 16 MB is some 114,000 of the benchmark's lines, one batch, where a 32 MB
span was two and its task held the mapped span and the larger batch at once (a reading
task's peak 251 MiB against 310, median, at 10M lines; the same pieces a partition, 88;
README, Performance)."""


@dataclass(frozen=True)
class Span:
    """Part of an input file, read on its own: bytes ``start`` to ``end`` of a plain CSV
    file, cut after a line's end (``end`` None: the whole file). Its rows are numbered
    from 1 until the rows of the spans before it are known."""

    path: str
    start: int = 0
    end: int | None = None


def spans_of(path: str, span_bytes: int | None = None, *, ways: int = 1) -> list[Span]:
    """``path`` cut into spans of about ``span_bytes`` (:data:`SPAN_BYTES`) after the
    header line: a plain CSV file; any other file is one span. A file of several
    spans is cut into about a multiple of ``ways`` of them (the readers side by side),
    somewhat smaller, so that no reader reads the last one alone.

    A cut falls after a line's end that is not inside a quoted value, as Arrow's
    reader reads quotes (:func:`_quoted_after`: a quote within an unquoted value, as
    in ``5" film``, opens nothing). Where the quotes just past a span's size tell that
    no value is open there (:func:`_synced`: a file that quotes its values, 12 cuts of
    a 200 MB one in 0.012 s), the cut is found there; else by reading on (a file with
    no quotes, the benchmark's 1.5 GB, once: 0.6 s here). Read, not mapped, so that
    the pages read do not count as the process's memory.
    """
    span_bytes = span_bytes or SPAN_BYTES
    if file_kind(path) != "csv" or path.lower().endswith(".gz"):
        return [Span(path)]
    size = Path(path).stat().st_size
    with open(path, "rb") as file:
        header = file.readline()
        payload = size - len(header)
        # A line break the reader sees before the one read here (a lone carriage
        # return, as old Macs ended lines): where the header ends is not known here, so
        # the file is read whole (cut after it, its first row would be lost).
        if not header.endswith(b"\n") or b"\r" in header[:-2] or payload <= span_bytes:
            return [Span(path)]
        spans = math.ceil(payload / span_bytes)
        span_bytes = math.ceil(payload / (math.ceil(spans / ways) * ways))
        cuts = _cuts(file, len(header), size, span_bytes)
    ends = [*cuts[1:], size]
    return [Span(path, start, end) for start, end in zip(cuts, ends, strict=True)]


_QUOTE, _COMMA, _LF, _CR = (ord(c) for c in '",\n\r')


SYNC_BYTES = 1 << 16
"""How far past a span's size the cutting looks for quotes that tell where it stands."""


def _cuts(file: BinaryIO, first: int, size: int, span_bytes: int) -> list[int]:
    """Where spans start: ``first``, then at a line's end outside a quoted value at
    least ``span_bytes`` after the last cut: found near the target where the quotes
    there tell (:func:`_synced`), else by reading on from the last cut."""
    cuts = [first]
    while (target := cuts[-1] + span_bytes) < size:
        cut = _synced(file, target, size)
        if cut is None:
            cut = _scanned(file, cuts[-1], target, size)
        if cut is None:
            break
        cuts.append(cut)
    return cuts


def _synced(file: BinaryIO, target: int, size: int) -> int | None:
    """A cut after ``target`` found from the bytes just after it, or None where they do
    not tell. After an odd run of quotes that is not at a field's start no quoted value
    is open, whatever came before (:func:`_quoted_after`): in a file that quotes its
    values, a value's closing quote; in one that does not, a stray quote. From there,
    the first line's end outside a quoted value is a cut."""
    file.seek(target)
    data = np.frombuffer(_whole_runs(file, file.read(SYNC_BYTES)), np.uint8)
    runs, lengths, at_start = _quote_runs(data, _QUOTE)
    # A run at the window's first byte may go on before it: its length is not known.
    closing = np.flatnonzero((lengths % 2 == 1) & ~at_start & (runs > 0))
    if not len(closing):
        return None
    after = int(runs[closing[0]] + lengths[closing[0]])
    rest = data[after:]
    cut = _first_outside(rest, *_quoted_after(rest, _QUOTE, False), inside=False)
    if cut is None or target + after + cut >= size:
        return None
    return target + after + cut


def _scanned(file: BinaryIO, start: int, target: int, size: int) -> int | None:
    """The first cut after ``target``, reading a block at a time from ``start`` (a cut,
    outside any quoted value), each block's quotes read by :func:`_quoted_after`; None
    where the file ends first."""
    offset, inside, before = start, False, _LF
    file.seek(start)
    while block := _whole_runs(file, file.read(CUT_BLOCK_BYTES)):
        data = np.frombuffer(block, np.uint8)
        runs, quoted = _quoted_after(data, before, inside)
        if offset + len(block) > target:
            skip = max(target + 1 - offset, 0)  # a cut is a line's end at or after target
            cut = _first_outside(data, runs, quoted, inside=inside, skip=skip)
            if cut is not None:
                return offset + cut if offset + cut < size else None
        inside = bool(quoted[-1]) if len(quoted) else inside
        before = int(data[-1])
        offset += len(block)
    return None


def ends_in_quoted_value(file: BinaryIO) -> bool:
    """Whether ``file``, read from a line's start outside any quoted value to its end,
    ends inside a quoted value, as Arrow's reader reads quotes (:func:`_quoted_after`):
    a quote that opens a value and is never closed, which the reader takes, with every
    byte after it, for one value, and so loses every row after it without a word."""
    inside, before = False, _LF
    while block := _whole_runs(file, file.read(CUT_BLOCK_BYTES)):
        data = np.frombuffer(block, np.uint8)
        _, quoted = _quoted_after(data, before, inside)
        inside = bool(quoted[-1]) if len(quoted) else inside
        before = int(data[-1])
    return inside


def _first_outside(
    data: np.ndarray, runs: np.ndarray, quoted: np.ndarray, *, inside: bool, skip: int = 0
) -> int | None:
    """Just after the first line break at or after ``skip`` in ``data`` that is outside
    any quoted value (``runs`` and ``quoted`` from :func:`_quoted_after`, ``inside`` as
    given to it); None if there is none."""
    ends = np.flatnonzero(data == _LF)
    ends = ends[ends + 1 >= skip]
    last_run = np.searchsorted(runs, ends) - 1  # the quotes before each line break
    known = np.append(quoted, inside)  # at -1: no quote before it in the block
    outside = ends[~np.where(last_run >= 0, known[last_run], inside)]
    return int(outside[0]) + 1 if len(outside) else None


def _whole_runs(file: BinaryIO, block: bytes) -> bytes:
    """``block``, read on while it ends with a double quote: a run of quotes is never
    split between two blocks (``""`` is a quote within a value, ``"`` one end of it)."""
    while block.endswith(b'"') and (more := file.read(4096)):
        block += more
    return block


def _quoted_after(data: np.ndarray, before: int, inside: bool) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of double quotes in ``data`` starts, and whether a quoted value is
    open after it, as Arrow's CSV reader reads quotes (``before``: the byte before
    ``data``; ``inside``: whether a quoted value is open at its start).

    Within a quoted value a run of quotes closes it when odd (``""`` is one quote of
    the value). Outside one, a run opens a value when odd and at a field's start (after
    a comma or a line break); elsewhere (``5" film``, an unquoted value) its quotes are
    the value's own, and nothing opens. So an odd run at a field's start flips the
    state, an odd run elsewhere leaves it closed whatever it was, and an even run keeps
    it: the state after each run is the flips since the last such close, counted.
    (Counting every quote, as the cutting did, took a stray quote for an opening one and
    cut a later quoted value at its line break.)"""
    runs, lengths, at_start = _quote_runs(data, before)
    if not len(runs):  # most blocks of a file that quotes nothing
        return runs, np.zeros(0, dtype=bool)
    odd = lengths % 2 == 1
    flips = np.cumsum(odd & at_start)
    closing = np.flatnonzero(odd & ~at_start)
    last_close = np.full(len(runs), -1)
    last_close[closing] = closing
    last_close = np.maximum.accumulate(last_close)
    since = flips - np.where(last_close >= 0, flips[np.maximum(last_close, 0)], 0)
    start = np.where(last_close >= 0, False, inside)
    return runs, start ^ (since % 2 == 1)


def _quote_runs(data: np.ndarray, before: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each run of double quotes in ``data``: where it starts, how many quotes, and
    whether it starts a field (after a comma or a line break; ``before``: the byte
    before ``data``)."""
    quotes = np.flatnonzero(data == _QUOTE)
    if not len(quotes):
        return quotes, quotes, np.zeros(0, dtype=bool)
    new = np.ones(len(quotes), dtype=bool)
    new[1:] = quotes[1:] != quotes[:-1] + 1
    runs = quotes[new]
    lengths = np.diff(np.append(np.flatnonzero(new), len(quotes)))
    previous = np.where(runs > 0, data[np.maximum(runs - 1, 0)], before)
    return runs, lengths, (previous == _COMMA) | (previous == _LF) | (previous == _CR)
