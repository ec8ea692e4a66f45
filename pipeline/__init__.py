"""Adjudication of advanced-imaging claim lines against prior authorizations."""

import os
import sys

if sys.platform.startswith("linux"):  # where pyarrow's wheels are built with jemalloc
    # Arrow's memory from jemalloc for Arrow's own work too, named before pyarrow is
    # first loaded (a worker inherits it): setting pyarrow's pool (pipeline.memory)
    # reaches only what pyarrow is handed, while Arrow's group-bys and readers took
    # mimalloc, which held on to what they freed in huge pages (a worker at 10M lines
    # held 210-230 MB at its first decide task, 130-170 MB with this). The
    # environment's own choice stands.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.6.0"
"""The program's version, written in every manifest: read from here, not from what an
install recorded, so that code updated in place names its own version
(``pyproject.toml`` reads its version from here too)."""
