"""``python -m pipeline`` is the ``adjudicate`` command."""

from pipeline.cli import main

main()
