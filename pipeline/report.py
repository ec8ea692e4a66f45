"""The analyst's page: ``report.html``, one self-contained file built from ``summary.json``.

``render_report`` is pure (a summary and, if there is one, the run's manifest
in; HTML text out; no file access, no clock). ``write_report`` reads and writes
the files around it.

The page must open from a file on an air-gapped laptop, so it loads nothing:
no script, no stylesheet, font or image from elsewhere, and its
Content-Security-Policy (``default-src 'none'``) tells the browser so too. It
is byte-identical when rebuilt: no timestamp, and every SVG id is derived from
the section it belongs to. It shows NPIs, codes and check names, never a member
id: everything on it comes from ``summary.json``, which holds none. The
manifest, when there is one, is read only for the run id, as-of, rules digest
and input files, which must agree with the summary's: the page built in the
staging directory before the manifest exists is the page rebuilt after.

The charts are hand-written SVG rather than a chart library's. Horizontal bars
are a rectangle and a label per value, a few dozen lines; a library would add a
run-time dependency for that, and the usual ones either load JavaScript from a
CDN or inline megabytes of it, or (matplotlib's SVG) write random ids and a
creation date unless told otherwise. Each chart has its numbers beside it as a
table, which is also what a screen reader or a copy-and-paste gets.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from html import escape
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

REPORT = "report.html"
SUMMARY = "summary.json"
MANIFEST = "manifest.json"

TOP_PROVIDERS = 10
"""How many rendering providers the page charts: those with the most denied dollars."""

MAX_FILLED_WEEKS = 104
"""Weeks without a denial are charted as zero when the weeks span at most this many."""

ZERO = Decimal("0.00")

DECISION_COLOURS = {
    "NOT_APPLICABLE": "#6b7280",
    "EXEMPT": "#2563eb",
    "AUTHORIZED": "#15803d",
    "PEND": "#b45309",
    "DENY": "#b91c1c",
}
DENIED_COLOUR = DECISION_COLOURS["DENY"]
REJECTED_COLOUR = "#7c3aed"
OTHER_COLOUR = "#374151"

# SVG geometry, in pixels; labels are monospaced so that their width is known.
FONT = "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace"
FONT_SIZE = 12
CHAR_WIDTH = 7.3
ROW_HEIGHT = 24
BAR_HEIGHT = 16
BAR_AREA = 240
GAP = 8
MAX_LABEL_CHARS = 48


class ReportError(PipelineError):
    """The page cannot be built: the run's summary is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Column:
    """A column of the table beside a chart."""

    name: str
    numeric: bool = False


@dataclass(frozen=True)
class Bar:
    """One bar: its label, the value its length shows, and its row in the table."""

    label: str
    value: Decimal
    shown: str
    cells: tuple[str, ...]
    colour: str


@dataclass(frozen=True)
class Chart:
    """A bar chart and its table; ``empty`` is said instead when there are no bars."""

    key: str
    caption: str
    columns: tuple[Column, ...]
    bars: tuple[Bar, ...]
    empty: str


@dataclass(frozen=True)
class Section:
    """A part of the page: a heading, a sentence on how to read it, its charts."""

    key: str
    heading: str
    intro: str
    charts: tuple[Chart, ...]
    note: str = ""


@dataclass(frozen=True)
class RunFacts:
    """What identifies the run: from the summary, checked against the manifest."""

    run_id: str
    as_of: str
    rules_digest: str
    inputs: tuple[tuple[str, str, int], ...]


# --- numbers -----------------------------------------------------------------------


def amount(text: object, where: str) -> Decimal:
    """An amount as summary.json writes it (``"1234.50"``), exactly."""
    try:
        value = Decimal(str(text))
    except InvalidOperation as error:
        raise ReportError(
            f"summary.json: {where} is {text!r}, not an amount like 1234.50"
        ) from error
    if not value.is_finite():
        raise ReportError(f"summary.json: {where} is {text!r}, not an amount like 1234.50")
    return value


def dollars(value: Decimal) -> str:
    """``$1,234.50``."""
    return f"${value:,.2f}"


def count(value: int) -> str:
    """``1,234``."""
    return f"{value:,}"


def share(part: Decimal, whole: Decimal) -> str:
    """``12.5%`` of the whole; a dash when the whole is nothing."""
    return f"{part / whole * 100:.1f}%" if whole else "—"


# --- the run -------------------------------------------------------------------------


def _summary_facts(summary: dict[str, Any]) -> RunFacts:
    return RunFacts(
        run_id=str(summary.get("run_id") or ""),
        as_of=str(summary.get("as_of") or ""),
        rules_digest=str(summary.get("rules_digest") or ""),
        inputs=tuple(
            (str(i["source"]), str(i["path"]), int(i["rows_read"])) for i in summary["inputs"]
        ),
    )


def _manifest_facts(manifest: dict[str, Any]) -> RunFacts:
    return RunFacts(
        run_id=str(manifest.get("run_id") or ""),
        as_of=str(manifest.get("as_of") or ""),
        rules_digest=str((manifest.get("rules") or {}).get("digest") or ""),
        inputs=tuple(
            (str(i["source"]), str(i["path"]), int(i["rows"])) for i in manifest.get("inputs", [])
        ),
    )


def run_facts(summary: dict[str, Any], manifest: dict[str, Any] | None) -> RunFacts:
    """The run's identity; a manifest only fills gaps, and must not contradict the summary.

    Both say the same for a published run, so the page is the same whether it
    is built before the manifest is written or rebuilt after.
    """
    own = _summary_facts(summary)
    if manifest is None:
        return own
    other = _manifest_facts(manifest)
    names = ("run_id", "as_of", "rules_digest", "inputs")
    differ = [
        n
        for n in names
        if getattr(own, n) and getattr(other, n) and getattr(other, n) != getattr(own, n)
    ]
    if differ:
        raise ReportError(
            f"summary.json and manifest.json disagree on {', '.join(differ)}; "
            "they are not from the same run"
        )
    return RunFacts(**{n: getattr(own, n) or getattr(other, n) for n in names})


REQUIRED_KEYS = ("lines", "decisions", "reasons", "denied_amount", "inputs")


def _require_run(summary: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in summary]
    if missing:
        raise ReportError(
            f"summary.json has no {', '.join(missing)}: it is not the summary of an adjudication "
            "run (`adjudicate validate --out` publishes no decisions)"
        )


# --- the sections -----------------------------------------------------------------------

LINES = Column("Lines", numeric=True)
DENIED = Column("Denied", numeric=True)
SHARE_OF_DENIED = Column("Share", numeric=True)


def count_bar(label: str, value: int, cells: tuple[str, ...], colour: str) -> Bar:
    """A bar for a number of lines or rejects."""
    return Bar(label, Decimal(value), count(value), cells, colour)


def denied_bar(label: str, value: Decimal, cells: tuple[str, ...]) -> Bar:
    """A bar for denied dollars."""
    return Bar(label, value, dollars(value), cells, DENIED_COLOUR)


def reasons_section(summary: dict[str, Any]) -> Section:
    """Adjudicated lines by decision and reason, in the policy's order."""
    total = Decimal(int(summary["lines"]["adjudicated"]))
    bars = tuple(
        count_bar(
            " · ".join(filter(None, (str(r["decision"]), r["reason"]))),
            int(r["lines"]),
            (
                str(r["decision"]),
                str(r["reason"] or "—"),
                count(int(r["lines"])),
                share(Decimal(int(r["lines"])), total),
            ),
            DECISION_COLOURS.get(str(r["decision"]), OTHER_COLOUR),
        )
        for r in summary["reasons"]
    )
    columns = (Column("Decision"), Column("Reason"), LINES, Column("Share", numeric=True))
    caption = "Adjudicated lines by decision and reason"
    return Section(
        key="reasons",
        heading="Decisions by reason",
        intro="Every adjudicated claim line, by its decision and the reason for it.",
        charts=(Chart("chart-reasons", caption, columns, bars, "No line was adjudicated."),),
    )


def _by_amount(rows: Iterable[dict[str, Any]], key: str) -> list[tuple[str, int, Decimal]]:
    """(name, lines, denied dollars), the most dollars first, ties by name."""
    parsed = [
        (str(r[key]), int(r["lines"]), amount(r["denied_amount"], f"denied amount of {r[key]}"))
        for r in rows
    ]
    return sorted(parsed, key=lambda row: (-row[2], row[0]))


def _absent(what: str) -> str:
    return f"This run's summary.json does not break the denials down by {what}."


def modality_section(summary: dict[str, Any], denied: Decimal) -> Section:
    """Denied dollars by the modality of the code denied."""
    rows = summary.get("denied_by_modality")
    bars = tuple(
        denied_bar(name, value, (name, count(lines), dollars(value), share(value, denied)))
        for name, lines, value in _by_amount(rows or [], "modality")
    )
    columns = (Column("Modality"), LINES, DENIED, SHARE_OF_DENIED)
    empty = _absent("modality") if rows is None else "No line was denied: no dollars were denied."
    return Section(
        key="modality",
        heading="Denied dollars by modality",
        intro="The charges of denied lines, by the modality of the code (from the code table).",
        charts=(Chart("chart-modality", "Denied dollars by modality", columns, bars, empty),),
    )


def _others(rest: list[tuple[str, int, Decimal]]) -> str:
    if not rest:
        return ""
    return (
        f"{count(len(rest))} other providers had {dollars(sum((r[2] for r in rest), ZERO))} "
        f"denied on {count(sum(r[1] for r in rest))} lines; summary.json lists every one."
    )


def providers_section(summary: dict[str, Any], denied: Decimal) -> Section:
    """The rendering providers with the most denied dollars (the liable NPI of each denial)."""
    rows = summary.get("denied_by_rendering_provider")
    ranked = _by_amount(rows or [], "liable_npi")
    top, rest = ranked[:TOP_PROVIDERS], ranked[TOP_PROVIDERS:]
    bars = tuple(
        denied_bar(
            npi, value, (count(rank), npi, count(lines), dollars(value), share(value, denied))
        )
        for rank, (npi, lines, value) in enumerate(top, start=1)
    )
    columns = (
        Column("Rank", numeric=True),
        Column("Rendering NPI"),
        LINES,
        DENIED,
        SHARE_OF_DENIED,
    )
    empty = (
        _absent("rendering provider")
        if rows is None
        else "No line was denied: no provider has denied dollars."
    )
    caption = (
        f"The {TOP_PROVIDERS} rendering providers with the most denied dollars"
        if rest
        else "Rendering providers with denied dollars"
    )
    return Section(
        key="providers",
        heading="Rendering providers with the most denied dollars",
        intro="The provider liable for a denial is the rendering NPI, never the ordering one; "
        f"the {TOP_PROVIDERS} with the most denied dollars are shown.",
        charts=(Chart("chart-providers", caption, columns, bars, empty),),
        note=_others(rest),
    )


def weekly_rows(rows: Iterable[dict[str, Any]]) -> tuple[list[tuple[str, int, Decimal]], bool]:
    """(week, lines, dollars) in date order, and whether weeks without a denial were added."""
    found = {
        str(r["week_of"]): (int(r["lines"]), amount(r["denied_amount"], f"week {r['week_of']}"))
        for r in rows
    }
    if not found:
        return [], False
    try:
        first, last = date.fromisoformat(min(found)), date.fromisoformat(max(found))
    except ValueError as error:
        raise ReportError(f"summary.json: a week_of is not a date: {error}") from error
    span = (last - first).days // 7 + 1
    filled = span <= MAX_FILLED_WEEKS
    weeks = (
        [(first + timedelta(weeks=i)).isoformat() for i in range(span)] if filled else sorted(found)
    )
    return [(week, *found.get(week, (0, ZERO))) for week in weeks], filled


def weeks_section(summary: dict[str, Any]) -> Section:
    """Denied dollars by the week (starting Monday) of the date of service."""
    rows = summary.get("denied_by_week")
    weeks, filled = weekly_rows(rows or [])
    bars = tuple(
        denied_bar(week, value, (week, count(lines), dollars(value)))
        for week, lines, value in weeks
    )
    columns = (Column("Week of (Monday)"), LINES, DENIED)
    empty = _absent("week") if rows is None else "No line was denied."
    gaps = (
        ""
        if not weeks
        else " Weeks between the first and the last denial with none show as zero."
        if filled
        else f" Only weeks with a denial are listed: they span more than {MAX_FILLED_WEEKS} weeks."
    )
    return Section(
        key="weeks",
        heading="Denials by week of service",
        intro=f"Denied dollars by the week (from Monday) of the date of service.{gaps}",
        charts=(Chart("chart-weeks", "Denied dollars by week of service", columns, bars, empty),),
    )


def _rejects_chart(index: int, entry: dict[str, Any]) -> Chart:
    checks = sorted(
        entry.get("rejects_by_check", []),
        key=lambda c: (-int(c["rejects"]), str(c["column"]), str(c["check"])),
    )
    bars = tuple(
        count_bar(
            f"{c['column']} · {c['check']}",
            int(c["rejects"]),
            (str(c["column"]), str(c["check"]), count(int(c["rejects"]))),
            REJECTED_COLOUR,
        )
        for c in checks
    )
    caption = (
        f"{entry['source']} file {entry['path']}: {count(int(entry['rejected']))} of "
        f"{count(int(entry['rows_read']))} rows rejected"
    )
    columns = (Column("Column"), Column("Check"), Column("Rejects", numeric=True))
    return Chart(f"chart-rejects-{index}", caption, columns, bars, f"{caption}.")


def rejects_section(summary: dict[str, Any]) -> Section:
    """Failed checks per input file, the most frequent first."""
    charts = tuple(_rejects_chart(i, e) for i, e in enumerate(summary["inputs"], start=1))
    rejected = any(chart.bars for chart in charts)
    if not rejected:
        charts = (Chart("chart-rejects", "", (), (), "No row of any input was rejected."),)
    return Section(
        key="rejects",
        heading="Rejects by check",
        intro="Rows that failed validation, by the column and the check that failed; "
        "rejects.parquet has each one with its file and row.",
        charts=charts,
        note="A row that fails several checks counts once under each, so the rejects can "
        "outnumber the rows rejected."
        if rejected
        else "",
    )


# --- HTML and SVG -----------------------------------------------------------------------


def _clip(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _text_width(characters: int) -> int:
    return math.ceil(characters * CHAR_WIDTH)


def bar_length(value: Decimal, longest: Decimal) -> Decimal:
    """The bar's length in pixels: exact arithmetic, so the same on every machine."""
    if longest <= 0 or value <= 0:
        return Decimal(0)
    return max(Decimal(1), (value / longest * BAR_AREA).quantize(Decimal("0.1")))


def _bar_svg(chart: Chart, index: int, bar: Bar, label_width: int, longest: Decimal) -> str:
    top = index * ROW_HEIGHT
    middle = top + ROW_HEIGHT // 2
    length = bar_length(bar.value, longest)
    tip = f"{bar.label}: {bar.shown}"
    return (
        f'<g id="{chart.key}-bar-{index + 1}">'
        f'<text x="{label_width - GAP}" y="{middle}" text-anchor="end" '
        f'dominant-baseline="central" fill="#111827">{escape(_clip(bar.label))}</text>'
        f'<rect x="{label_width}" y="{top + (ROW_HEIGHT - BAR_HEIGHT) // 2}" width="{length}" '
        f'height="{BAR_HEIGHT}" fill="{bar.colour}"><title>{escape(tip)}</title></rect>'
        f'<text x="{label_width + length + GAP}" y="{middle}" dominant-baseline="central" '
        f'fill="#374151">{escape(bar.shown)}</text>'
        "</g>"
    )


def bar_chart_svg(chart: Chart) -> str:
    """A horizontal bar chart: labels left, bars scaled to the largest value, values at the tips."""
    longest_label = min(MAX_LABEL_CHARS, max(len(bar.label) for bar in chart.bars))
    label_width = _text_width(longest_label) + 2 * GAP
    width = label_width + BAR_AREA + 2 * GAP + _text_width(max(len(b.shown) for b in chart.bars))
    height = ROW_HEIGHT * len(chart.bars)
    longest = max(bar.value for bar in chart.bars)
    described = "; ".join(f"{bar.label}: {bar.shown}" for bar in chart.bars)
    bars = "".join(
        _bar_svg(chart, i, bar, label_width, longest) for i, bar in enumerate(chart.bars)
    )
    return (
        f'<svg class="bars" role="img" aria-labelledby="{chart.key}-title {chart.key}-desc" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="{escape(FONT)}" font-size="{FONT_SIZE}">'
        f'<title id="{chart.key}-title">{escape(chart.caption)}</title>'
        f'<desc id="{chart.key}-desc">{escape(described)}</desc>'
        f'<line x1="{label_width}" y1="0" x2="{label_width}" y2="{height}" stroke="#9ca3af"/>'
        f"{bars}</svg>"
    )


def _cell(tag: str, text: str, column: Column) -> str:
    kind = ' class="num"' if column.numeric else ""
    return f"<{tag}{kind}>{escape(text)}</{tag}>"


def table_html(
    columns: tuple[Column, ...], rows: Iterable[tuple[str, ...]], about: str = ""
) -> str:
    """A table of text; ``about`` is the id of what describes it."""
    head = "".join(_cell("th", c.name, c) for c in columns)
    body = "\n".join(
        "<tr>"
        + "".join(_cell("td", text, c) for text, c in zip(row, columns, strict=True))
        + "</tr>"
        for row in rows
    )
    described = f' aria-describedby="{about}"' if about else ""
    return f"<table{described}><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def chart_html(chart: Chart) -> str:
    """The chart with its table beside it, or the sentence that says there is nothing to chart."""
    if not chart.bars:
        return f'<p class="empty">{escape(chart.empty)}</p>'
    numbers = table_html(chart.columns, (bar.cells for bar in chart.bars), f"{chart.key}-caption")
    return (
        f'<figure id="{chart.key}">\n'
        f'<figcaption id="{chart.key}-caption">{escape(chart.caption)}</figcaption>\n'
        f'<div class="pair">\n{bar_chart_svg(chart)}\n{numbers}\n</div>\n</figure>'
    )


def section_html(section: Section) -> str:
    """A section: heading, how to read it, its charts, and a note if any."""
    note = f'\n<p class="note">{escape(section.note)}</p>' if section.note else ""
    charts = "\n".join(chart_html(chart) for chart in section.charts)
    return (
        f'<section id="{section.key}" aria-labelledby="{section.key}-heading">\n'
        f'<h2 id="{section.key}-heading">{escape(section.heading)}</h2>\n'
        f"<p>{escape(section.intro)}</p>\n{charts}{note}\n</section>"
    )


def _totals(summary: dict[str, Any], denied: Decimal) -> list[tuple[str, str]]:
    lines = summary["lines"]
    figures = [
        ("Lines read", count(int(lines["read"]))),
        ("Adjudicated", count(int(lines["adjudicated"]))),
        ("Rejected", count(int(lines["rejected"]))),
    ]
    if "needing_authorization" in lines:
        figures.append(("Needing authorization", count(int(lines["needing_authorization"]))))
    figures += [
        ("Denied lines", count(int(summary["decisions"].get("DENY", 0)))),
        ("Denied amount", dollars(denied)),
    ]
    return figures


INPUT_COLUMNS = (
    Column("Input"),
    Column("File"),
    Column("Rows read", numeric=True),
    Column("Valid", numeric=True),
    Column("Rejected", numeric=True),
)


def _input_row(entry: dict[str, Any]) -> tuple[str, ...]:
    counts = (entry["rows_read"], entry["valid"], entry["rejected"])
    return (str(entry["source"]), str(entry["path"]), *(count(int(n)) for n in counts))


def heading_html(facts: RunFacts, summary: dict[str, Any], denied: Decimal) -> str:
    """The run's identity and its totals."""
    totals = "\n".join(
        f'<li><span class="label">{escape(name)}</span>'
        f'<span class="value">{escape(value)}</span></li>'
        for name, value in _totals(summary, denied)
    )
    facts_list = (
        ("Run", facts.run_id or "—"),
        ("As of (UTC)", facts.as_of.replace("T", " ") or "—"),
        ("Rules digest", facts.rules_digest or "—"),
    )
    described = "\n".join(
        f"<dt>{escape(name)}</dt><dd><code>{escape(value)}</code></dd>"
        for name, value in facts_list
    )
    return (
        "<header>\n"
        "<h1>Prior-authorization adjudication: run "
        f"<code>{escape(facts.run_id or '—')}</code></h1>\n"
        "<p>Advanced-imaging claim lines decided against the authorization register. "
        "The page shows NPIs and codes, never member ids.</p>\n"
        f'<ul class="totals">\n{totals}\n</ul>\n'
        f'<dl class="facts">\n{described}\n</dl>\n'
        f"{table_html(INPUT_COLUMNS, (_input_row(e) for e in summary['inputs']))}\n"
        "</header>"
    )


def contents_html(sections: Iterable[Section]) -> str:
    """Links to the sections, within the page."""
    links = " · ".join(f'<a href="#{s.key}">{escape(s.heading)}</a>' for s in sections)
    return f'<nav aria-label="Sections">{links}</nav>'


STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; color: #111827; background: #ffffff; max-width: 1180px; margin: 0 auto;
  padding: 24px; line-height: 1.4; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 36px 0 4px; padding-bottom: 4px; border-bottom: 1px solid #e5e7eb; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  overflow-wrap: anywhere; }
nav { margin: 16px 0; }
nav a { color: #1d4ed8; }
.totals { display: flex; flex-wrap: wrap; gap: 12px; list-style: none; padding: 0;
  margin: 16px 0; }
.totals li { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 12px; min-width: 9rem; }
.totals .label { display: block; color: #4b5563; font-size: 0.875rem; }
.totals .value { display: block; font-size: 1.25rem; font-weight: 600;
  font-variant-numeric: tabular-nums; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
.facts dt { color: #4b5563; }
.facts dd { margin: 0; }
figure { margin: 16px 0; }
figcaption { font-weight: 600; margin-bottom: 8px; }
.pair { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
svg.bars { max-width: 100%; height: auto; flex: none; }
table { border-collapse: collapse; font-size: 0.875rem; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e5e7eb; text-align: left; }
th { background: #f3f4f6; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty, .note { color: #4b5563; }
footer { margin-top: 40px; color: #6b7280; font-size: 0.875rem; }
@media print { section, figure { break-inside: avoid; } }
"""

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def render_report(summary: dict[str, Any], manifest: dict[str, Any] | None = None) -> str:
    """The run's page: the same bytes for the same summary, whether or not a manifest is given."""
    _require_run(summary)
    facts = run_facts(summary, manifest)
    denied = amount(summary["denied_amount"], "denied_amount")
    sections = (
        reasons_section(summary),
        modality_section(summary, denied),
        providers_section(summary, denied),
        weeks_section(summary),
        rejects_section(summary),
    )
    body = "\n".join(section_html(section) for section in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Adjudication run {escape(facts.run_id or '—')}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{heading_html(facts, summary, denied)}\n{contents_html(sections)}\n"
        f"<main>\n{body}\n</main>\n"
        "<footer>Built from this run's summary.json; <code>adjudicate report DIR</code> "
        "rebuilds it, byte for byte. The page loads nothing from the network.</footer>\n"
        "</body>\n</html>\n"
    )


# --- files ----------------------------------------------------------------------------


def _read_document(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as error:
        raise ReportError(f"{path}: cannot be read as JSON ({type(error).__name__})") from error
    if not isinstance(document, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return document


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(text.encode("utf-8"))
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ReportError(f"{path}: cannot be written ({error.strerror})") from error


def write_report(directory: Path, out: Path | None = None) -> Path:
    """Build the page of the run in ``directory`` into ``out`` (default: ``report.html`` there)."""
    directory = Path(directory)
    summary = _read_document(directory / SUMMARY)
    if summary is None:
        raise ReportError(
            f"{directory} has no {SUMMARY}: it is not a published run "
            "(`adjudicate run --out DIR` publishes one)"
        )
    try:
        page = render_report(summary, _read_document(directory / MANIFEST))
    except ReportError as error:
        raise ReportError(f"{directory}: {error}") from error
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ReportError(
            f"{directory}: summary.json is not shaped like a run's summary "
            f"({type(error).__name__}: {error})"
        ) from error
    target = Path(out) if out is not None else directory / REPORT
    _replace(target, page)
    return target
