"""Runs an auditor can trust: atomic publish, byte-identical reruns, verify, guards, ledger."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pipeline.cli
import pipeline.engine
import pipeline.publish
import pipeline.verify
from pipeline.cli import main
from pipeline.errors import InputChanged, InputError, PublishError, Stopped
from pipeline.ledger import LedgerError, settle_entry, stage_entry, writing
from pipeline.publish import STAGING_SUFFIX, publishing, sweep_abandoned
from pipeline.workers import ROWS_PER_PARTITION, WORKERS
from tests.policy_helpers import NPI_A, NPI_B, auth, line
from tests.waiting import soon

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
AS_OF = "2026-06-30"
LENIENT = ["--max-reject-rate", "0.15"]


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def run_of(claims: Path, out: Path, *extra: str, lenient: bool = True) -> tuple[int, str]:
    """A run of ``claims`` and the sample register into ``out``; ``lenient``: past the
    sample's ten bad rows."""
    return run_cli(
        "run",
        "--claims",
        str(claims),
        "--authorizations",
        str(SAMPLES / "authorizations.csv"),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
        *(LENIENT if lenient else ()),
        *extra,
    )


def sample_run(out: Path, *extra: str, lenient: bool = True) -> tuple[int, str]:
    """A run of the sample data into ``out`` (see :func:`run_of`)."""
    return run_of(SAMPLES / "claims.csv", out, *extra, lenient=lenient)


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    assert sample_run(tmp_path / "one")[0] == 0
    assert sample_run(tmp_path / "two")[0] == 0
    for name in ("adjudicated.parquet", "rejects.parquet", "summary.json", "report.html"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), (
            name
        )
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert one["run_id"] == two["run_id"]
    assert one["outputs"] == two["outputs"]


def test_one_run_id_is_one_set_of_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files' order and their paths as given change the bytes (the row groups, the
    lines' source_file), so they change the run_id too."""
    lines = (SAMPLES / "claims.csv").read_text().splitlines(keepends=True)
    (tmp_path / "a.csv").write_text("".join(lines[:40]))
    (tmp_path / "b.csv").write_text("".join([lines[0], *lines[40:]]))
    monkeypatch.chdir(tmp_path)

    def run(out: str, *claims: str) -> tuple[str, bytes]:
        args = [a for c in claims for a in ("--claims", c)]
        register = str(SAMPLES / "authorizations.csv")
        code, output = run_cli(
            "run", *args, "--authorizations", register, "--as-of", AS_OF, "--out", out, *LENIENT
        )
        assert code == 0, output
        run_id = json.loads((tmp_path / out / "manifest.json").read_text())["run_id"]
        return run_id, (tmp_path / out / "adjudicated.parquet").read_bytes()

    first = run("one", "a.csv", "b.csv")
    assert run("again", "a.csv", "b.csv") == first
    for other in (run("swapped", "b.csv", "a.csv"), run("spelled", "./a.csv", "b.csv")):
        assert other[0] != first[0]
        assert other[1] != first[1]


@pytest.mark.parametrize("rows", ["10", "1"])  # 1: a line a partition, the least allowed
def test_partition_size_and_workers_change_no_byte(tmp_path: Path, rows: str) -> None:
    assert sample_run(tmp_path / "default")[0] == 0
    code, output = sample_run(tmp_path / "small", "--partition-rows", rows, "--workers", "2")
    assert code == 0, output
    for name in ("adjudicated.parquet", "rejects.parquet", "summary.json", "report.html"):
        default = (tmp_path / "default" / name).read_bytes()
        assert (tmp_path / "small" / name).read_bytes() == default, name


def test_a_published_run_is_readable_as_the_umask_allows(tmp_path: Path) -> None:
    assert sample_run(tmp_path / "out")[0] == 0
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~mask


def test_the_staging_directory_is_private_until_it_is_published(tmp_path: Path) -> None:
    with publishing(tmp_path / "out") as staging:
        (staging / "adjudicated.parquet").write_bytes(b"")
        assert staging.stat().st_mode & 0o777 == 0o700
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~mask


def test_manifest_names_every_input_and_output(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [i["source"] for i in manifest["inputs"]] == ["claims", "authorizations"]
    assert [i["rows"] for i in manifest["inputs"]] == [77, 41]
    assert {o["path"] for o in manifest["outputs"]} == {
        "adjudicated.parquet",
        "rejects.parquet",
        "report.html",
        "summary.json",
    }
    rows = {o["path"]: o["rows"] for o in manifest["outputs"]}  # no rows for a page or a JSON
    assert rows == {
        "adjudicated.parquet": 67,
        "rejects.parquet": pq.ParquetFile(tmp_path / "out" / "rejects.parquet").metadata.num_rows,
        "report.html": None,
        "summary.json": None,
    }
    assert manifest["as_of"] == "2026-06-30T23:59:59.999999"
    assert manifest["forced"] is False
    assert len(manifest["rules"]["digest"]) == 64


def test_an_existing_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    code, output = sample_run(tmp_path / "out")
    assert code == 1
    assert "already exists" in output


def test_verify_passes_an_untouched_run(tmp_path: Path) -> None:
    code, published = sample_run(tmp_path / "out")
    assert code == 0, published
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 0, output
    assert "byte-identical" in output
    # The manifest's digest, as the run printed it for the scheduler's log and as verify
    # reads it from the published directory.
    digest = hashlib.sha256((tmp_path / "out" / "manifest.json").read_bytes()).hexdigest()
    assert published.splitlines()[-1].endswith(f"; manifest sha256 {digest})")
    assert f"manifest sha256 {digest}" in output


def test_verify_starts_its_workers_before_it_checks_the_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run names its claims relative to where it ran; verify runs from elsewhere.
    monkeypatch.chdir(SAMPLES.parent)
    code, output = run_cli(
        "run",
        "--claims",
        "samples/claims.csv",
        "--authorizations",
        "samples/authorizations.csv",
        "--as-of",
        AS_OF,
        "--out",
        str(tmp_path / "out"),
        *LENIENT,
    )
    assert code == 0, output
    monkeypatch.chdir(tmp_path)
    events: list[object] = []

    @contextlib.contextmanager
    def started_early(count: int, claims: list[str], rows: int) -> Iterator[None]:
        events.append(("workers", count, claims, rows))
        yield

    verify = pipeline.verify.verify

    def verified(directory: Path, **options: int) -> pipeline.verify.Verdict:
        events.append("verify")
        return verify(directory, **options)

    monkeypatch.setattr(pipeline.cli, "started_early", started_early)
    monkeypatch.setattr(pipeline.verify, "verify", verified)
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 0, output
    claims = str(SAMPLES / "claims.csv")
    assert events == [("workers", WORKERS, [claims], ROWS_PER_PARTITION), "verify"]


def test_verify_reads_relative_inputs_from_the_run_s_directory_in_workers_started_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers started before verify moves into the run's directory read a relative path
    # from where the auditor stands, where a file of the same name may be another.
    night, audit = tmp_path / "night", tmp_path / "audit"
    for folder in (night, audit):
        folder.mkdir()
        shutil.copy(SAMPLES / "authorizations.csv", folder)
    shutil.copy(SAMPLES / "claims.csv", night)
    text = (SAMPLES / "claims.csv").read_text()
    (audit / "claims.csv").write_text(text.replace(",145.00,", ",945.00,"))
    assert (audit / "claims.csv").read_text() != text
    monkeypatch.chdir(night)
    code, output = run_cli(
        "run",
        "--claims",
        "claims.csv",
        "--authorizations",
        "authorizations.csv",
        "--as-of",
        AS_OF,
        "--out",
        str(tmp_path / "out"),
        *LENIENT,
    )
    assert code == 0, output
    # Workers started early, and a rerun in several partitions, which they read.
    monkeypatch.chdir(audit)
    code, output = run_cli(
        "verify", str(tmp_path / "out"), "--workers", "2", "--partition-rows", "10"
    )
    assert code == 0, output
    assert "reproduced; every output is byte-identical" in output


@pytest.mark.parametrize("how", ["appended to", "put in its place"])
def test_an_input_that_changes_while_the_run_reads_it_fails_the_run(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its lines would be of two versions of the file, or of one the manifest's digest
    # is not: an upstream job still writing it, or dropping a new one in its place.
    claims = tmp_path / "claims.csv"
    shutil.copy(SAMPLES / "claims.csv", claims)
    identity = pipeline.engine._identity

    def changed_meanwhile(*args: Any) -> Any:
        if how == "appended to":
            with claims.open("a") as file:
                file.write(claims.read_text().splitlines()[1] + "\n")
        else:
            shutil.copy(SAMPLES / "claims.csv", tmp_path / "next.csv")
            os.replace(tmp_path / "next.csv", claims)
        return identity(*args)

    monkeypatch.setattr(pipeline.engine, "_identity", changed_meanwhile)
    code, output = run_of(claims, tmp_path / "out")
    assert code == 1, output
    assert f"{claims}: changed while the run read it" in output
    assert not (tmp_path / "out").exists()


def test_a_reading_that_fails_on_a_file_changed_meanwhile_is_told_as_the_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row cut in two by the change reads as a field count gone wrong: not the file's
    # defect, and the operator is told so.
    claims = tmp_path / "claims.csv"
    shutil.copy(SAMPLES / "claims.csv", claims)

    def torn(*args: Any, **kwargs: Any) -> Any:
        with claims.open("a") as file:
            file.write("half a row,")
        raise InputError(f"{claims}: cannot be read as a UTF-8 CSV file: expected 26 columns")

    monkeypatch.setattr(pipeline.engine, "_read_pass", torn)
    code, output = run_of(claims, tmp_path / "out")
    assert code == 1, output
    assert f"{claims}: changed while the run read it" in output


def test_a_ledger_made_for_a_run_that_is_held_is_removed(tmp_path: Path) -> None:
    ledger = tmp_path / "nights" / "ledger"
    code, output = sample_run(tmp_path / "out", "--ledger", str(ledger), lenient=False)
    assert code == 3, output
    assert not (tmp_path / "nights").exists()


def test_a_run_refused_at_the_lock_leaves_the_holder_s_new_ledger_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two first nights at once: the one refused had looked before the other made the
    # ledger, and took it for one it had made itself.
    ledger = tmp_path / "ledger"
    with writing(ledger):
        monkeypatch.setattr(os.path, "lexists", lambda path: False)
        with pytest.raises(LedgerError, match="another run is writing"), writing(ledger):
            pass
        monkeypatch.undo()
        assert (ledger / ".lock").exists()
        with pytest.raises(LedgerError, match="another run is writing"), writing(ledger):
            pass


DROPPED = ["--bounding-set=-dac_override,-dac_read_search"]
DROPPED += ["--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_the_ledger_s_lock_needs_no_write_permission(tmp_path: Path) -> None:
    # Another account's .lock, read-only to this one, locks as well as one's own. Root
    # writes any file: the check runs without its power to (setpriv).
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / ".lock").touch()
    (ledger / ".lock").chmod(0o444)
    script = "from pipeline.ledger import writing\nwith writing(__import__('sys').argv[1]): pass"
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        ["setpriv", *DROPPED, sys.executable, "-c", script, str(ledger)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert done.returncode == 0, done.stderr
    with writing(ledger), pytest.raises(LedgerError, match="another run is writing"):
        with writing(ledger):
            pass


def test_verify_catches_one_flipped_byte(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")
    summary = tmp_path / "out" / "summary.json"
    data = bytearray(summary.read_bytes())
    at = data.index(b'"AUTHORIZED": ') + len(b'"AUTHORIZED": ')
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    summary.write_bytes(bytes(data))
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert "summary.json: decisions.AUTHORIZED differs" in output


def test_verify_names_the_column_of_a_changed_parquet_value(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")
    path = tmp_path / "out" / "adjudicated.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[3, "liable_npi"] = "1999999992"
    pq.write_table(pa_table(frame, table.schema), path, compression="zstd")
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert "adjudicated.parquet: column liable_npi: 1 rows differ (first at row 4)" in output


def _flip_denials(path: Path) -> None:
    """Rewrite ``path`` with every DENY line paid instead."""
    table = pq.read_table(path)
    frame = table.to_pandas()
    assert frame["decision"].eq("DENY").any()
    frame.loc[frame["decision"].eq("DENY"), "decision"] = "AUTHORIZED"
    pq.write_table(pa_table(frame, table.schema), path, compression="zstd")


def test_verify_reads_a_relative_directory_from_where_it_is_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample_run(tmp_path / "runs" / "out")
    shutil.copytree(tmp_path / "runs" / "out", tmp_path / "audit" / "out")
    _flip_denials(tmp_path / "audit" / "out" / "adjudicated.parquet")
    monkeypatch.chdir(tmp_path / "audit")
    code, output = run_cli("verify", "out")
    assert code == 1, output
    assert "adjudicated.parquet: column decision:" in output
    monkeypatch.chdir(tmp_path / "runs")
    code, output = run_cli("verify", "out")
    assert code == 0, output


def _rewrite_manifest(directory: Path, change: Any) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m.pop("working_directory"), "working_directory"),
        (lambda m: m.update(as_of="last night"), "as_of"),
        (lambda m: m.update(inputs={}), "inputs"),
        (lambda m: m["inputs"][0].pop("sha256"), "inputs"),
        (lambda m: m.update(inputs=m["inputs"][:1]), "inputs"),
        (lambda m: m["rules"].update(source=3), "rules.source"),
        (lambda m: m["options"].update(max_denial_rate="0.5"), "options.max_denial_rate"),
        (lambda m: m["options"].update(ledger_entries=[{}]), "options.ledger_entries"),
        (lambda m: m.clear(), "run_id"),
        (lambda m: m.update(program="0.5.0"), "program"),
        (lambda m: m.update(environment=[]), "environment"),
    ],
    ids=[
        "no working directory",
        "an as-of that is no date",
        "inputs not a list",
        "an input without its digest",
        "no register",
        "a rules source not text",
        "a rate as text",
        "a ledger entry without its name",
        "an empty object",
        "a program that is no object",
        "an environment that is no object",
    ],
)
def test_verify_refuses_a_manifest_it_cannot_read_and_names_what(
    tmp_path: Path, change: Any, named: str
) -> None:
    sample_run(tmp_path / "out")
    _rewrite_manifest(tmp_path / "out", change)
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"the manifest's {named} is missing or not what a run writes" in result.output


def test_verify_refuses_a_manifest_that_is_no_object(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")
    (tmp_path / "out" / "manifest.json").write_text("[]")
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1, output
    assert "the manifest's document is missing or not what a run writes" in output
    # The digest of what was read, for the scheduler's log, though the rerun was refused.
    assert f"manifest sha256 {hashlib.sha256(b'[]').hexdigest()}" in output


def test_verify_compares_an_output_the_manifest_leaves_out(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")

    def forget(manifest: dict[str, Any]) -> None:
        manifest["outputs"] = [o for o in manifest["outputs"] if o["path"] != "adjudicated.parquet"]

    _rewrite_manifest(tmp_path / "out", forget)
    _flip_denials(tmp_path / "out" / "adjudicated.parquet")
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1, output
    assert "adjudicated.parquet: column decision:" in output
    assert "manifest.json: outputs differs" in output


def test_verify_names_a_file_the_run_does_not_make(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")
    (tmp_path / "out" / "adjudicated-fixed.parquet").write_bytes(b"")
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1, output
    assert "adjudicated-fixed.parquet: in the published run, but the run makes no such" in output


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("outputs", lambda m: m["outputs"][0].update(sha256="0" * 64), "outputs[0].sha256"),
        ("outputs", lambda m: m["outputs"][0].update(rows=999), "outputs[0].rows"),
        ("inputs", lambda m: m["inputs"][0].update(rows=12345), "inputs[0].rows"),
        ("forced", lambda m: m.update(forced=False), "forced"),
        ("guards_tripped", lambda m: m.update(guards_tripped=[]), "guards_tripped"),
    ],
)
def test_verify_checks_the_manifests_account_of_the_run(
    tmp_path: Path, key: str, value: Any, says: str
) -> None:
    # The sample's rejects trip the reject-rate guard at its default: forced past it.
    code, output = sample_run(tmp_path / "out", "--force", lenient=False)
    assert code == 0, output
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["forced"] is True
    _rewrite_manifest(tmp_path / "out", value)
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1, output
    assert f"manifest.json: {says} differs" in output, key


def test_verify_accepts_an_earlier_manifest_without_rows_for_the_page_and_summary(
    tmp_path: Path,
) -> None:
    """0.3.0 added ``rows: null`` for ``report.html`` and ``summary.json``; a manifest
    written before, without the key, gives the same account."""
    sample_run(tmp_path / "out")

    def drop_rows(manifest: dict[str, Any]) -> None:
        for output in manifest["outputs"]:
            if output["rows"] is None:
                del output["rows"]

    _rewrite_manifest(tmp_path / "out", drop_rows)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sum("rows" not in o for o in manifest["outputs"]) == 2
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 0, output


def test_verify_names_the_libraries_that_differ_where_bytes_do(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    here = manifest["environment"]
    assert set(here) == {"python", "numpy", "pandas", "pandera", "pyarrow"}
    assert here["pyarrow"] == pa.__version__

    # As a run made with another pyarrow: a Parquet footer names its version.
    _rewrite_manifest(tmp_path / "out", lambda m: m["environment"].update(pyarrow="25.0.0"))
    path = tmp_path / "out" / "rejects.parquet"
    path.write_bytes(path.read_bytes().replace(pa.__version__.encode(), b"25.0.0"))
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1, output
    assert "rejects.parquet: bytes differ but every value is equal" in output
    assert f"environment: the run was made with pyarrow 25.0.0, this is {pa.__version__}" in output


def test_verify_refuses_a_run_whose_working_directory_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "night").mkdir()
    for name in ("claims.csv", "authorizations.csv"):
        shutil.copy(SAMPLES / name, tmp_path / "night" / name)
    monkeypatch.chdir(tmp_path / "night")
    code, output = run_cli(
        "run",
        *("--claims", "claims.csv", "--authorizations", "authorizations.csv"),
        *("--as-of", AS_OF, "--out", str(tmp_path / "out"), *LENIENT),
    )
    assert code == 0, output
    monkeypatch.chdir(tmp_path)
    shutil.rmtree(tmp_path / "night")
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert f"working directory {tmp_path / 'night'} is gone" in output
    assert "the relative paths claims.csv, authorizations.csv cannot be resolved" in output


def test_verify_needs_no_working_directory_for_absolute_paths(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")  # every path absolute
    _rewrite_manifest(
        tmp_path / "out", lambda m: m.update(working_directory=str(tmp_path / "moved"))
    )
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 0, output


def test_verify_refuses_a_run_whose_ledger_is_gone(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    night(tmp_path, "n2", [line(claim_id="C2")], register, ledger)  # counts n1's entry
    ledger.rename(tmp_path / "ledger-moved")
    code, output = run_cli("verify", str(tmp_path / "n2"))
    assert code == 1
    assert "no such ledger; the entries 000001-" in output


def test_verify_names_the_program_versions_when_another_made_the_run(tmp_path: Path) -> None:
    sample_run(tmp_path / "out")
    manifest_path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["program"]["version"] = "0.0.1"
    manifest_path.write_text(json.dumps(manifest))
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 0, output  # the same bytes: the version alone is no difference
    assert "made by version" not in output
    summary = tmp_path / "out" / "summary.json"
    summary.write_text(summary.read_text().replace('"AUTHORIZED": ', '"AUTHORIZED": 9', 1))
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert f"made by version 0.0.1, this is {pipeline.__version__}" in output


def test_verify_names_the_versions_when_this_one_refuses_the_runs_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sample_run(tmp_path / "out")[0] == 0
    _rewrite_manifest(tmp_path / "out", lambda m: m["program"].update(version="0.4.0"))

    def stricter(*args: Any, **kwargs: Any) -> Any:  # as this version reads a header
        raise InputError("claims.csv names contract columns in another case")

    monkeypatch.setattr(pipeline.verify, "run_into", stricter)
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1, output
    assert "names contract columns in another case; the run was made by version 0.4.0" in output
    assert "which reads inputs more strictly" in output


def test_verify_tells_an_input_changed_meanwhile_as_such_whatever_made_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sample_run(tmp_path / "out")[0] == 0
    _rewrite_manifest(tmp_path / "out", lambda m: m["program"].update(version="0.4.0"))

    def changed(*args: Any, **kwargs: Any) -> Any:
        raise InputChanged("claims.csv: changed while the run read it")

    monkeypatch.setattr(pipeline.verify, "run_into", changed)
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1, output
    assert "changed while the run read it" in output
    assert "more strictly" not in output


def test_verify_names_the_versions_when_this_one_refuses_the_runs_rules(tmp_path: Path) -> None:
    rules_dir = files("pipeline.rules")
    rules = tmp_path / "rules.toml"
    rules.write_text(rules_dir.joinpath("default.toml").read_text(encoding="utf-8"))
    table = "advanced_imaging_codes.csv"
    (tmp_path / table).write_bytes(rules_dir.joinpath(table).read_bytes())
    assert sample_run(tmp_path / "out", "--rules", str(rules))[0] == 0
    # As if an earlier version had run with rules this one refuses.
    rules.write_text(
        rules.read_text().replace(
            "allow_family_substitution = true", 'allow_family_substitution = "yes"'
        )
    )
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert "switches.allow_family_substitution must be true or false" in output
    assert "made by version" not in output  # this version made the run: the rules changed
    manifest_path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["program"]["version"] = "0.0.1"
    manifest_path.write_text(json.dumps(manifest))
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert "switches.allow_family_substitution must be true or false" in output
    assert f"made by version 0.0.1, this is {pipeline.__version__}" in output
    rules.unlink()  # a rules file gone is no stricter check: no word of versions
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert "cannot be read" in output
    assert "made by version" not in output


def pa_table(frame: pd.DataFrame, schema: object) -> object:
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def test_verify_refuses_a_changed_input(tmp_path: Path) -> None:
    claims = tmp_path / "claims.csv"
    shutil.copy(SAMPLES / "claims.csv", claims)
    code, _ = run_of(claims, tmp_path / "out")
    assert code == 0
    claims.write_text(claims.read_text().replace("MBR", "MBX", 1))
    code, output = run_cli("verify", str(tmp_path / "out"))
    assert code == 1
    assert f"input {claims} changed since the run" in output


# --- safety guards ---------------------------------------------------------------------


def test_reject_rate_guard_holds_and_force_publishes(tmp_path: Path) -> None:
    args = [
        "run",
        "--claims",
        str(SAMPLES / "claims.csv"),
        "--authorizations",
        str(SAMPLES / "authorizations.csv"),
        "--as-of",
        AS_OF,
    ]
    code, output = run_cli(*args, "--out", str(tmp_path / "held"))
    assert code == 3
    assert "10 of 77 claim rows were rejected" in output
    assert not (tmp_path / "held").exists()
    code, output = run_cli(*args, "--out", str(tmp_path / "forced"), "--force")
    assert code == 0
    manifest = json.loads((tmp_path / "forced" / "manifest.json").read_text())
    assert manifest["forced"] is True
    assert manifest["guards_tripped"][0].startswith("10 of 77 claim rows were rejected")


def test_denial_rate_guard(tmp_path: Path) -> None:
    args = ["--max-denial-rate", "0.2"]  # past the bad rows, as every sample run
    code, output = sample_run(tmp_path / "held", *args)
    assert code == 3
    assert "lines needing authorization were denied" in output
    assert not (tmp_path / "held").exists()
    assert sample_run(tmp_path / "forced", *args, "--force")[0] == 0


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_empty_register_guard(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth(status="APPROVD")])
    claims = write_csv(tmp_path / "claims.csv", [line(hcpcs_code="99213")])
    args = ["run", "--claims", str(claims), "--authorizations", str(register), "--as-of", AS_OF]
    code, output = run_cli(*args, "--out", str(tmp_path / "held"))
    assert code == 3
    assert "the authorization register has no valid rows" in output
    assert run_cli(*args, "--out", str(tmp_path / "forced"), "--force")[0] == 0


# --- the units ledger across nights ------------------------------------------------------


def night(
    tmp_path: Path,
    name: str,
    rows: list[dict[str, object]],
    register: Path,
    ledger: Path,
    *,
    as_of: str = AS_OF,
) -> pd.DataFrame:
    claims = write_csv(tmp_path / f"{name}.csv", rows)
    out = tmp_path / name
    code, output = run_cli(
        "run",
        "--claims",
        str(claims),
        "--authorizations",
        str(register),
        "--as-of",
        as_of,
        "--out",
        str(out),
        "--ledger",
        str(ledger),
        "--max-denial-rate",
        "1",
    )
    assert code == 0, output
    return pd.read_parquet(out / "adjudicated.parquet").set_index("claim_id")


def test_a_run_given_an_empty_ledger_is_not_the_run_given_none(tmp_path: Path) -> None:
    # The two publish different files (units.parquet), so they are two runs.
    code, output = sample_run(tmp_path / "plain")
    assert code == 0, output
    code, output = sample_run(tmp_path / "ledgered", "--ledger", str(tmp_path / "ledger"))
    assert code == 0, output
    plain, ledgered = (
        json.loads((tmp_path / name / "manifest.json").read_text())["run_id"]
        for name in ("plain", "ledgered")
    )
    assert (tmp_path / "ledgered" / "units.parquet").exists()
    assert plain != ledgered


def test_a_second_writer_to_a_ledger_is_refused_while_the_first_holds_it(
    tmp_path: Path,
) -> None:
    # Two runs at once would each count neither's units: one unit paid twice.
    ledger = tmp_path / "ledger"
    with writing(ledger):  # a run writing to it, as far as the lock says
        code, output = sample_run(tmp_path / "second", "--ledger", str(ledger))
    assert code == 1, output
    assert f"{ledger}: another run is writing to this ledger; one writer at a time" in output
    assert not (tmp_path / "second").exists()
    assert not [p for p in ledger.iterdir() if p.name != ".lock"]
    code, output = sample_run(tmp_path / "second", "--ledger", str(ledger))
    assert code == 0, output


def test_three_nights_with_the_ledger(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"

    first = night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    assert first.loc["C1", "decision"] == "AUTHORIZED"
    units = pd.read_parquet(tmp_path / "n1" / "units.parquet")
    assert units[["kind", "claim_id", "authorization_id", "units"]].values.tolist() == [
        ["take", "C1", "A1", 1.0]
    ]

    second = night(tmp_path, "n2", [line(claim_id="C2", rendering_npi=NPI_B)], register, ledger)
    assert (second.loc["C2", "decision"], second.loc["C2", "reason"]) == ("DENY", "UNITS_EXCEEDED")

    replacement = line(claim_id="C3", claim_frequency_code="7", original_claim_id="C1")
    third = night(tmp_path, "n3", [replacement], register, ledger)
    assert (third.loc["C3", "decision"], third.loc["C3", "reason"]) == (
        "AUTHORIZED",
        "AUTHORIZATION_MATCHED",
    )

    void = line(claim_id="C4", claim_frequency_code="8", original_claim_id="C3")
    fourth = night(
        tmp_path, "n4", [void, line(claim_id="C5", rendering_npi=NPI_A)], register, ledger
    )
    assert fourth.loc["C4", "decision"] == "NOT_APPLICABLE"
    assert fourth.loc["C5", "decision"] == "AUTHORIZED", "the void gave the unit back"

    entries = sorted(p.name for p in ledger.iterdir() if p.name != ".lock")
    assert [e.split("-")[0] for e in entries] == ["000001", "000002", "000003", "000004"]


def test_a_family_match_takes_the_register_rows_units_across_nights(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])  # (A1, 70553), one unit
    ledger = tmp_path / "ledger"
    first = night(tmp_path, "n1", [line(claim_id="C1", hcpcs_code="70551")], register, ledger)
    assert bool(first.loc["C1", "code_substituted"])
    units = pd.read_parquet(tmp_path / "n1" / "units.parquet")
    assert units[["claim_id", "authorization_id", "hcpcs_code", "units"]].values.tolist() == [
        ["C1", "A1", "70553", 1.0]
    ]
    second = night(tmp_path, "n2", [line(claim_id="C2")], register, ledger)
    assert (second.loc["C2", "decision"], second.loc["C2", "reason"]) == ("DENY", "UNITS_EXCEEDED")


def test_verify_reads_the_ledger_as_it_stood(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    night(tmp_path, "n2", [line(claim_id="C2")], register, ledger)
    code, output = run_cli("verify", str(tmp_path / "n1"))
    assert code == 0, output
    code, output = run_cli("verify", str(tmp_path / "n2"))
    assert code == 0, output


def test_a_stop_after_the_rename_keeps_the_published_runs_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM raises where it lands: here, as the published directory's parent is synced.
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"

    synced = pipeline.publish._fsync_directory

    def stopped(directory: Path) -> None:
        synced(directory)
        if (tmp_path / "n1").exists():  # after the rename
            raise Stopped()

    monkeypatch.setattr(pipeline.publish, "_fsync_directory", stopped)
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    assert (tmp_path / "n1" / "manifest.json").is_file()
    assert [p.name.split("-")[0] for p in ledger.iterdir() if p.name != ".lock"] == ["000001"]
    monkeypatch.undo()
    second = night(tmp_path, "n2", [line(claim_id="C2")], register, ledger)
    assert (second.loc["C2", "decision"], second.loc["C2", "reason"]) == ("DENY", "UNITS_EXCEEDED")


@pytest.mark.parametrize("published_by_it", [True, False])
def test_a_pending_entry_counts_only_for_the_run_that_published(
    tmp_path: Path, published_by_it: bool
) -> None:
    """Two runs of the same inputs share a run_id; the one that lost the race to publish
    DIR (its rename refused) must not count its units on the other's manifest."""
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    manifest = tmp_path / "n1" / "manifest.json"
    run_id = json.loads(manifest.read_text())["run_id"]
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    note = stage_entry(
        ledger,
        run_id,
        tmp_path / "n1" / "units.parquet",
        tmp_path / "n1",
        manifest=digest if published_by_it else hashlib.sha256(b"the other run's").hexdigest(),
    )
    settle_entry(ledger, note)
    entries = sorted(p.name for p in ledger.iterdir() if p.name != ".lock")
    assert entries == sorted(
        [f"000001-{run_id}.parquet", *([f"000002-{run_id}.parquet"] if published_by_it else [])]
    )


def test_rerunning_the_same_night_does_not_count_its_own_units(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    again = night(tmp_path, "n1-again", [line(claim_id="C1")], register, ledger)
    assert again.loc["C1", "decision"] == "AUTHORIZED"


def test_a_night_run_twice_counts_its_units_once_the_night_after(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth(units_approved="2")])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    night(tmp_path, "n1-again", [line(claim_id="C1")], register, ledger)
    second = night(tmp_path, "n2", [line(claim_id="C2")], register, ledger)
    assert second.loc["C2", "decision"] == "AUTHORIZED", "C1's unit counted once: one left"


def test_a_claim_decided_again_without_units_gives_its_units_back(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "a", [line(claim_id="C1")], register, ledger)
    again = night(
        tmp_path, "b", [line(claim_id="C1", place_of_service_code="23")], register, ledger
    )
    assert again.loc["C1", "decision"] == "EXEMPT"
    units = pd.read_parquet(tmp_path / "b" / "units.parquet")
    assert units[["kind", "member_id", "claim_id", "released_by"]].values.tolist() == [
        ["release", "M1", "C1", "C1"]
    ]
    third = night(tmp_path, "c", [line(claim_id="C2")], register, ledger)
    assert third.loc["C2", "decision"] == "AUTHORIZED", "C1 took nothing when decided again"


def test_a_replacement_naming_itself_takes_its_units_afresh(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="R")], register, ledger)
    again = line(claim_id="R", claim_frequency_code="7", original_claim_id="R")
    second = night(tmp_path, "n2", [again], register, ledger)
    assert second.loc["R", "decision"] == "AUTHORIZED"
    third = night(tmp_path, "n3", [line(claim_id="N")], register, ledger)
    assert third.loc["N", "reason"] == "UNITS_EXCEEDED", "R holds the one unit"


OLD_TAKE: dict[str, object] = {
    "run_id": "0123456789abcdef",
    "kind": "take",
    "member_id": "M1",
    "claim_id": "C1",
    "claim_line_number": "1",
    "authorization_id": "A1",
    "hcpcs_code": "70553",
    "units": 1.0,
    "released_by": None,
}
"""A take of an entry as version 0.3.0 wrote it: no ``as_of``."""


def test_a_night_rerun_after_a_later_void_stays_voided(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger, as_of="2026-04-01")
    void = line(claim_id="V1", claim_frequency_code="8", original_claim_id="C1")
    night(tmp_path, "n2", [void], register, ledger, as_of="2026-04-02")
    night(tmp_path, "n1-again", [line(claim_id="C1")], register, ledger, as_of="2026-04-01")
    units = pd.read_parquet(tmp_path / "n1-again" / "units.parquet")
    assert units["as_of"].astype(str).tolist() == ["2026-04-01 23:59:59.999999"]
    third = night(tmp_path, "n3", [line(claim_id="N")], register, ledger, as_of="2026-04-03")
    assert third.loc["N", "decision"] == "AUTHORIZED", "night 2's void still releases C1"


def test_an_entry_of_the_earlier_version_counts_before_the_others(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    pd.DataFrame([OLD_TAKE]).to_parquet(ledger / "000001-0123456789abcdef.parquet")
    register = write_csv(tmp_path / "register.csv", [auth(units_approved="2")])
    second = night(tmp_path, "n2", [line(claim_id="C2")], register, ledger)
    assert second.loc["C2", "decision"] == "AUTHORIZED"
    third = night(tmp_path, "n3", [line(claim_id="C3")], register, ledger)
    assert third.loc["C3", "reason"] == "UNITS_EXCEEDED", "C1's unit and C2's: none left"


@pytest.mark.parametrize("written", ["junk", "a claims file", "TAKE", "units as text"])
def test_a_ledger_entry_that_is_none_fails_the_run_with_a_message(
    tmp_path: Path, written: str
) -> None:
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    entry = ledger / "000001-0123456789abcdef.parquet"
    if written == "junk":
        entry.write_text("junk\n")
    elif written == "a claims file":
        pd.DataFrame([line()]).to_parquet(entry)
    elif written == "TAKE":  # a kind the ledger does not know was counted as nothing
        pd.DataFrame([OLD_TAKE | {"kind": "TAKE"}]).to_parquet(entry)
    else:
        pd.DataFrame([OLD_TAKE | {"units": "1"}]).to_parquet(entry)
    register = write_csv(tmp_path / "register.csv", [auth()])
    claims = write_csv(tmp_path / "claims.csv", [line()])
    code, output = run_cli(
        *("run", "--claims", str(claims), "--authorizations", str(register)),
        *("--as-of", AS_OF, "--out", str(tmp_path / "out"), "--ledger", str(ledger)),
    )
    assert code == 1
    assert output.strip().splitlines()[-1].startswith(f"Error: {entry}: ")
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists()


def test_a_void_does_not_release_units_taken_after_it(tmp_path: Path) -> None:
    register = write_csv(tmp_path / "register.csv", [auth()])
    ledger = tmp_path / "ledger"
    night(tmp_path, "n1", [line(claim_id="C1")], register, ledger)
    void = line(claim_id="V1", claim_frequency_code="8", original_claim_id="C1")
    night(tmp_path, "n2", [void], register, ledger)
    third = night(tmp_path, "n3", [line(claim_id="C1")], register, ledger)
    assert third.loc["C1", "decision"] == "AUTHORIZED", "the void gave the unit back"
    fourth = night(tmp_path, "n4", [line(claim_id="C2")], register, ledger)
    assert (fourth.loc["C2", "decision"], fourth.loc["C2", "reason"]) == (
        "DENY",
        "UNITS_EXCEEDED",
    ), "C1 billed again after its void took the one unit"


# --- a killed run leaves nothing ------------------------------------------------------------


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The samples' valid lines repeated under new claim ids: a run of a few seconds."""
    where = tmp_path_factory.mktemp("big")
    claims = pd.read_csv(SAMPLES / "claims.csv", dtype=str, keep_default_na=False)
    copies = 1500
    big = pd.concat([claims] * copies, ignore_index=True)
    suffix = pd.Series(range(copies)).repeat(len(claims)).astype(str).to_numpy()
    big["claim_id"] = big["claim_id"] + "-" + suffix
    big["member_id"] = big["member_id"] + "-" + suffix
    big.to_csv(where / "claims.csv", index=False)
    return where / "claims.csv", SAMPLES / "authorizations.csv"


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_no_directory(
    tmp_path: Path, big_inputs: tuple[Path, Path]
) -> None:
    claims, register = big_inputs
    ledger = tmp_path / "ledger"
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        "--claims",
        str(claims),
        "--authorizations",
        str(register),
        "--as-of",
        AS_OF,
        "--ledger",
        str(ledger),
        "--force",
    ]
    started = time.monotonic()
    subprocess.run([*command, "--out", str(tmp_path / "timing")], check=True, capture_output=True)
    duration = time.monotonic() - started
    shutil.rmtree(tmp_path / "timing")
    shutil.rmtree(ledger)
    chooser = random.Random(20261127)
    out = tmp_path / "out"
    temporary = tmp_path / "tmp"  # the system's temporary directory, as the runs see it
    temporary.mkdir()
    environment = {**os.environ, "TMPDIR": str(temporary)}
    for _ in range(6):
        process = subprocess.Popen(
            [*command, "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
        )
        time.sleep(chooser.uniform(0.05, duration * 0.95))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if out.exists():  # the run finished before the signal: it must then be whole
            assert (out / "manifest.json").is_file()
            shutil.rmtree(out)
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
        assert all(name.endswith(".partial") for name in leftovers)
        # Spill files live inside the staging directory, not in the system's temporary one.
        assert not list(temporary.iterdir())
    subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
    assert (out / "manifest.json").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no spill is published"
    # The killed runs' staging directories were swept by the run that followed them.
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    entries = [p.name for p in ledger.iterdir() if not p.name.startswith(".")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert any(manifest["run_id"] in name for name in entries)
    assert os.listdir(out)


def _stopped_by_sigterm(
    command: list[str],
    temporary: Path,
    begun: Path,
    after: float,
    *,
    group: bool = False,
    sent: signal.Signals = signal.SIGTERM,
) -> tuple[int, str]:
    """Run ``command`` (its temporary directory ``temporary``); once a path matching
    ``begun`` exists (the run's staging directory, the rerun's scratch one) and ``after``
    more seconds, send it SIGTERM (with ``group``, to its process group, workers
    included, as a scheduler may); return its exit code and what it printed on stderr.
    Its workers inherit the stderr pipe, so this returns only once they have ended too."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temporary)},
        start_new_session=True,
    )
    assert soon(
        lambda: list(begun.parent.glob(begun.name)) or process.poll() is not None, seconds=60
    ), f"no {begun.name} appeared"
    time.sleep(after)
    if group:
        os.killpg(process.pid, sent)
    else:
        process.send_signal(sent)
    _, printed = process.communicate(timeout=120)
    return process.returncode, printed


@pytest.mark.slow
def test_sighup_to_the_process_group_stops_a_run_as_sigterm_does(
    tmp_path: Path, big_inputs: tuple[Path, Path]
) -> None:
    """The terminal or session that started a run gone: SIGHUP to the run and its
    workers. Before, it ended the run on the spot and left its staging directory and
    spill files behind."""
    claims, register = big_inputs
    out = tmp_path / "out"
    command = [
        *(sys.executable, "-m", "pipeline", "run", "--claims", str(claims)),
        *("--authorizations", str(register), "--as-of", AS_OF, "--force"),
        *("--workers", "2", "--partition-rows", "20000", "--out", str(out)),
    ]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    staging = tmp_path / f".out.*{STAGING_SUFFIX}"
    code, printed = _stopped_by_sigterm(
        command, temporary, staging, 0.0, group=True, sent=signal.SIGHUP
    )
    assert (code, "Traceback" in printed) == (1, False), printed
    assert f"stopped (SIGHUP); nothing was published to {out}" in printed
    assert not out.exists()
    assert not list(tmp_path.glob(staging.name))
    assert not list(temporary.iterdir())


@pytest.mark.slow
def test_sigterm_stops_a_run_and_a_rerun_leaving_nothing(
    tmp_path: Path, big_inputs: tuple[Path, Path]
) -> None:
    claims, register = big_inputs
    command = [
        *(sys.executable, "-m", "pipeline", "run", "--claims", str(claims)),
        *("--authorizations", str(register), "--as-of", AS_OF, "--force"),
        *("--workers", "2", "--partition-rows", "20000"),  # six partitions, two workers
    ]
    started = time.monotonic()
    subprocess.run([*command, "--out", str(tmp_path / "done")], check=True, capture_output=True)
    duration = time.monotonic() - started
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    out = tmp_path / "out"
    staging = tmp_path / f".out.*{STAGING_SUFFIX}"
    stopped = 0
    for share, group in ((0.0, False), (0.1, True), (0.2, False), (0.3, True)):
        code, printed = _stopped_by_sigterm(
            [*command, "--out", str(out)], temporary, staging, duration * share, group=group
        )
        assert "Traceback" not in printed
        if code == 0:  # it finished first: then it is whole
            assert (out / "manifest.json").is_file()
            shutil.rmtree(out)
            continue
        assert code == 1, printed
        assert f"stopped (SIGTERM); nothing was published to {out}" in printed
        assert not out.exists()
        # The stopped run removed its staging directory and spill files itself.
        assert not list(tmp_path.glob(staging.name))
        assert not list(temporary.iterdir())
        stopped += 1
    assert stopped, "no run was stopped before it finished"
    # The auditor's rerun: its scratch directory (a whole run's files) is removed too.
    rerun = [sys.executable, "-m", "pipeline", "verify", str(tmp_path / "done")]
    code, printed = _stopped_by_sigterm(
        rerun, temporary, temporary / "adjudicate-verify-*", 0.0, group=True
    )
    assert code == 1, printed
    assert "stopped (SIGTERM) before the rerun was done" in printed
    assert not list(temporary.iterdir())


def test_only_abandoned_staging_directories_are_swept(tmp_path: Path) -> None:
    target = tmp_path / "out[1]"  # a name with glob characters
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    owners = {
        "killed": f"{host}-{dead.pid}",
        "running": f"{host}-{os.getpid()}",
        "elsewhere": f"another-host-{dead.pid}",
        "unmarked": "",
    }
    for name, owner in owners.items():
        staging = tmp_path / f".{target.name}.{owner}.{name}{STAGING_SUFFIX}"
        staging.mkdir()
        # A run killed as it wrote, or a sweep killed halfway: no file says whose it is.
        (staging / "rejects.parquet").write_bytes(b"PAR1")
    (tmp_path / f".{target.name}.{host}-{dead.pid}.empty{STAGING_SUFFIX}").mkdir()
    (tmp_path / f".out.{host}-{dead.pid}.another{STAGING_SUFFIX}").mkdir()  # another target's
    swept = sweep_abandoned(target)
    assert sorted(p.name.split(".")[-2] for p in swept) == ["empty", "killed"]
    left = sorted(p.name.split(".")[-2] for p in tmp_path.iterdir())
    assert left == ["another", "elsewhere", "running", "unmarked"]


def test_a_stop_inside_mkdtemp_leaves_no_staging_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM raises where it lands: here, after mkdtemp made the directory and before
    # it returned its name (seen in one of ~50 runs stopped as their staging appeared).
    made = tempfile.mkdtemp

    def stopped_as_made(**options: Any) -> str:
        made(**options)
        raise Stopped()

    monkeypatch.setattr(tempfile, "mkdtemp", stopped_as_made)
    with pytest.raises(Stopped), publishing(tmp_path / "out"):
        pass
    assert not list(tmp_path.iterdir())


def test_a_stop_inside_mkdtemp_leaves_no_verify_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As above, for verify's rerun (seen once in a full test run stopped as the scratch
    # directory appeared).
    sample_run(tmp_path / "out")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    made = tempfile.mkdtemp

    def stopped_as_made(**options: Any) -> str:
        made(**options)
        raise Stopped()

    monkeypatch.setattr(tempfile, "mkdtemp", stopped_as_made)
    with pytest.raises(Stopped):
        pipeline.verify.verify(tmp_path / "out")
    assert not list((tmp_path / "tmp").iterdir())


def test_a_target_that_appears_at_the_rename_is_a_publish_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another run to the same DIR publishing between the last check and the rename.
    target = tmp_path / "out"

    def published_meanwhile(source: str, destination: str) -> None:
        raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY))

    monkeypatch.setattr(os, "rename", published_meanwhile)
    with pytest.raises(PublishError, match="cannot be published"), publishing(target):
        pass
    assert not list(tmp_path.iterdir())


def test_a_staging_directory_is_named_for_its_run(tmp_path: Path) -> None:
    with publishing(tmp_path / "out") as staging:
        assert staging.name.startswith(f".out.{socket.gethostname()}-{os.getpid()}.")
        assert not sweep_abandoned(tmp_path / "out"), "a running run's directory is kept"
    assert (tmp_path / "out").is_dir()


def test_table_differences_are_counted_across_the_batches_compared(tmp_path: Path) -> None:
    # Compared a batch at a time (pipeline.verify.COMPARED_ROWS): a row past the first
    # batch is numbered in the whole file, and empty values alike are no difference.
    rows = pipeline.verify.COMPARED_ROWS + 5_000
    values = pa.array([None if i % 7 == 0 else f"v{i}" for i in range(rows)])
    published, recomputed = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"same": values, "changed": values}), published)
    changed = values.to_pylist()
    changed[rows - 10] = "other"
    changed[rows - 3] = None
    pq.write_table(pa.table({"same": values, "changed": pa.array(changed)}), recomputed)
    assert pipeline.verify.compare(published, recomputed) == [
        f"a.parquet: column changed: 2 rows differ (first at row {rows - 9})"
    ]


def test_a_float_column_s_nan_is_the_same_value_in_both_tables(tmp_path: Path) -> None:
    published, recomputed = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"units": [1.0, float("nan"), None]}), published)
    pq.write_table(pa.table({"units": [1.0, float("nan"), None]}), recomputed, compression="gzip")
    assert pipeline.verify.compare(published, recomputed) == [
        "a.parquet: bytes differ but every value is equal (file layout or metadata)"
    ]
