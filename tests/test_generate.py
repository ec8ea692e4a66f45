"""The benchmark's generator: seeded files, written part after part beyond a size."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from benchmarks.generate import generate_tables, write_generated, write_table


def _read(path: Path) -> pa.Table:
    names = pacsv.read_csv(path).column_names
    options = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    return pacsv.read_csv(path, convert_options=options)


def test_a_file_of_one_part_is_the_tables_written(tmp_path: Path) -> None:
    write_generated(2_000, seed=5, out=tmp_path / "parts", bad_fraction=0.01, part_lines=2_000)
    claims, register = generate_tables(2_000, seed=5, bad_fraction=0.01)
    write_table(claims, tmp_path / "claims.csv")
    write_table(register, tmp_path / "authorizations.csv")
    for name in ("claims.csv", "authorizations.csv"):
        assert (tmp_path / "parts" / name).read_bytes() == (tmp_path / name).read_bytes()


def test_parts_are_the_same_bytes_for_the_same_seed(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write_generated(2_000, seed=5, out=tmp_path / name, bad_fraction=0.01, part_lines=600)
    for name in ("claims.csv", "authorizations.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_parts_share_no_claim_member_or_authorization(tmp_path: Path) -> None:
    write_generated(2_000, seed=5, out=tmp_path, part_lines=600)
    claims = _read(tmp_path / "claims.csv")
    register = _read(tmp_path / "authorizations.csv")
    assert claims.num_rows == 2_000
    # Four parts (600, 600, 600, 200 lines): each numbers its claims, members and
    # authorizations after the last part's, so no id is used by two parts.
    part = pa.array([i // 600 for i in range(2_000)])
    by_claim = pa.table({"claim_id": claims["claim_id"], "part": part})
    parts_per_claim = by_claim.group_by("claim_id").aggregate([("part", "count_distinct")])
    assert pc.max(parts_per_claim["part_count_distinct"]).as_py() == 1
    by_member = pa.table({"member_id": claims["member_id"], "part": part})
    parts_per_member = by_member.group_by("member_id").aggregate([("part", "count_distinct")])
    assert pc.max(parts_per_member["part_count_distinct"]).as_py() == 1
    first_part = set(claims["member_id"][:600].to_pylist())
    later = set(claims["member_id"][600:].to_pylist())
    assert not first_part & later
    register_members = set(register["member_id"].to_pylist())
    assert register_members & first_part and register_members & later
    numbers = register.group_by(["authorization_id"]).aggregate([("member_id", "count_distinct")])
    assert pc.max(numbers["member_id_count_distinct"]).as_py() == 1
