"""The units ledger: what earlier runs took from each authorization.

``LEDGER`` is a directory that outlives runs. Each run adds one entry, a
Parquet file named ``<sequence>-<run_id>.parquet``, holding the units each
line took ("take" rows), the claims that this run's replacements and voids
release ("release" rows), and the claims it decided again, each released by
itself.
Entries are read in order: a claim's takes count only from the last entry
that took for it or released it, and not when it is decided again, or
released, in the run reading them. So a rerun of a night replaces that
night's takes, a claim decided again with no units gives its earlier units
back, and a void releases what came before it, not a take after it.

An entry is first written as a pending file naming the output directory it
belongs to; it becomes an entry once that directory is published. A pending
file whose directory never appeared (the run was killed) is discarded when
the ledger is next read, so a killed run neither blocks the next one nor
leaves units taken for decisions nobody published.

A replacement or void releases its original only for the same member: a claim
naming another member's claim releases nothing, so that a member's units never
depend on which partition another member's claims landed in.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import PipelineError
from pipeline.io import sha256_of
from pipeline.publish import missing_folders, remove_empty

ENTRY = re.compile(r"^(\d{6})-([0-9a-f]{16})\.parquet$")
PENDING_SUFFIX = ".pending.json"
LEDGER_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("as_of", pa.timestamp("us")),
        ("kind", pa.string()),
        ("member_id", pa.string()),
        ("claim_id", pa.string()),
        ("claim_line_number", pa.string()),
        ("authorization_id", pa.string()),
        ("hcpcs_code", pa.string()),
        ("units", pa.float64()),
        ("released_by", pa.string()),
    ]
)
LEDGER_COLUMNS = tuple(LEDGER_SCHEMA.names)
READ_COLUMNS = tuple(name for name in LEDGER_COLUMNS if name != "as_of")
"""The columns an entry must have: version 0.3.0's wrote no ``as_of``."""
ENTRY_ORDER = "_entry"
"""The place of a row's entry among those read, by the as-of of the run that wrote it
(entries without one first), then by sequence: read with the rows, never written."""


class LedgerError(PipelineError):
    """The ledger directory cannot be read or written."""


@dataclass(frozen=True)
class LedgerState:
    """The entries a run counted, by name and hash, and their rows."""

    entries: tuple[tuple[str, str], ...]
    rows: pd.DataFrame


def empty_ledger_rows() -> pd.DataFrame:
    """A ledger table with no rows."""
    return LEDGER_SCHEMA.empty_table().to_pandas()


def _no_entries() -> pd.DataFrame:
    """The rows of a ledger with no entry, as read."""
    return empty_ledger_rows().assign(**{ENTRY_ORDER: pd.Series([], dtype="int64")})


def _settle_pending(ledger: Path) -> None:
    """Promote pending entries whose run was published; drop the others."""
    for note in sorted(ledger.glob(f".*{PENDING_SUFFIX}")):
        settle_entry(ledger, note)


def settle_entry(ledger: Path, note: Path) -> None:
    """Promote a pending entry if its run's directory was published with its manifest
    (the manifest's sha256 in the note; a note without one, from an earlier version:
    the manifest's run_id), else drop it: what a run that stopped, or was killed,
    between staging the entry and committing it leaves to be settled."""
    try:
        pending = json.loads(note.read_text(encoding="utf-8"))
        staged = ledger / pending["staged"]
        published = Path(pending["published_dir"]) / "manifest.json"
        # The manifest's digest, where the note has it: another run of the same inputs
        # (the same run_id) may have published the directory this one failed to.
        done = published.is_file() and (
            sha256_of(published) == pending["manifest"]
            if "manifest" in pending
            else json.loads(published.read_text(encoding="utf-8")).get("run_id")
            == pending["run_id"]
        )
    except (OSError, ValueError, KeyError):
        done, staged = False, None
    if done and staged is not None and staged.is_file():
        os.replace(staged, ledger / pending["entry"])
    elif staged is not None and staged.exists():
        staged.unlink()
    note.unlink(missing_ok=True)


LOCK_FILE = ".lock"
"""The file a run holds locked in the ledger while it reads and writes it."""


@contextmanager
def writing(ledger: Path) -> Iterator[None]:
    """Hold the ledger for one run, from its reading to its entry's commit, or refuse
    at once where another run holds it: two runs at once would each count the units
    of neither's entry, and one could discard the other's pending entry as it settled
    the ledger. An advisory lock (``flock``) on ``LEDGER/.lock``, let go when the run
    ends however it ends (the system releases it with the process)."""
    ledger = Path(ledger)
    if ledger.exists() and not ledger.is_dir():
        raise LedgerError(f"{ledger}: the ledger must be a directory")
    made = missing_folders(ledger)
    ledger.mkdir(parents=True, exist_ok=True)
    # Read-only: the lock needs none, and another account's .lock is as good a lock.
    lock = os.open(ledger / LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
    held = False
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise LedgerError(
                f"{ledger}: another run is writing to this ledger; one writer at a time "
                "(run again when it is done)"
            ) from error
        held = True
        yield
    except BaseException:
        with suppress(OSError):  # the run's own error is the one to tell
            # Only by the run that held it: one refused leaves the holder's ledger be.
            if held and made and [p.name for p in ledger.iterdir()] == [LOCK_FILE]:
                # A ledger this run made and wrote nothing to: gone with the run.
                (ledger / LOCK_FILE).unlink()
                remove_empty(made)
        raise
    finally:
        os.close(lock)  # the lock let go with it


def read_ledger(ledger: Path, only: Sequence[str] | None = None) -> LedgerState:
    """The ledger's entries (or just the ``only`` ones, for an audit), settled first."""
    ledger = Path(ledger)
    if not ledger.exists():
        if only:
            raise LedgerError(
                f"{ledger}: no such ledger; the entries {', '.join(only)} are missing"
            )
        return LedgerState(entries=(), rows=_no_entries())
    if not ledger.is_dir():
        raise LedgerError(f"{ledger}: the ledger must be a directory")
    if only is None:
        _settle_pending(ledger)
        names = sorted(p.name for p in ledger.iterdir() if ENTRY.match(p.name))
    else:
        missing = [name for name in only if not (ledger / name).is_file()]
        if missing:
            raise LedgerError(f"{ledger}: ledger entries are missing: {', '.join(missing)}")
        names = list(only)
    frames = [_entry(ledger / name) for name in names]
    # A night rerun after a later night's void or replacement stands where its as-of
    # puts it: the later night's release still releases what it took.
    as_of = [frame["as_of"].min() for frame in frames]
    places = sorted(range(len(frames)), key=lambda i: (pd.notna(as_of[i]), as_of[i], i))
    for order, i in enumerate(places):
        frames[i] = frames[i].assign(**{ENTRY_ORDER: order})
    rows = pd.concat(frames, ignore_index=True) if frames else _no_entries()
    entries = tuple((name, sha256_of(ledger / name)) for name in names)
    return LedgerState(entries=entries, rows=rows)


def _entry(path: Path) -> pd.DataFrame:
    """One entry's rows, or a :class:`LedgerError` saying why it is none."""
    try:
        rows = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise LedgerError(f"{path}: cannot be read as a ledger entry: {error}") from error
    lacked = [name for name in READ_COLUMNS if name not in rows.columns]
    if lacked:
        raise LedgerError(f"{path}: not a ledger entry: it lacks the columns {', '.join(lacked)}")
    if not rows["kind"].isin(["take", "release"]).all():
        raise LedgerError(f"{path}: not a ledger entry: a kind other than take or release")
    if not pd.api.types.is_float_dtype(rows["units"]) or rows["units"].isna().any():
        raise LedgerError(f"{path}: not a ledger entry: its units are not all numbers")
    if "as_of" not in rows.columns:
        rows = rows.assign(as_of=pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us]"))
    return rows[list(LEDGER_COLUMNS)]


def standing_takes(state: LedgerState) -> pd.DataFrame:
    """The takes that still count before a run: each claim's (member and claim id)
    from the last entry that took for it or released it. A release in that entry
    (a replacement's, a void's, or the claim's own when decided again with no units)
    leaves none of its earlier takes; takes made with it are the claim's afresh."""
    events = state.rows
    claim = _claim_codes(events["member_id"], events["claim_id"])
    order = events[ENTRY_ORDER].to_numpy(np.int64)
    last = np.full(int(claim.max(initial=-1)) + 1, -1, dtype=np.int64)
    np.maximum.at(last, claim, order)
    return events[(order == last[claim]) & events["kind"].eq("take").to_numpy(bool)]


def _claim_codes(members: pd.Series, claims: pd.Series) -> np.ndarray:
    """A number for each (member, claim) pair, from 0 (a missing value is a value of its
    own): grouping by two text columns took 1 s a million rows, twice a task."""
    member, _ = pd.factorize(members, use_na_sentinel=False)
    claim, claim_values = pd.factorize(claims, use_na_sentinel=False)
    pairs, _ = pd.factorize(member.astype(np.int64) * (len(claim_values) + 1) + claim)
    return pairs


def _among(
    members: pd.Series, claims: pd.Series, others: list[tuple[pd.Series, pd.Series]]
) -> np.ndarray:
    """True where a (member, claim) pair is one of the ``others`` pairs: the claims
    looked up first, then the few rows whose claim is among them coded with the others
    (pairs of text, a MultiIndex, took 0.8 s a million rows)."""
    found = np.zeros(len(members), dtype=bool)
    other_members = pd.concat([m for m, _ in others], ignore_index=True).astype("str")
    other_claims = pd.concat([c for _, c in others], ignore_index=True).astype("str")
    # In Arrow: pandas' isin took 9 s to look one claim up among a million.
    looked_up = pc.is_in(pa.array(claims.astype("str")), value_set=pa.array(other_claims.dropna()))
    maybe = np.flatnonzero(np.asarray(looked_up.to_numpy(zero_copy_only=False), dtype=bool))
    if len(maybe) == 0:
        return found
    every_member = pd.concat([members.iloc[maybe].astype("str"), other_members], ignore_index=True)
    every_claim = pd.concat([claims.iloc[maybe].astype("str"), other_claims], ignore_index=True)
    codes = _claim_codes(every_member, every_claim)
    found[maybe] = np.isin(codes[: len(maybe)], codes[len(maybe) :])
    return found


def taken_before(standing: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """Units earlier runs took, per register row, that still count for ``lines``' run:
    the ``standing`` takes (:func:`standing_takes`) but those of claims the run releases
    (a replacement or void of the same member) or decides again.
    """
    frequency = lines["claim_frequency_code"].fillna("1")
    releasing = lines[frequency.isin(["7", "8"])]
    gone = [
        (releasing["member_id"], releasing["original_claim_id"]),
        (lines["member_id"], lines["claim_id"]),
    ]
    counting = standing[~_among(standing["member_id"], standing["claim_id"], gone)]
    # as_index=False makes this a DataFrame; pandas-stubs type it as a Series.
    return counting.groupby(  # type: ignore[return-value]
        ["authorization_id", "hcpcs_code"], as_index=False
    )["units"].sum()


def ledger_rows(
    run_id: str,
    as_of: datetime,
    takes: pd.DataFrame,
    lines: pd.DataFrame,
    standing: pd.DataFrame,
) -> pd.DataFrame:
    """This run's entry, every row with its run's id and as-of: its takes by line, the
    claims its replacements and voids release, and the claims it decided again that
    held ``standing`` takes (each released by itself: the entry then stands for the
    claim, units or none)."""
    took = lines.loc[takes["line"], ["member_id", "claim_id", "claim_line_number"]].reset_index(
        drop=True
    )
    take_rows = pd.DataFrame(
        {
            "run_id": run_id,
            "kind": "take",
            "member_id": took["member_id"],
            "claim_id": took["claim_id"],
            "claim_line_number": took["claim_line_number"],
            "authorization_id": takes["authorization_id"].to_numpy(),
            "hcpcs_code": takes["hcpcs_code"].to_numpy(),
            "units": takes["units"].to_numpy(float),
            "released_by": None,
        }
    )
    frequency = lines["claim_frequency_code"].fillna("1")
    releasing = lines[frequency.isin(["7", "8"])].drop_duplicates("claim_id")
    decided = lines[["member_id", "claim_id"]].drop_duplicates()
    again = decided[
        _among(
            decided["member_id"],
            decided["claim_id"],
            [(standing["member_id"], standing["claim_id"])],
        )
    ]
    # A replacement naming its own id releases itself, as a claim decided again does.
    releases = pd.concat(
        [
            _release_rows(run_id, releasing, "original_claim_id"),
            _release_rows(run_id, again, "claim_id"),
        ],
        ignore_index=True,
    ).drop_duplicates(["member_id", "claim_id", "released_by"])
    frame = pd.concat([take_rows, releases], ignore_index=True).assign(as_of=as_of)
    text = {c: "str" for c in LEDGER_COLUMNS if c not in ("units", "as_of")}
    return frame.astype(text | {"units": "float64", "as_of": "datetime64[us]"})[
        list(LEDGER_COLUMNS)
    ]


def _release_rows(run_id: str, releasing: pd.DataFrame, released: str) -> pd.DataFrame:
    """Release rows: each of ``releasing``'s claims releases its member's claim named
    in its column ``released``."""
    return pd.DataFrame(
        {
            "run_id": run_id,
            "kind": "release",
            "member_id": releasing["member_id"].to_numpy(),
            "claim_id": releasing[released].to_numpy(),
            "claim_line_number": None,
            "authorization_id": None,
            "hcpcs_code": None,
            "units": 0.0,
            "released_by": releasing["claim_id"].to_numpy(),
        }
    )


SORT_KEYS = [
    "kind",
    "claim_id",
    "claim_line_number",
    "released_by",
    "authorization_id",
    "hcpcs_code",
]


def sorted_entry(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """A run's entry from its partitions' rows, in an order no partitioning changes."""
    rows = [part for part in parts if not part.empty]
    if not rows:
        return empty_ledger_rows()
    frame = pd.concat(rows, ignore_index=True)
    return frame.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)


def stage_entry(
    ledger: Path, run_id: str, units: Path, published_dir: Path, *, manifest: str
) -> Path:
    """Copy this run's units as a pending entry; it counts once ``published_dir`` is
    published with this run's manifest (its sha256, ``manifest``)."""
    ledger.mkdir(parents=True, exist_ok=True)
    _settle_pending(ledger)
    sequence = 1 + max(
        (int(m.group(1)) for p in ledger.iterdir() if (m := ENTRY.match(p.name))), default=0
    )
    entry = f"{sequence:06d}-{run_id}.parquet"
    staged = ledger / f".{entry}.staged"
    shutil.copyfile(units, staged)
    note = ledger / f".{entry}{PENDING_SUFFIX}"
    note.write_text(
        json.dumps(
            {
                "run_id": run_id,
                "entry": entry,
                "staged": staged.name,
                "published_dir": str(Path(published_dir).resolve()),
                "manifest": manifest,
            }
        ),
        encoding="utf-8",
    )
    return note


def commit_entry(ledger: Path, note: Path) -> str:
    """Promote a pending entry after its run was published; returns the entry's name."""
    pending = json.loads(note.read_text(encoding="utf-8"))
    os.replace(ledger / pending["staged"], ledger / pending["entry"])
    note.unlink()
    return str(pending["entry"])
