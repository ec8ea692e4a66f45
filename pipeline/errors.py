"""What can go wrong with a run's inputs, as the library says it.

The command line turns these into exit codes; nothing here knows about them.
"""

from __future__ import annotations


class PipelineError(Exception):
    """A run cannot go on; the message says what was wrong and how to fix it."""


class InputError(PipelineError):
    """An input file cannot be read, or lacks a column every row needs."""


class InputChanged(InputError):
    """An input changed while the run read it."""


class PublishError(PipelineError):
    """The output directory cannot be published."""


class Held(PipelineError):
    """A safety guard held the run: nothing was published."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class Stopped(BaseException):
    """The run was told to stop (SIGTERM, or SIGHUP: its terminal or session gone): it
    ends as a failed run does, publishing nothing. Not an ``Exception``, so that no
    handler for those takes it for one."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
