"""One Parquet file from row groups encoded apart, joined in order.

Each part is a whole Parquet file of one row group, written with the file's schema and
settings (the workers encode them side by side: encoding is the costly part of writing).
A part's column chunks lie between its leading magic bytes and its footer; they are
copied into the joined file as they are, and the part's row group is kept with its
offsets moved by where its bytes landed. The footer is Thrift's compact protocol, read
and written here field by field, each kept as read but those offsets, the row group's
ordinal and the file's row count. Row groups joined this way give the bytes one writer
would have written them as (a test says so).

Parts may hold nothing the format keeps outside the column chunks (page indexes, bloom
filters, encryption): such a part is refused.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"PAR1"

# Thrift compact protocol types.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _STRUCT = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12,
)  # fmt: skip

Fields = list[list[Any]]
"""A Thrift struct as read: [field id, type, value] in the order written."""

# Parquet's footer, the fields this module reads or moves (parquet.thrift).
_FILE_NUM_ROWS, _FILE_ROW_GROUPS = 3, 4
_GROUP_COLUMNS, _GROUP_FILE_OFFSET, _GROUP_ORDINAL = 1, 5, 7
_CHUNK_FILE_OFFSET, _CHUNK_META, _CHUNK_FILE_PATH = 2, 3, 1
_CHUNK_OUTSIDE = {4: "offset index", 6: "column index", 8: "encryption", 9: "encryption"}
_META_OFFSETS = (9, 10, 11)  # data, index and dictionary page offsets
_META_OUTSIDE = {14: "bloom filter"}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        value = self.data[self.at]
        self.at += 1
        return value

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def integer(self) -> int:
        raw = self.varint()
        return (raw >> 1) ^ -(raw & 1)

    def raw(self, size: int) -> bytes:
        value = self.data[self.at : self.at + size]
        self.at += size
        return value

    def fields(self) -> Fields:
        fields: Fields = []
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            kind, delta = head & 0x0F, head >> 4
            number = last + delta if delta else self.integer()
            value = kind == _TRUE if kind in (_TRUE, _FALSE) else self.value(kind)
            fields.append([number, kind, value])
            last = number

    def value(self, kind: int) -> Any:
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.integer()
        if kind == _DOUBLE:
            return self.raw(8)
        if kind == _BINARY:
            return self.raw(self.varint())
        if kind in (_LIST, _SET):
            head = self.byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            read = self.byte if element in (_TRUE, _FALSE) else lambda: self.value(element)
            return (element, [read() for _ in range(size)])
        if kind == _STRUCT:
            return self.fields()
        raise ValueError(f"a Parquet footer holds no Thrift type {kind}")


class _Encoded(bytes):
    """A Thrift struct already written (its fields and their stop byte), written as is."""


def _encoded(fields: Fields) -> _Encoded:
    """``fields`` as the compact protocol writes a struct."""
    out = _Writer()
    out.fields(fields)
    return _Encoded(out.out)


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, value: int) -> None:
        while value >= 0x80:
            self.out.append((value & 0x7F) | 0x80)
            value >>= 7
        self.out.append(value)

    def integer(self, value: int) -> None:
        self.varint((value << 1) ^ (value >> 63))

    def fields(self, fields: Fields | _Encoded) -> None:
        if isinstance(fields, _Encoded):
            self.out += fields
            return
        last = 0
        for number, kind, value in fields:
            boolean = kind in (_TRUE, _FALSE)
            written = (_TRUE if value else _FALSE) if boolean else kind
            if 0 < number - last <= 15:
                self.out.append((number - last) << 4 | written)
            else:
                self.out.append(written)
                self.integer(number)
            if not boolean:
                self.value(kind, value)
            last = number
        self.out.append(0)

    def value(self, kind: int, value: Any) -> None:
        if kind == _BYTE:
            self.out.append(value)
        elif kind in (_I16, _I32, _I64):
            self.integer(value)
        elif kind == _DOUBLE:
            self.out += value
        elif kind == _BINARY:
            self.varint(len(value))
            self.out += value
        elif kind in (_LIST, _SET):
            element, items = value
            if len(items) < 15:
                self.out.append(len(items) << 4 | element)
            else:
                self.out.append(0xF0 | element)
                self.varint(len(items))
            for item in items:
                if element in (_TRUE, _FALSE):
                    self.out.append(item)
                else:
                    self.value(element, item)
        elif kind == _STRUCT:
            self.fields(value)
        else:
            raise ValueError(f"a Parquet footer holds no Thrift type {kind}")


def _field(fields: Fields, number: int) -> list[Any] | None:
    return next((field for field in fields if field[0] == number), None)


def _footer(path: Path) -> tuple[Fields, int]:
    """A Parquet file's footer, and where it starts."""
    with open(path, "rb") as file:
        file.seek(-8, os.SEEK_END)
        tail = file.read(8)
        if tail[4:] != MAGIC:
            raise ValueError(f"{path.name} is not a Parquet file")
        size = struct.unpack("<i", tail[:4])[0]
        start = file.seek(-8 - size, os.SEEK_END)
        return _Reader(file.read(size)).fields(), start


def _changed(fields: Fields, changes: dict[int, Callable[[Any], Any]]) -> Fields:
    """``fields`` with the values of those numbered in ``changes`` changed by them."""
    return [
        [number, kind, changes[number](value) if number in changes else value]
        for number, kind, value in fields
    ]


def _moved(group: Fields, by: int, ordinal: int, part: str) -> Fields:
    """A part's row group with its offsets moved ``by`` bytes, numbered ``ordinal``."""

    def chunk(fields: Fields) -> Fields:
        for number, _, _ in fields:
            if number in _CHUNK_OUTSIDE:
                raise ValueError(f"{part} holds a {_CHUNK_OUTSIDE[number]}, which is not joined")
            if number == _CHUNK_FILE_PATH:
                raise ValueError(f"{part} keeps a column chunk in another file")
        # Arrow writes a chunk's (deprecated) file offset as 0: kept so.
        return _changed(fields, {_CHUNK_FILE_OFFSET: lambda at: at and at + by, _CHUNK_META: meta})

    def meta(fields: Fields) -> Fields:
        for number, _, _ in fields:
            if number in _META_OUTSIDE:
                raise ValueError(f"{part} holds a {_META_OUTSIDE[number]}, which is not joined")
        return _changed(fields, dict.fromkeys(_META_OFFSETS, lambda at: at + by))

    return _changed(
        group,
        {
            _GROUP_COLUMNS: lambda chunks: (chunks[0], [chunk(c) for c in chunks[1]]),
            _GROUP_FILE_OFFSET: lambda at: at + by,
            _GROUP_ORDINAL: lambda _: ordinal,  # Arrow writes none (yet)
        },
    )


class JoinedParquet:
    """A Parquet file written from parts (see the module), one :meth:`add` at a time."""

    def __init__(self, path: Path) -> None:
        self.file: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed by close or exit)
        self.digest = hashlib.sha256()
        """The SHA-256 of the bytes written so far: the file's, once closed."""
        self._write(MAGIC)
        self.first: Fields | None = None
        self.groups: list[_Encoded] = []
        """The row groups joined, each kept as its footer will hold it: as bytes, where
        Python's lists of its fields took some 40 times as much (~3 KB a column chunk:
        at 50M lines, 380 groups of 66 columns, the run's parent grew by ~90 MB over
        the write pass)."""
        self.rows = 0

    def add(self, part: Path) -> None:
        """Copy ``part``'s row group to the end of the file."""
        footer, end = _footer(part)
        groups = _field(footer, _FILE_ROW_GROUPS)
        if groups is None or len(groups[2][1]) != 1:
            raise ValueError(f"{part.name} is not one row group")
        if self.first is None:
            self.first = footer
        elif _without_groups(footer) != _without_groups(self.first):
            raise ValueError(f"{part.name} differs in schema or settings from the first part")
        by = self.file.tell() - len(MAGIC)
        with open(part, "rb") as source:
            source.seek(len(MAGIC))
            remaining = end - len(MAGIC)
            while remaining:
                chunk = source.read(min(remaining, 1 << 24))
                if not chunk:
                    raise ValueError(f"{part.name} ends early")
                self._write(chunk)
                remaining -= len(chunk)
        self.groups.append(_encoded(_moved(groups[2][1][0], by, len(self.groups), part.name)))
        rows = _field(footer, _FILE_NUM_ROWS)
        self.rows += rows[2] if rows is not None else 0

    def close(self) -> int:
        """Write the footer; the rows written. At least one part must have been added."""
        if self.first is None:
            raise ValueError("no part to join: a file of no rows is written by one writer")
        footer = _changed(
            self.first,
            {
                _FILE_NUM_ROWS: lambda _: self.rows,
                _FILE_ROW_GROUPS: lambda groups: (groups[0], self.groups),
            },
        )
        out = _Writer()
        out.fields(footer)
        self._write(bytes(out.out))
        self._write(struct.pack("<i", len(out.out)))
        self._write(MAGIC)
        self.file.close()
        return self.rows

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.digest.update(data)

    def __enter__(self) -> JoinedParquet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _without_groups(footer: Fields) -> Sequence[list[Any]]:
    return [field for field in footer if field[0] not in (_FILE_NUM_ROWS, _FILE_ROW_GROUPS)]
