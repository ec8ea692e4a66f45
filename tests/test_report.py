"""report.html: one self-contained page per run, deterministic, with NPIs and codes only."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.report import ReportError, render_report

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
AS_OF = "2026-06-30"
LENIENT = ["--max-reject-rate", "0.15"]
SECTIONS = (
    "Decisions by reason",
    "Denied dollars by modality",
    "Rendering providers with the most denied dollars",
    "Denials by week of service",
    "Rejects by check",
)


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def sample_run(out: Path) -> Path:
    code, output = run_cli(
        "run",
        "--claims",
        str(SAMPLES / "claims.csv"),
        "--authorizations",
        str(SAMPLES / "authorizations.csv"),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
        *LENIENT,
    )
    assert code == 0, output
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_run(tmp_path_factory.mktemp("report") / "run")


def read_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


# --- the demo run's page ------------------------------------------------------------------


def test_the_page_has_every_section_with_a_chart_and_a_table(published: Path) -> None:
    page = (published / "report.html").read_text(encoding="utf-8")
    for heading in SECTIONS:
        assert f">{heading}</h2>" in page, heading
    # reasons, modality, providers, weeks, and rejects for each of the two input files
    assert page.count("<svg") == 6
    assert page.count("<table") == 6 + 1, "a table beside each chart, and the inputs"
    assert 'role="img"' in page
    assert read_json(published / "manifest.json")["run_id"] in page
    assert "2026-06-30 23:59:59" in page
    assert "$21,420.00" in page, "the denied amount, exact"
    assert "1467498014" in page, "the rendering provider with the most denied dollars"
    assert "duplicate_claim_line" in page


def test_the_page_is_the_same_rendered_twice_with_or_without_the_manifest(
    published: Path,
) -> None:
    summary = read_json(published / "summary.json")
    manifest = read_json(published / "manifest.json")
    page = (published / "report.html").read_text(encoding="utf-8")
    assert render_report(summary, manifest) == render_report(summary, manifest) == page
    assert render_report(summary, None) == page


def test_two_runs_of_the_same_inputs_publish_the_same_page(published: Path, tmp_path: Path) -> None:
    again = sample_run(tmp_path / "again")
    assert (again / "report.html").read_bytes() == (published / "report.html").read_bytes()


def test_the_manifest_lists_the_page(published: Path) -> None:
    outputs = read_json(published / "manifest.json")["outputs"]
    assert [o["path"] for o in outputs] == sorted(o["path"] for o in outputs)
    entry = next(o for o in outputs if o["path"] == "report.html")
    assert entry["sha256"] == hashlib.sha256((published / "report.html").read_bytes()).hexdigest()


def test_no_member_id_is_on_the_page(published: Path) -> None:
    page = (published / "report.html").read_text(encoding="utf-8")
    members = set()
    for name in ("claims.csv", "authorizations.csv"):
        frame = pd.read_csv(SAMPLES / name, dtype=str, keep_default_na=False)
        members |= set(frame["member_id"]) - {""}
    assert len(members) > 50
    assert sorted(m for m in members if m in page) == []
    assert "MBR" not in page


def test_the_page_loads_nothing(published: Path) -> None:
    page = (published / "report.html").read_text(encoding="utf-8")
    for needle in ("http:", "https:", "//", "<script", "<link", "<img", "src=", "url(", "@import"):
        assert needle not in page.replace("<!DOCTYPE html>", ""), needle
    assert "default-src 'none'" in page


def test_ids_are_unique_and_every_reference_resolves(published: Path) -> None:
    page = (published / "report.html").read_text(encoding="utf-8")
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    referenced = re.findall(r'aria-(?:labelledby|describedby)="([^"]+)"', page)
    assert {r for refs in referenced for r in refs.split()} <= set(ids)
    assert all(re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", i) for i in ids), "ids name their section"


# --- the command -------------------------------------------------------------------------


def test_report_rebuilds_an_identical_page(published: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.html"
    code, output = run_cli("report", str(published), "--out", str(out))
    assert (code, output) == (0, f"wrote {out}\n")
    assert out.read_bytes() == (published / "report.html").read_bytes()


def test_report_writes_into_the_directory_by_default(published: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(published, tmp_path / "copy"))
    (copy / "report.html").unlink()
    code, _ = run_cli("report", str(copy))
    assert code == 0
    assert (copy / "report.html").read_bytes() == (published / "report.html").read_bytes()
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in published.iterdir())


def test_report_refuses_a_directory_without_a_summary(tmp_path: Path) -> None:
    code, output = run_cli("report", str(tmp_path))
    assert code == 1
    assert output.splitlines()[0] == (
        f"Error: {tmp_path} has no summary.json: it is not a published run "
        "(`adjudicate run --out DIR` publishes one)"
    )


def test_report_refuses_the_summary_of_a_validation(tmp_path: Path) -> None:
    out = tmp_path / "validated"
    code, _ = run_cli("validate", "--claims", str(SAMPLES / "claims.csv"), "--out", str(out))
    assert code == 0
    code, output = run_cli("report", str(out))
    assert code == 1
    assert output.splitlines()[0].startswith(
        f"Error: {out}: summary.json has no lines, decisions, reasons, denied_amount"
    )


def test_report_refuses_a_summary_whose_parts_are_of_another_shape(
    published: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(published, copy)
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "decisions": "DENY"}))
    code, output = run_cli("report", str(copy))
    assert code == 1, output
    assert f"Error: {copy}: summary.json is not shaped like a run's summary" in output


def test_report_refuses_an_empty_out(published: Path) -> None:
    code, output = run_cli("report", str(published), "--out", "")
    assert code == 2
    assert "is empty (an unset variable?)" in output


def test_verify_compares_the_page_byte_for_byte(tmp_path: Path) -> None:
    out = sample_run(tmp_path / "run")
    page = out / "report.html"
    page.write_text(page.read_text(encoding="utf-8").replace("$21,420.00", "$21,420.01"))
    code, output = run_cli("verify", str(out))
    assert code == 1
    assert "report.html: bytes differ" in output


# --- the pure function, on tiny summaries ---------------------------------------------------


def tiny_summary(**changes: Any) -> dict[str, Any]:
    """A run of two lines, one authorized, nothing denied or rejected."""
    summary: dict[str, Any] = {
        "run_id": "0123456789abcdef",
        "as_of": "2026-06-30T23:59:59",
        "rules_digest": "d" * 64,
        "inputs": [
            {
                "source": "claims",
                "path": "c.csv",
                "rows_read": 2,
                "valid": 2,
                "rejected": 0,
                "rejects_by_check": [],
            },
        ],
        "lines": {"read": 2, "adjudicated": 2, "rejected": 0, "needing_authorization": 1},
        "decisions": {"NOT_APPLICABLE": 1, "EXEMPT": 0, "AUTHORIZED": 1, "PEND": 0, "DENY": 0},
        "reasons": [
            {"decision": "NOT_APPLICABLE", "reason": None, "lines": 1},
            {"decision": "AUTHORIZED", "reason": "AUTHORIZATION_MATCHED", "lines": 1},
        ],
        "denied_amount": "0.00",
        "denied_by_rendering_provider": [],
        "denied_by_modality": [],
        "denied_by_week": [],
    }
    return {**summary, **changes}


def denial(key: str, name: str, amount: str, lines: int = 1) -> dict[str, Any]:
    return {key: name, "lines": lines, "denied_amount": amount}


def figure_of(page: str, key: str) -> str:
    found = re.search(rf'<figure id="{key}">.*?</figure>', page, re.S)
    assert found, key
    return found.group(0)


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({}, "No line was denied: no dollars were denied."),
        ({}, "No line was denied: no provider has denied dollars."),
        ({}, "No row of any input was rejected."),
        (
            {"reasons": [], "lines": {"read": 0, "adjudicated": 0, "rejected": 0}},
            "No line was adjudicated.",
        ),
        ({"denied_by_week": None}, "does not break the denials down by week."),
    ],
    ids=["no-modality", "no-provider", "no-reject", "no-line", "summary-before-weeks"],
)
def test_an_empty_section_says_so_instead_of_an_empty_chart(
    changes: dict[str, Any], sentence: str
) -> None:
    summary = {k: v for k, v in tiny_summary(**changes).items() if v is not None}
    page = render_report(summary)
    assert sentence in page
    assert page.count("<svg") == (1 if summary["reasons"] else 0)


def test_only_the_ten_providers_with_most_denied_dollars_are_charted() -> None:
    providers = [denial("liable_npi", f"10000000{i:02d}", f"{100 + i}.00") for i in range(10)]
    providers += [
        denial("liable_npi", "1999999991", "0.10"),
        denial("liable_npi", "1999999992", "0.20"),
    ]
    page = render_report(
        tiny_summary(denied_amount="1045.30", denied_by_rendering_provider=providers)
    )
    chart = figure_of(page, "chart-providers")
    assert chart.count("<rect") == 10
    assert "1000000009" in chart and "1999999991" not in chart
    assert chart.index("1000000009") < chart.index("1000000000"), "most dollars first"
    assert "2 other providers had $0.30 denied on 2 lines" in page


def test_amounts_are_shown_exactly() -> None:
    modalities = [denial("modality", "MRI", "1234567.89"), denial("modality", "CT", "0.01")]
    page = render_report(tiny_summary(denied_amount="1234567.90", denied_by_modality=modalities))
    assert "$1,234,567.90" in page
    assert "$1,234,567.89" in page
    assert "$0.01" in page


def test_weeks_without_denials_are_charted_as_zero() -> None:
    weeks = [denial("week_of", "2026-01-05", "10.00"), denial("week_of", "2026-01-26", "20.00")]
    page = render_report(tiny_summary(denied_amount="30.00", denied_by_week=weeks))
    chart = figure_of(page, "chart-weeks")
    assert re.findall(r"2026-0\d-\d\d", chart.split("<desc")[1].split("</desc>")[0]) == [
        "2026-01-05",
        "2026-01-12",
        "2026-01-19",
        "2026-01-26",
    ]


def test_weeks_years_apart_are_listed_without_the_gap() -> None:
    weeks = [denial("week_of", "2020-01-06", "10.00"), denial("week_of", "2026-01-26", "20.00")]
    page = render_report(tiny_summary(denied_amount="30.00", denied_by_week=weeks))
    assert figure_of(page, "chart-weeks").count("<rect") == 2
    assert "Only weeks with a denial are listed: they span more than 104 weeks." in page


def test_a_run_without_denials_or_rejects_says_nothing_of_their_gaps_or_counts() -> None:
    page = render_report(tiny_summary())
    assert "No line was denied." in page
    assert "No row of any input was rejected." in page
    assert "weeks" not in page.split("Denials by week of service")[1].split("</p>")[0].lower()
    assert "outnumber the rows rejected" not in page


def test_every_text_is_escaped() -> None:
    modalities = [denial("modality", "<img src=x onerror=alert(1)>", "5.00")]
    page = render_report(tiny_summary(denied_amount="5.00", denied_by_modality=modalities))
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_manifest_of_another_run_is_refused() -> None:
    with pytest.raises(ReportError, match="disagree on run_id; they are not from the same run"):
        render_report(tiny_summary(), {"run_id": "another", "as_of": "2026-06-30T23:59:59"})


def test_an_amount_that_is_not_one_is_refused() -> None:
    with pytest.raises(ReportError, match="denied_amount is '12,50', not an amount"):
        render_report(tiny_summary(denied_amount="12,50"))


# --- in a browser, from a file, with no network ------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; CI must run the browser test (.ci/run installs it)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI runs this test")


def browse(chromium: Path, page: Path, profile: Path, *args: str) -> str:
    """Open ``page`` from its file in headless Chromium, every network route closed."""
    command = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_pixels(data: bytes) -> np.ndarray:
    """The RGB pixels of an 8-bit, non-interlaced PNG (what Chromium writes), with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, list[bytes]] = {}
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.setdefault(data[at + 4 : at + 8], []).append(data[at + 8 : at + 8 + length])
        at += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert (depth, interlace) == (8, 0) and colour in (2, 6)
    step = 3 if colour == 2 else 4
    rows = np.frombuffer(zlib.decompress(b"".join(chunks[b"IDAT"])), np.uint8)
    rows = rows.reshape(height, width * step + 1)
    image = np.zeros((height, width * step), np.uint8)
    above = np.zeros(width * step, np.uint8)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:]
        if kind == 0:
            above = line.copy()
        elif kind == 1:
            above = np.cumsum(line.reshape(width, step), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            above = line + above
        else:
            above = np.array(_unfilter_sequential(kind, line.tolist(), above.tolist(), step))
        image[y] = above
    return image.reshape(height, width, step)[..., :3]


def _unfilter_sequential(kind: int, line: list[int], up: list[int], step: int) -> list[int]:
    """PNG's Average (3) and Paeth (4) filters, which depend on the pixel just decoded."""
    out = list(line)
    for x in range(len(out)):
        a = out[x - step] if x >= step else 0
        b, c = up[x], (up[x - step] if x >= step else 0)
        if kind == 3:
            guess = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            guess = a if pa <= pb and pa <= pc else b if pb <= pc else c
        out[x] = (out[x] + guess) & 0xFF
    return out


def test_the_page_renders_its_charts_from_a_file_without_network(
    chromium: Path, published: Path, tmp_path: Path
) -> None:
    page = published / "report.html"
    dom = browse(chromium, page, tmp_path / "profile", "--dump-dom")
    source = page.read_text(encoding="utf-8")
    assert dom.count("<svg") == source.count("<svg") == 6
    assert dom.count("<rect") == source.count("<rect") > 50
    assert dom.count('role="img"') == 6


def test_the_screenshot_shows_the_bars(chromium: Path, published: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    browse(
        chromium,
        published / "report.html",
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1200,3000",
    )
    assert shot.stat().st_size > 50_000
    pixels = png_pixels(shot.read_bytes()).reshape(-1, 3)
    assert pixels.shape == (1200 * 3000, 3)
    assert (pixels != 255).any(axis=1).mean() > 0.05, "the page is not blank"
    painted = {
        name: int((pixels == np.array(rgb, np.uint8)).all(axis=1).sum())
        for name, rgb in {
            "AUTHORIZED": (0x15, 0x80, 0x3D),
            "DENY": (0xB9, 0x1C, 0x1C),
            "rejects": (0x7C, 0x3A, 0xED),
        }.items()
    }
    assert all(count > 1000 for count in painted.values()), painted
