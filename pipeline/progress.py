"""Telling people and schedulers how far a run has got.

The engine reports stages (reading, validating, deciding, writing) and row
counts to an observer; it never prints or reads the clock itself. The command
line picks the observer: a progress line on a terminal, one JSON object per
stage for a scheduler (``--log-format json``), or silence. Nothing here ever
carries a member id or an NPI: only stage names, row counts, seconds and
counts by decision.
"""

from __future__ import annotations

import json
import time
from typing import Protocol, TextIO

STAGES = ("reading", "validating", "deciding", "writing")


class Observer(Protocol):
    """Receives the engine's progress."""

    def advance(self, stage: str, rows: int) -> None:
        """``rows`` more rows went through ``stage``."""

    def finish(self, stage: str, counts: dict[str, int] | None = None) -> None:
        """``stage`` is done; ``counts`` are its counts by decision, if it decides."""


class Silent:
    """Says nothing: output is not a terminal, or ``--quiet``."""

    def advance(self, stage: str, rows: int) -> None:
        """Nothing to say."""

    def finish(self, stage: str, counts: dict[str, int] | None = None) -> None:
        """Nothing to say."""


class _Timed:
    """Rows and seconds per stage; a stage starts when the one before it finished."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.started: dict[str, float] = {}
        self.mark = time.monotonic()

    def _count(self, stage: str, rows: int) -> None:
        self.started.setdefault(stage, self.mark)
        self.rows[stage] = self.rows.get(stage, 0) + rows

    def _seconds(self, stage: str) -> float:
        return time.monotonic() - self.started.setdefault(stage, self.mark)

    def _done(self) -> None:
        self.mark = time.monotonic()


class _Written(_Timed):
    """What writes to a stream, and stops writing once the stream fails: a log that
    cannot be written (closed, full, its reader gone) does not fail the run."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self.stream = stream

    def _say(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: a stream closed under it
            self.stream = None


class TerminalProgress(_Written):
    """One line on a terminal, rewritten as the stages advance."""

    def advance(self, stage: str, rows: int) -> None:
        """Show the stage and its rows so far."""
        self._count(stage, rows)
        number = STAGES.index(stage) + 1 if stage in STAGES else 0
        self._say(
            f"\r[{number}/{len(STAGES)}] {stage:<11} {self.rows[stage]:>13,} rows  "
            f"{self._seconds(stage):6.1f} s"
        )

    def finish(self, stage: str, counts: dict[str, int] | None = None) -> None:
        """End the stage's line."""
        self.advance(stage, 0)
        self._say("\n")
        self._done()


class JsonLog(_Written):
    """One JSON object per finished stage, for a scheduler's log."""

    def advance(self, stage: str, rows: int) -> None:
        """Count; JSON lines are written per stage, not per batch."""
        self._count(stage, rows)

    def finish(self, stage: str, counts: dict[str, int] | None = None) -> None:
        """Write the stage's object: stage, rows, seconds, and counts by decision."""
        record: dict[str, object] = {
            "stage": stage,
            "rows": self.rows.get(stage, 0),
            "seconds": round(self._seconds(stage), 3),
        }
        if counts is not None:
            record["decisions"] = counts
        self._say(json.dumps(record, sort_keys=True) + "\n")
        self._done()
