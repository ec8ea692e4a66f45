"""The code sets that claim values are checked against, shipped with the package."""

from __future__ import annotations

import csv
from functools import cache
from importlib.resources import files


@cache
def code_set(name: str, column: str) -> frozenset[str]:
    """The codes in ``codesets/<name>.csv``, column ``column``."""
    text = files(__package__).joinpath(f"{name}.csv").read_text(encoding="utf-8")
    return frozenset(row[column] for row in csv.DictReader(text.splitlines()))


def place_of_service_codes() -> frozenset[str]:
    """CMS Place of Service codes, two digits."""
    return code_set("place_of_service", "place_of_service_code")


def bill_type_codes() -> frozenset[str]:
    """UB-04 type of bill codes, three characters."""
    return code_set("bill_type", "bill_type_code")


def revenue_center_codes() -> frozenset[str]:
    """UB-04 revenue codes, four digits."""
    return code_set("revenue_center", "revenue_center_code")
