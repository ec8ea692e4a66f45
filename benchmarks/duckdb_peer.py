"""The SQL job a payer would write instead: the core rules in DuckDB, as the benchmark's peer.

    python benchmarks/duckdb_peer.py --claims C.csv --authorizations A.csv --as-of 2026-06-30 \
        --out OUT.parquet [--memory-limit 2GiB]

Core rules only (no validation, no units, no reported-number logic, no replacement or
void handling, no never-deny-on-bad-data): the code table in force on the date of service,
the claim-level settings from the rules file's exemptions, the plan exception, the
register's state as of the run, and a member + code-or-family + dates + status match
where the earliest authorization wins. CSV in (every column as text), Parquet out. A
development-only dependency: the product never imports it.

``--memory-limit``: DuckDB's ``memory_limit`` setting; without it, DuckDB's own (80% of
the machine's memory, which the peer's 10M run uses: some 17 GiB here). The job a payer
would write takes the default; a limit such as ours (2 GiB) shows what the peer's time
costs in memory.
"""

from __future__ import annotations

import argparse
import shutil
import tomllib
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "pipeline" / "rules" / "default.toml"
CODE_TABLE = REPO / "pipeline" / "rules" / "advanced_imaging_codes.csv"


def _in(values: list[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def exemption_sql() -> tuple[str, str]:
    """The rules file's exemptions as one CASE over a line's claim, and the claim's flags
    it reads: one ``bool_or`` over the claim's lines for each condition (the setting is
    the claim's, whichever line shows it)."""
    rules = tomllib.loads(RULES.read_text())
    line_facts = {
        "place_of_service": "place_of_service_code",
        "bill_type": "bill_class",
        "revenue_code": "revenue_center_code",
    }
    kinds = {"place_of_service": "professional"}
    flags: dict[str, str] = {}
    branches = []
    for exemption in rules["exemptions"]:
        if exemption.get("switch") and not rules["switches"][exemption["switch"]]:
            continue
        ways = []
        for way in exemption["when"]:
            parts = []
            for condition, values in way.items():
                test = f"{line_facts[condition]} IN {_in(values)}"
                flag = flags.setdefault(test, f"shows_{len(flags)}")
                kind = kinds.get(condition, "institutional")
                parts.append(f"(l.claim_type = '{kind}' AND c.{flag})")
            ways.append("(" + " AND ".join(parts) + ")")
        branches.append(f"WHEN {' OR '.join(ways)} THEN '{exemption['reason']}'")
    shows = ",\n        ".join(f"bool_or(coalesce({t}, false)) AS {f}" for t, f in flags.items())
    return "CASE " + " ".join(branches) + " END", shows


def peer_sql(claims: str, authorizations: str, as_of: str, out: str) -> str:
    """The whole job as one statement."""
    excepted = tomllib.loads(RULES.read_text())["switches"]["excepted_plan_types"]
    setting, shows = exemption_sql()
    return f"""
COPY (
WITH
lines AS (
    SELECT *,
        coalesce(try_strptime(claim_line_start_date, '%Y-%m-%d'),
                 try_strptime(claim_start_date, '%Y-%m-%d'))::DATE AS dos,
        upper(trim(hcpcs_code)) AS code
    FROM read_csv('{claims}', all_varchar = true, header = true)
),
claims AS (
    SELECT claim_id,
        {shows}
    FROM (
        SELECT claim_id, place_of_service_code, revenue_center_code,
            substr(regexp_replace(bill_type_code, '^0(\\d{{3}})$', '\\1'), 1, 2) AS bill_class
        FROM lines
    ) GROUP BY claim_id
),
codes AS (
    SELECT hcpcs_code, modality, body_region, code_family,
           behavioral_health_only = 'true' AS bh_only,
           try_strptime(effective_from, '%Y-%m-%d')::DATE AS eff_from,
           try_strptime(effective_to, '%Y-%m-%d')::DATE AS eff_to
    FROM read_csv('{CODE_TABLE}', all_varchar = true, header = true)
),
scoped AS (
    SELECT l.*, k.modality, k.body_region, k.code_family,
        k.hcpcs_code IS NOT NULL
          AND (NOT k.bh_only OR regexp_matches(coalesce(l.diagnosis_code_1, '') || ' ' ||
               coalesce(l.diagnosis_code_2, ''), '(^| )F(0[1-9]|[1-9][0-9])')) AS in_program,
        {setting} AS setting
    FROM lines l
    LEFT JOIN codes k ON k.hcpcs_code = l.code
        AND (k.eff_from IS NULL OR k.eff_from <= l.dos)
        AND (k.eff_to IS NULL OR l.dos <= k.eff_to)
    LEFT JOIN claims c ON c.claim_id = l.claim_id
),
register AS (
    SELECT a.*, k.code_family AS auth_family
    FROM (
        SELECT authorization_id, member_id, upper(hcpcs_code) AS hcpcs_code,
               upper(status) AS status,
               valid_from::DATE AS valid_from, valid_to::DATE AS valid_to, provider_npi,
               row_number() OVER (PARTITION BY authorization_id, upper(hcpcs_code)
                                  ORDER BY recorded_at::TIMESTAMP DESC) AS version
        FROM read_csv('{authorizations}', all_varchar = true, header = true)
        WHERE replace(replace(recorded_at, 'Z', ''), 'T', ' ')::TIMESTAMP
              <= '{as_of} 23:59:59'::TIMESTAMP
    ) a LEFT JOIN (SELECT DISTINCT hcpcs_code, code_family FROM codes) k USING (hcpcs_code)
    WHERE version = 1 AND status <> 'CANCELLED'
),
needing AS (
    SELECT * FROM scoped
    WHERE in_program AND setting IS NULL AND upper(plan_type) NOT IN {_in(excepted)}
),
matched AS (
    SELECT n.claim_id, n.claim_line_number,
        arg_min(r.authorization_id, (r.status <> 'APPROVED', r.hcpcs_code <> n.code,
                                     r.valid_from, r.authorization_id)) AS authorization_id,
        bool_or(r.status = 'APPROVED') AS approved,
        bool_or(r.status = 'PENDING') AS pending,
        bool_or(r.status = 'DENIED') AS denied
    FROM needing n
    JOIN register r ON r.member_id = n.member_id
        AND (r.hcpcs_code = n.code OR r.auth_family = n.code_family)
        AND n.dos BETWEEN r.valid_from AND r.valid_to
        AND (r.provider_npi IS NULL
             OR r.provider_npi IN (n.rendering_npi, n.facility_npi, n.billing_npi))
    GROUP BY n.claim_id, n.claim_line_number
)
SELECT s.* EXCLUDE (dos, code, setting, in_program),
    CASE WHEN NOT s.in_program THEN 'NOT_APPLICABLE'
         WHEN s.setting IS NOT NULL OR upper(s.plan_type) IN {_in(excepted)} THEN 'EXEMPT'
         WHEN m.approved THEN 'AUTHORIZED'
         WHEN m.pending THEN 'PEND'
         ELSE 'DENY' END AS decision,
    CASE WHEN NOT s.in_program THEN NULL
         WHEN s.setting IS NOT NULL THEN s.setting
         WHEN upper(s.plan_type) IN {_in(excepted)} THEN 'PLAN_EXCEPTION'
         WHEN m.approved THEN 'AUTHORIZATION_MATCHED'
         WHEN m.pending THEN 'AUTHORIZATION_PENDING'
         WHEN m.denied THEN 'AUTHORIZATION_DENIED'
         ELSE 'NO_AUTHORIZATION' END AS reason,
    m.authorization_id AS matched_authorization_id
FROM scoped s
LEFT JOIN matched m USING (claim_id, claim_line_number)
ORDER BY s.claim_id, s.claim_line_number::INTEGER
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
"""


def run_peer(
    claims: str,
    authorizations: str,
    as_of: str,
    out: str,
    *,
    threads: int = 2,
    memory_limit: str | None = None,
) -> None:
    """Run the peer job once (``memory_limit``: DuckDB's setting, or its default). What
    DuckDB spills, held to a memory limit, goes beside ``out`` (its own default is
    ``.tmp`` in the working directory) and is removed after."""
    spill = Path(out).absolute().parent / f".{Path(out).name}.duckdb-spill"
    connection = duckdb.connect()
    try:
        connection.execute(f"SET threads = {threads}")
        connection.execute("SET temp_directory = ?", [str(spill)])
        if memory_limit is not None:
            connection.execute("SET memory_limit = ?", [memory_limit])
        connection.execute(peer_sql(claims, authorizations, as_of, out))
    finally:
        connection.close()
        shutil.rmtree(spill, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", required=True)
    parser.add_argument("--authorizations", required=True)
    parser.add_argument("--as-of", required=True, help="a date, YYYY-MM-DD")
    parser.add_argument("--out", required=True)
    parser.add_argument("--memory-limit", help="DuckDB's memory_limit, e.g. 2GiB")
    args = parser.parse_args()
    run_peer(args.claims, args.authorizations, args.as_of, args.out, memory_limit=args.memory_limit)


if __name__ == "__main__":
    main()
