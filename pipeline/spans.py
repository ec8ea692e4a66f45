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
    in ``5" film``, opens nothing). Finding the cuts reads the file once (about half
    a second for the benchmark's 1.5 GB file here; read, not mapped, so that the
    pages read do not count as the process's memory).
    """
    span_bytes = span_bytes or SPAN_BYTES
    if file_kind(path) != "csv" or path.lower().endswith(".gz"):
        return [Span(path)]
    size = Path(path).stat().st_size
    with open(path, "rb") as file:
        header = file.readline()
        payload = size - len(header)
        if not header.endswith(b"\n") or payload <= span_bytes:
            return [Span(path)]
        spans = math.ceil(payload / span_bytes)
        span_bytes = math.ceil(payload / (math.ceil(spans / ways) * ways))
        cuts = _cuts(file, len(header), size, span_bytes)
    ends = [*cuts[1:], size]
    return [Span(path, start, end) for start, end in zip(cuts, ends, strict=True)]


_QUOTE, _COMMA, _LF, _CR = (ord(c) for c in '",\n\r')


def _cuts(file: BinaryIO, first: int, size: int, span_bytes: int) -> list[int]:
    """Where spans start: ``first``, then at each line's end outside a quoted value
    at least ``span_bytes`` after the last cut. Reads ``file`` from ``first`` on, a
    block at a time, each block's quotes read by :func:`_quoted_after`."""
    cuts, offset, inside, before = [first], first, False, _LF
    target = first + span_bytes
    file.seek(first)
    while target < size and (block := _whole_runs(file, file.read(CUT_BLOCK_BYTES))):
        data = np.frombuffer(block, np.uint8)
        runs, quoted = _quoted_after(data, before, inside)
        if offset + len(block) > target:
            ends = np.flatnonzero(data == _LF)
            last_run = np.searchsorted(runs, ends) - 1  # the quotes before each line end
            known = np.append(quoted, inside)  # at -1: no quote before it in the block
            outside = ~np.where(last_run >= 0, known[last_run], inside)
            candidates = ends[outside] + 1 + offset  # where a span could start
            while (at := int(np.searchsorted(candidates, target + 1))) < len(candidates):
                if candidates[at] >= size:
                    break
                cuts.append(int(candidates[at]))
                target = cuts[-1] + span_bytes
        inside = bool(quoted[-1]) if len(quoted) else inside
        before = int(data[-1])
        offset += len(block)
    return cuts


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
    quotes = np.flatnonzero(data == _QUOTE)
    if not len(quotes):
        return quotes, np.zeros(0, dtype=bool)
    new = np.ones(len(quotes), dtype=bool)
    new[1:] = quotes[1:] != quotes[:-1] + 1
    runs = quotes[new]
    odd = np.diff(np.append(np.flatnonzero(new), len(quotes))) % 2 == 1
    previous = np.where(runs > 0, data[np.maximum(runs - 1, 0)], before)
    at_start = (previous == _COMMA) | (previous == _LF) | (previous == _CR)
    flips = np.cumsum(odd & at_start)
    closing = np.flatnonzero(odd & ~at_start)
    last_close = np.full(len(runs), -1)
    last_close[closing] = closing
    last_close = np.maximum.accumulate(last_close)
    since = flips - np.where(last_close >= 0, flips[np.maximum(last_close, 0)], 0)
    start = np.where(last_close >= 0, False, inside)
    return runs, start ^ (since % 2 == 1)
