"""Waiting, in a test, for what another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable


def soon(condition: Callable[[], object], seconds: float = 10, every: float = 0.01) -> bool:
    """Whether ``condition`` holds within ``seconds``, asked every ``every`` seconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
