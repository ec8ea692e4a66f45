"""Claims files read in spans, side by side: the same rows, numbered as in the file."""

from __future__ import annotations

import io as io_module
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pipeline import io
from pipeline import spans as spans_module
from pipeline.errors import InputError
from pipeline.io import SOURCE_ROW, text_batches, text_schema
from pipeline.spans import Span, spans_of
from schemas import claims as claims_contract

HEADER = "claim_id,member_id,note\n"


def _rows(path: Path, spans: list[Span]) -> list[tuple[str | None, ...]]:
    """Every row of every span, in order, with its row numbered within the file."""
    schema = text_schema([str(path)], contract=["claim_id", "member_id"], required=[])
    rows: list[tuple[str | None, ...]] = []
    for span in spans:
        before = len(rows)
        for batch in text_batches(str(path), schema, ["claim_id", "member_id"], span=span):
            numbered = batch.set_column(
                batch.schema.get_field_index(SOURCE_ROW),
                SOURCE_ROW,
                pa.array([n + before for n in batch.column(SOURCE_ROW).to_pylist()]),
            )
            columns = (numbered.column(c).to_pylist() for c in numbered.column_names)
            rows.extend(zip(*columns, strict=True))
    return rows


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("last_newline", [True, False])
def test_spans_cover_the_rows_once_at_line_ends(
    tmp_path: Path, ending: str, last_newline: bool
) -> None:
    lines = [f'C{n:04d},M{n % 7},"a, quoted ""note"" {n}"' for n in range(500)]
    text = HEADER.replace("\n", ending) + ending.join(lines) + (ending if last_newline else "")
    path = tmp_path / "claims.csv"
    path.write_bytes(("\ufeff" + text).encode())  # with a byte-order mark
    spans = spans_of(str(path), span_bytes=1_000)
    assert len(spans) > 10
    data = path.read_bytes()
    assert spans[0].start == data.index(b"\n") + 1
    for before, after in zip(spans, spans[1:], strict=False):
        assert before.end == after.start and data[after.start - 1 : after.start] == b"\n"
    assert spans[-1].end == len(data)
    assert _rows(path, spans) == _rows(path, [Span(str(path))])
    assert len(_rows(path, spans)) == 500


@pytest.mark.parametrize("ways", [2, 4])
def test_spans_come_in_a_multiple_of_the_readers(tmp_path: Path, ways: int) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(HEADER + "".join(f"C{n:04d},M{n % 7},note {n}\n" for n in range(500)))
    alone = spans_of(str(path), span_bytes=1_000)
    spans = spans_of(str(path), span_bytes=1_000, ways=ways)
    assert len(alone) % ways and len(spans) % ways == 0  # no reader left with the last
    assert _rows(path, spans) == _rows(path, alone)


def test_small_files_and_compressed_files_are_one_span(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(HEADER + "C1,M1,x\n")
    assert spans_of(str(path)) == [Span(str(path))]
    gz = tmp_path / "claims.csv.gz"
    gz.write_bytes(b"")
    assert spans_of(str(gz), span_bytes=1) == [Span(str(gz))]


@pytest.mark.parametrize("rows_end", ["\r\n", "\r"])
def test_a_header_ended_by_a_carriage_return_is_read_whole(tmp_path: Path, rows_end: str) -> None:
    path = tmp_path / "claims.csv"
    rows = [f'C{n:04d},M{n % 7},"note\n{n}"' for n in range(200)]
    path.write_text(HEADER.replace("\n", "\r") + rows_end.join(rows) + rows_end, newline="")
    spans = spans_of(str(path), span_bytes=500)
    assert spans == [Span(str(path))]
    assert len(_rows(path, spans)) == 200


def test_a_span_ends_where_its_long_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(HEADER + "C1,M1," + "x" * 5_000 + "\nC2,M2,y\nC3,M3,z\n")
    spans = spans_of(str(path), span_bytes=100)
    assert [s.end for s in spans[:-1]] == [s.start for s in spans[1:]]
    assert _rows(path, spans) == _rows(path, [Span(str(path))])


def test_a_quoted_value_with_a_line_break_is_never_cut(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    lines = [f'C{n:04d},M{n % 7},"first line\nsecond ""line"" {n}"' for n in range(300)]
    path.write_text(HEADER + "\n".join(lines) + "\n")
    spans = spans_of(str(path), span_bytes=500)
    assert len(spans) > 10
    data = path.read_bytes()
    assert all(data[: span.start].count(b'"') % 2 == 0 for span in spans)
    rows = _rows(path, spans)
    assert rows == _rows(path, [Span(str(path))])
    assert rows[1][2] == 'first line\nsecond "line" 1'


NOTES = [
    "plain",
    '5" film',  # a quote inside an unquoted value is the value's own
    'a 12" coil',
    'x"',
    '"quoted, with a comma"',
    '"line one\nline two"',
    '"he said ""hi"""',
    '""',
    '"""quoted"" first"',
    '"two\r\nbreaks\nhere"',
]


@pytest.mark.parametrize("seed", range(8))
def test_a_file_reads_the_same_whatever_its_cuts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Stray quotes in unquoted values, and quoted values with quotes and line breaks,
    in random order: the rows read span by span are the rows read whole, for spans of
    any size and blocks small enough that runs of quotes meet their edges."""
    draw = random.Random(seed)
    monkeypatch.setattr(spans_module, "CUT_BLOCK_BYTES", draw.choice([7, 64, 1000]))
    # Small windows: the quotes near a target often do not tell, and the file is read on.
    monkeypatch.setattr(spans_module, "SYNC_BYTES", draw.choice([3, 40, 1 << 16]))
    path = tmp_path / "claims.csv"
    notes = [draw.choice(NOTES) for _ in range(400)]
    path.write_text(HEADER + "".join(f"C{n:04d},M{n % 7},{note}\n" for n, note in enumerate(notes)))
    whole = _rows(path, [Span(str(path))])
    assert len(whole) == 400
    for span_bytes in (30, 97, 500, 2_000):
        spans = spans_of(str(path), span_bytes=span_bytes)
        assert len(spans) > 1
        assert _rows(path, spans) == whole, span_bytes


def _read_all(path: Path, spans: list[Span]) -> int:
    schema = text_schema([str(path)], contract=["claim_id", "member_id"], required=[])
    return sum(
        batch.num_rows
        for span in spans
        for batch in text_batches(str(path), schema, ["claim_id", "member_id"], span=span)
    )


@pytest.mark.parametrize("at", [3, 200, 397])
@pytest.mark.parametrize("span_bytes", [None, 97, 2_000])
def test_a_quote_that_never_closes_fails_the_file(
    tmp_path: Path, at: int, span_bytes: int | None
) -> None:
    """Arrow's reader takes a value opened by a quote that never closes, and every byte
    after it, for one value: without a word, the rows after it were lost. (No quote
    after it: a later one would close it, as the reader reads quotes.)"""
    path = tmp_path / "claims.csv"
    notes = [NOTES[n % len(NOTES)] if n < at else "plain" for n in range(400)]
    notes[at] = '"never closed'
    path.write_text(HEADER + "".join(f"C{n:04d},M{n % 7},{note}\n" for n, note in enumerate(notes)))
    spans = [Span(str(path))] if span_bytes is None else spans_of(str(path), span_bytes=span_bytes)
    with pytest.raises(InputError, match="a quoted value is never closed"):
        _read_all(path, spans)
    notes[at] = '"closed"'
    path.write_text(HEADER + "".join(f"C{n:04d},M{n % 7},{note}\n" for n, note in enumerate(notes)))
    spans = [Span(str(path))] if span_bytes is None else spans_of(str(path), span_bytes=span_bytes)
    assert _read_all(path, spans) == 400


@pytest.mark.parametrize("seed", range(4))
def test_an_open_quote_at_the_end_is_found_as_arrow_reads_it(seed: int) -> None:
    """Arrow as the oracle: a file ends inside a quoted value when a row written after
    it is read into that value instead of as a row of its own."""
    draw = random.Random(seed)
    pieces = [*NOTES, '"open', 'x"', '"a""', '""b', '"""', ",", "\r"]
    found = {True: 0, False: 0}
    for _ in range(300):
        body = "".join(
            f"C{n},M,{draw.choice(pieces)}{draw.choice(pieces) if draw.random() < 0.3 else ''}"
            + draw.choice(["\n", "\r\n"])
            for n in range(draw.randint(1, 6))
        )
        data = (HEADER + body).encode()
        try:
            read = pacsv.read_csv(
                pa.BufferReader(data + b"SENTINEL,S,S\n"),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
            )
        except pa.ArrowInvalid:
            continue  # a row of more or fewer fields: refused by the reader anyway
        open_in_arrow = "SENTINEL" not in read.column("claim_id").to_pylist()
        assert spans_module.ends_in_quoted_value(io_module.BytesIO(data)) == open_in_arrow, body
        found[open_in_arrow] += 1
    assert found[True] > 10 and found[False] > 10, found


@pytest.mark.parametrize("whole", [True, False])
def test_a_line_break_in_a_quoted_value_may_fall_at_a_block_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole: bool
) -> None:
    monkeypatch.setattr(io, "STREAM_BLOCK_BYTES", 100)
    monkeypatch.setattr(io, "BATCH_BYTES", 100)
    path = tmp_path / "claims.csv"
    lines = [f'C{n:04d},M{n % 7},"first line\nsecond line {n}"' for n in range(300)]
    path.write_text(HEADER + "\n".join(lines) + "\n")
    schema = text_schema([str(path)], contract=["claim_id", "member_id"], required=[])
    read = pa.concat_tables(text_batches(str(path), schema, ["claim_id", "member_id"], whole=whole))
    assert read.column("note").to_pylist() == [f"first line\nsecond line {n}" for n in range(300)]


def test_claims_schema_reads_a_span(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine reads with the claims contract; spans follow SPAN_BYTES when it changes.
    monkeypatch.setattr(spans_module, "SPAN_BYTES", 10_000)
    samples = str(Path(__file__).resolve().parents[1] / "data" / "samples" / "claims.csv")
    schema = text_schema(
        [samples],
        contract=claims_contract.CONTRACT_COLUMNS,
        required=claims_contract.REQUIRED_COLUMNS,
        one_of=[("claim_line_start_date", "claim_start_date")],
    )
    spans = spans_of(samples)
    assert len(spans) > 1
    whole = pa.concat_tables(text_batches(samples, schema, claims_contract.CONTRACT_COLUMNS))
    parts = [
        pa.concat_tables(text_batches(samples, schema, claims_contract.CONTRACT_COLUMNS, span=span))
        for span in spans
    ]
    # The same rows, each numbered within its span.
    together = pa.concat_tables(parts).drop_columns([SOURCE_ROW])
    assert together.equals(whole.drop_columns([SOURCE_ROW]))
    assert [p.column(SOURCE_ROW)[0].as_py() for p in parts] == [1] * len(parts)


@pytest.mark.parametrize("span_bytes", [None, 30])
def test_values_are_trimmed_and_blank_is_empty(tmp_path: Path, span_bytes: int | None) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(HEADER + ' C1,"  ", n \nC2 ,\tM2,x\nC3,M3\t,"a b"\nC4,M4,\n')
    spans = spans_of(str(path), span_bytes=span_bytes) if span_bytes else [Span(str(path))]
    # Contract columns are trimmed; a column outside the contract is kept as written.
    assert [r[:3] for r in _rows(path, spans)] == [
        ("C1", None, " n "),
        ("C2", "M2", "x"),
        ("C3", "M3", "a b"),
        ("C4", "M4", None),
    ]


@pytest.mark.parametrize("whole", [True, False])
def test_words_that_mean_missing_elsewhere_are_read_as_written(tmp_path: Path, whole: bool) -> None:
    # The CSV reader's default would read these as null: the contract reads text as
    # written, and only an empty cell is empty.
    words = ["NA", "NULL", "null", "nan", "NaN", "N/A", "n/a", "#N/A", "-nan", "1.#QNAN"]
    path = tmp_path / "claims.csv"
    path.write_text(HEADER + "".join(f"C{n},{word},{word}\n" for n, word in enumerate(words)))
    schema = text_schema([str(path)], contract=["claim_id", "member_id"], required=[])
    batches = text_batches(str(path), schema, ["claim_id", "member_id"], whole=whole)
    table = pa.concat_tables(list(batches))
    assert table.column("member_id").to_pylist() == words  # a contract column
    assert table.column("note").to_pylist() == words  # and one passed through


def test_a_column_is_lacked_only_when_no_file_has_it(tmp_path: Path) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("claim_id,member_id\nC1,M1\n")
    second.write_text("claim_id,note\nC2,x\n")
    files = [str(first), str(second)]
    assert io.lacked_by_all(files, ["claim_id", "member_id", "hcpcs_code"]) == ["hcpcs_code"]
