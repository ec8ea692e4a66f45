"""The project's copies of the shared reference data are the same bytes as the originals."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
COPIES = {
    "place_of_service.csv": ROOT / "schemas" / "codesets" / "place_of_service.csv",
    "bill_type.csv": ROOT / "schemas" / "codesets" / "bill_type.csv",
    "revenue_center.csv": ROOT / "schemas" / "codesets" / "revenue_center.csv",
    "LICENSE-tuva-terminology.txt": ROOT / "schemas" / "codesets" / "LICENSE-tuva-terminology.txt",
    "advanced_imaging_codes.csv": ROOT / "pipeline" / "rules" / "advanced_imaging_codes.csv",
}


@pytest.mark.parametrize("name", sorted(COPIES))
def test_copy_is_in_step_with_the_shared_reference(name: str) -> None:
    original = SHARED / name
    if not original.is_file():
        pytest.skip("the shared reference folder is not beside this checkout")
    assert COPIES[name].read_bytes() == original.read_bytes()
