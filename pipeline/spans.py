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

    A cut falls after a line's end that is not inside a quoted value: where the
    double quotes before it, from the first data row, are even in number (a quote
    inside a quoted value is written twice, so it keeps the count even). Finding
    the cuts reads the file once, counting quotes (about a second a GB here; read,
    not mapped, so that the pages read do not count as the process's memory).
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


def _cuts(file: BinaryIO, first: int, size: int, span_bytes: int) -> list[int]:
    """Where spans start: ``first``, then at each line's end outside a quoted value
    at least ``span_bytes`` after the last cut. Reads ``file`` from ``first`` on."""
    cuts, quotes, offset = [first], 0, first
    target = first + span_bytes
    file.seek(first)
    while target < size and (block := file.read(CUT_BLOCK_BYTES)):
        at = 0
        while at < len(block):
            if offset + at < target:  # count quotes up to the target
                upto = min(len(block), target - offset)
                quotes += _quotes(block, at, upto)
                at = upto
                continue
            end = block.find(b"\n", at)  # then to the end of a line outside quotes
            if end < 0:
                quotes += block.count(b'"', at)
                break
            quotes += block.count(b'"', at, end + 1)
            at = end + 1
            if quotes % 2 == 0 and offset + at < size:
                cuts.append(offset + at)
                target = offset + at + span_bytes
        offset += len(block)
    return cuts


def _quotes(block: bytes, start: int, end: int) -> int:
    """The double quotes in ``block[start:end]``, counted by NumPy (a 1.5 GB file's
    quotes in 0.28 s against 0.59 s by ``bytes.count``, reading included)."""
    return int(np.count_nonzero(np.frombuffer(block, np.uint8, end - start, start) == ord('"')))
