"""Seeded synthetic claim lines and an authorization register, in the contract's format.

    python benchmarks/generate.py --lines N --seed S --out DIR [--bad-fraction F]
                                  [--format csv|parquet] [--register-ratio R]

writes ``DIR/claims.csv`` and ``DIR/authorizations.csv`` (or ``.parquet``). Every value is
text; an empty value is null. Everything is drawn from one ``numpy.random.default_rng(seed)``
with whole-array operations (no loop over rows), so ten million lines take seconds, and the
same arguments give byte-identical files.

The mix (CONTRACT §2 and §3): about 30% of lines carry an advanced-imaging code from
``pipeline/rules/advanced_imaging_codes.csv``, the rest common CPT codes; about 75% of claims
are professional (place of service, rendering NPI), 25% institutional (type of bill, revenue
codes, facility NPI, some ``0001`` total lines); claims have 1 to 4 lines sharing member and
plan; about N/8 members; services from 2025-01-01 to 2026-05-31; NPIs from a pool of 2,000
valid ones. The register has about N/20 rows, mostly for members' imaging lines, with some
code substitutions, status histories (a later ``recorded_at``), several codes under one
authorization, and windows that miss the service date.

With ``--bad-fraction F`` that fraction of claim rows get exactly one defect each: place of
service ``2``, date ``2025-02-30``, a wrong NPI check digit, hcpcs ``70553.0``, a negative
charge, or an empty ``member_id``. Defects are drawn last, so a bad file is the clean file of
the same seed with defects applied, and its register is the same.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
IMAGING_CODES_CSV = REPO / "pipeline" / "rules" / "advanced_imaging_codes.csv"

FIRST_DAY = np.datetime64("2025-01-01", "D")
LAST_DAY = np.datetime64("2026-05-31", "D")
SPAN_DAYS = int((LAST_DAY - FIRST_DAY).astype(int)) + 1

IMAGING_SHARE = 0.30
INSTITUTIONAL_SHARE = 0.25
LINES_PER_CLAIM = (1, 2, 3, 4)
LINES_PER_CLAIM_P = (0.45, 0.30, 0.15, 0.10)
LINES_PER_MEMBER = 8
REGISTER_RATIO = 1 / 20
NPI_POOL_SIZE = 2000
FACILITY_POOL_SIZE = 300
"""The first NPIs of the pool are facilities and groups; the rest are practitioners."""

PLAN_TYPES = ("HMO", "PPO", "POS", "EPO", "MEDICARE", "MEDICAID")
PLAN_TYPES_P = (0.30, 0.25, 0.10, 0.10, 0.15, 0.10)

PLACES_OF_SERVICE = ("11", "22", "19", "23", "21", "24", "20")
PLACES_OF_SERVICE_P = (0.45, 0.15, 0.10, 0.10, 0.08, 0.05, 0.07)
FACILITY_PLACES = ("22", "19", "23", "21", "24")

BILL_TYPES = ("131", "111", "831", "121", "0131")
BILL_TYPES_P = (0.58, 0.20, 0.12, 0.08, 0.02)
INPATIENT_BILL_TYPES = ("111", "121")

OTHER_CODES: tuple[tuple[str, float, str, float], ...] = (
    # code, weight, institutional revenue code, typical charge in dollars
    ("99213", 0.20, "0510", 140.0),
    ("99214", 0.12, "0510", 210.0),
    ("99203", 0.04, "0510", 180.0),
    ("80053", 0.10, "0300", 45.0),
    ("85025", 0.07, "0300", 30.0),
    ("80061", 0.05, "0300", 55.0),
    ("36415", 0.10, "0300", 12.0),
    ("71046", 0.08, "0320", 95.0),
    ("73030", 0.03, "0320", 80.0),
    ("72100", 0.03, "0320", 85.0),
    ("93000", 0.06, "0730", 60.0),
    ("97110", 0.04, "0420", 75.0),
    ("99283", 0.03, "0450", 420.0),
    ("99284", 0.03, "0450", 680.0),
    ("99285", 0.01, "0450", 1100.0),
    ("J1885", 0.01, "0636", 25.0),
)
ER_VISIT_CODES = ("99283", "99284", "99285")
ER_VISIT_REVENUE = ("0450", "0456", "0981")
ER_VISIT_REVENUE_P = (0.80, 0.10, 0.10)
TOTAL_REVENUE_CODE = "0001"

IMAGING_REVENUE = {
    "CT": "0350",
    "CTA": "0350",
    "CT_COLONOGRAPHY": "0350",
    "MRI": "0610",
    "MRA": "0610",
    "BREAST_MRI": "0610",
    "PET": "0404",
    "SPECT": "0340",
    "DISCOGRAPHY": "0320",
}
IMAGING_CHARGE = {"CT": 650.0, "CTA": 900.0, "MRI": 1400.0, "MRA": 1300.0, "PET": 3200.0}
COMMON_IMAGING = ("70553", "72148", "74177", "71250", "70450", "73721", "72141", "70551")
"""Codes ordered far more often than the rest of the table."""

DIAGNOSES = (
    "M5416", "M545", "M5450", "R51", "R519", "G439", "S060X0A", "C3490", "I639", "R0789",
    "J189", "N200", "K8020", "Z1231", "M2551", "M25561", "R1030", "I10", "E119", "Z0000",
    "R42", "G35", "M54.16", "R10.9",
)  # fmt: skip
F_CHAPTER = ("F329", "F419", "F200", "F311", "F840", "F32.9", "F03A0")
F_CHAPTER_SHARE = 0.08

STATUSES = ("APPROVED", "PENDING", "DENIED", "CANCELLED")
STATUSES_P = (0.86, 0.06, 0.05, 0.03)
NEEDING_SHARE = 0.8
"""Of the authorizations made for claim lines, the share for lines that roughly need one."""
WINDOW_DAYS = (30, 60, 90, 180)
WINDOW_DAYS_P = (0.20, 0.40, 0.30, 0.10)

DEFECTS = (
    "pos_one_digit",
    "impossible_date",
    "npi_check_digit",
    "hcpcs_decimal",
    "negative_charge",
    "empty_member_id",
)

CLAIM_COLUMNS = (
    "claim_id",
    "claim_line_number",
    "claim_type",
    "member_id",
    "plan_type",
    "claim_frequency_code",
    "original_claim_id",
    "claim_start_date",
    "claim_end_date",
    "claim_line_start_date",
    "claim_line_end_date",
    "place_of_service_code",
    "bill_type_code",
    "revenue_center_code",
    "hcpcs_code",
    "hcpcs_modifier_1",
    "hcpcs_modifier_2",
    "service_unit_quantity",
    "rendering_npi",
    "billing_npi",
    "facility_npi",
    "ordering_npi",
    "diagnosis_code_1",
    "diagnosis_code_2",
    "charge_amount",
    "prior_authorization_number",
)
REGISTER_COLUMNS = (
    "authorization_id",
    "member_id",
    "hcpcs_code",
    "status",
    "valid_from",
    "valid_to",
    "units_approved",
    "provider_npi",
    "recorded_at",
)


# --- small vectorised helpers --------------------------------------------------------------


@dataclass(frozen=True)
class Offsets:
    """Where a part's numbering starts, so that parts written one after another share no
    claim, member or authorization."""

    claims: int = 0
    members: int = 0
    authorizations: int = 0


def _choice(rng: np.random.Generator, p: Sequence[float] | np.ndarray, size: int) -> np.ndarray:
    """Indices into a vocabulary drawn with probabilities ``p`` (normalised)."""
    weights = np.asarray(p, dtype=float)
    return rng.choice(len(weights), size=size, p=weights / weights.sum())


def _take(vocabulary: Sequence[str] | pa.Array, indices: np.ndarray, null: int = -1) -> pa.Array:
    """``vocabulary[indices]`` as Arrow text; a negative index (or ``null``) is null."""
    mask = (indices < 0) | (indices == null)
    if not isinstance(vocabulary, pa.Array):
        vocabulary = pa.array(vocabulary, pa.string())
    return vocabulary.take(pa.array(indices, mask=mask if mask.any() else None))


def _text_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` followed by ``numbers`` zero-padded to ``width`` digits."""
    digits = pc.utf8_lpad(pa.array(numbers, pa.int64()).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _dates(days: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    """Day offsets from 2025-01-01 as ``YYYY-MM-DD``, null where not ``present``."""
    first = int(days.min()) if len(days) else 0
    span = (int(days.max()) - first + 1) if len(days) else 1
    calendar = FIRST_DAY + np.arange(first, first + span).astype("timedelta64[D]")
    indices = days - first
    if present is not None:
        indices = np.where(present, indices, -1)
    return _take(pa.array(calendar).cast(pa.string()), indices)


def _money(cents: np.ndarray) -> pa.Array:
    """Whole cents as text with two decimals: ``1234`` is ``12.34``."""
    dollars = pa.array(cents // 100, pa.int64()).cast(pa.string())
    rest = pc.utf8_lpad(pa.array(cents % 100, pa.int64()).cast(pa.string()), 2, "0")
    return pc.binary_join_element_wise(dollars, rest, ".")


def _where(mask: np.ndarray, value: pa.Array | str | None, other: pa.Array) -> pa.Array:
    """``value`` where ``mask``, else ``other`` (text)."""
    if not mask.any():
        return other
    chosen = value if isinstance(value, pa.Array) else pa.scalar(value, pa.string())
    return pc.if_else(pa.array(mask), chosen, other)


def npi_check_digits(bodies: np.ndarray) -> np.ndarray:
    """The NPI check digit for nine-digit ``bodies``: Luhn over ``80840`` and the body."""
    digits = (bodies[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    doubled = digits[:, 0::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = 24 + doubled.sum(axis=1) + digits[:, 1::2].sum(axis=1)
    return np.asarray((10 - total % 10) % 10)


def _npi_pool(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` distinct valid NPIs, and each with a wrong check digit, as integers."""
    bodies = np.unique(rng.integers(100_000_000, 299_999_999, size=size * 2))
    bodies = rng.permutation(bodies)[:size]
    check = npi_check_digits(bodies)
    wrong = (check + rng.integers(1, 10, size=size)) % 10
    return bodies * 10 + check, bodies * 10 + wrong


def _imaging_table() -> tuple[list[str], list[str], list[str]]:
    """Codes of the imaging table in force at some point of 2025-2026: code, modality, family."""
    codes: list[str] = []
    modalities: list[str] = []
    families: list[str] = []
    with IMAGING_CODES_CSV.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["effective_to"] and row["effective_to"] < "2025-01-01":
                continue
            codes.append(row["hcpcs_code"])
            modalities.append(row["modality"])
            families.append(row["code_family"])
    return codes, modalities, families


def _same_family(
    rng: np.random.Generator, codes: np.ndarray, families: Sequence[str]
) -> np.ndarray:
    """For each imaging code index, another code of its family (itself if it has none)."""
    family_ids, family_of = np.unique(np.asarray(families), return_inverse=True)
    order = np.argsort(family_of, kind="stable")
    sizes = np.bincount(family_of, minlength=len(family_ids))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order)) - starts[family_of[order]]
    family = family_of[codes]
    size = sizes[family]
    step = rng.integers(1, np.maximum(size, 2))
    other = (position[codes] + step) % size
    return np.where(size > 1, order[starts[family] + other], codes)


# --- the generator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Codes:
    """The code vocabulary: imaging codes first, then the other codes, then the blank code."""

    vocabulary: list[str]
    imaging: int
    weights: np.ndarray
    families: list[str]
    revenue: np.ndarray
    charge: np.ndarray

    @property
    def blank(self) -> int:
        """The index of the empty code of institutional total lines."""
        return len(self.vocabulary) - 1


def _code_vocabulary() -> _Codes:
    codes, modalities, families = _imaging_table()
    return _Codes(
        vocabulary=codes + [c[0] for c in OTHER_CODES] + [""],
        imaging=len(codes),
        weights=np.array([8.0 if c in COMMON_IMAGING else 1.0 for c in codes]),
        families=families,
        revenue=np.array(
            [IMAGING_REVENUE[m] for m in modalities]
            + [c[2] for c in OTHER_CODES]
            + [TOTAL_REVENUE_CODE]
        ),
        charge=np.array(
            [IMAGING_CHARGE.get(m, 1500.0) for m in modalities]
            + [c[3] for c in OTHER_CODES]
            + [2500.0]
        ),
    )


@dataclass(frozen=True)
class _Claims:
    """Claim-level values (one per claim) and each line's claim."""

    sizes: np.ndarray
    claim_of: np.ndarray
    line_number: np.ndarray
    member_ids: np.ndarray
    member_plan: np.ndarray
    member: np.ndarray
    institutional: np.ndarray
    bill_type: np.ndarray
    stay: np.ndarray
    day: np.ndarray
    pos: np.ndarray
    rendering: np.ndarray
    facility: np.ndarray
    billing: np.ndarray
    frequency: np.ndarray
    original: np.ndarray
    dx1: np.ndarray
    dx2: np.ndarray
    plan_lower: np.ndarray

    @property
    def count(self) -> int:
        """How many claims."""
        return len(self.sizes)


def _claims(rng: np.random.Generator, lines: int, offsets: Offsets) -> _Claims:
    # 1 to 4 lines a claim, the last claim cut so that there are exactly `lines`.
    sizes = np.asarray(LINES_PER_CLAIM)[_choice(rng, LINES_PER_CLAIM_P, lines)]
    ends = np.cumsum(sizes)
    n = int(np.searchsorted(ends, lines)) + 1
    sizes = sizes[:n].copy()
    sizes[-1] -= int(ends[n - 1]) - lines
    claim_of = np.repeat(np.arange(n), sizes)
    line_number = np.arange(lines) - (np.cumsum(sizes) - sizes)[claim_of] + 1

    n_members = max(1, lines // LINES_PER_MEMBER)
    member_ids = rng.permutation(n_members) + 1_000_000 + offsets.members
    member_plan = _choice(rng, PLAN_TYPES_P, n_members)

    member = rng.integers(0, n_members, size=n)
    institutional = rng.random(n) < INSTITUTIONAL_SHARE
    bill_type = np.where(institutional, _choice(rng, BILL_TYPES_P, n), -1)
    inpatient = np.isin(bill_type, [BILL_TYPES.index(b) for b in INPATIENT_BILL_TYPES])
    stay = np.where(inpatient, rng.integers(1, 6, size=n), 1)
    day = rng.integers(0, SPAN_DAYS - stay + 1)
    pos = np.where(institutional, -1, _choice(rng, PLACES_OF_SERVICE_P, n))
    rendering = rng.integers(FACILITY_POOL_SIZE, NPI_POOL_SIZE, size=n)
    facility = rng.integers(0, FACILITY_POOL_SIZE, size=n)
    billing = np.where(institutional, facility, rng.integers(0, FACILITY_POOL_SIZE, size=n))
    billing = np.where(rng.random(n) < np.where(institutional, 0.8, 0.9), billing, -1)
    f_chapter = rng.random(n) < F_CHAPTER_SHARE
    dx1 = np.where(
        f_chapter,
        len(DIAGNOSES) + rng.integers(0, len(F_CHAPTER), size=n),
        rng.integers(0, len(DIAGNOSES), size=n),
    )
    dx2 = rng.integers(0, len(DIAGNOSES) + len(F_CHAPTER), size=n)
    return _Claims(
        sizes=sizes,
        claim_of=claim_of,
        line_number=line_number,
        member_ids=member_ids,
        member_plan=member_plan,
        member=member,
        institutional=institutional,
        bill_type=bill_type,
        stay=stay,
        day=day,
        pos=pos,
        rendering=rendering,
        facility=facility,
        billing=billing,
        frequency=_choice(rng, (0.70, 0.27, 0.02, 0.01), n),  # "1", empty, "7", "8"
        original=rng.integers(0, n, size=n),
        dx1=dx1,
        dx2=np.where(rng.random(n) < 0.5, dx2, -1),
        plan_lower=rng.random(n) < 0.01,  # plan type is case-insensitive
    )


@dataclass(frozen=True)
class _Lines:
    """Line-level values, as indices into vocabularies and pools (-1 is empty)."""

    institutional: np.ndarray
    imaging: np.ndarray
    code: np.ndarray
    revenue: np.ndarray
    day: np.ndarray
    day_present: np.ndarray
    end_present: np.ndarray
    modifier_1: np.ndarray
    modifier_2: np.ndarray
    units: np.ndarray
    rendering: np.ndarray
    ordering: np.ndarray
    cents: np.ndarray


def _lines(rng: np.random.Generator, claims: _Claims, codes: _Codes) -> _Lines:
    n = len(claims.claim_of)
    of = claims.claim_of
    inst = claims.institutional[of]
    imaging = rng.random(n) < IMAGING_SHARE
    imaging_code = _choice(rng, codes.weights, n)
    other_code = codes.imaging + _choice(rng, [c[1] for c in OTHER_CODES], n)
    code = np.where(imaging, imaging_code, other_code)
    last_line = claims.line_number == claims.sizes[of]
    total_line = inst & last_line & (claims.sizes[of] > 1) & (rng.random(n) < 0.3)
    code = np.where(total_line, codes.blank, code)
    imaging &= ~total_line

    er_visit = np.isin(code, [codes.vocabulary.index(c) for c in ER_VISIT_CODES])
    er_revenue = np.asarray(ER_VISIT_REVENUE)[_choice(rng, ER_VISIT_REVENUE_P, n)]
    day = claims.day[of] + (rng.random(n) * claims.stay[of]).astype(np.int64)
    day_present = ~inst | (rng.random(n) >= 0.05)
    end_present = day_present & (rng.random(n) < 0.85)

    # Modifiers: 26 for a radiologist's read in a facility, TC for the technical part
    # billed alone, 25 on some office visits, RT/LT on a few imaging lines.
    in_facility = np.isin(claims.pos, [PLACES_OF_SERVICE.index(p) for p in FACILITY_PLACES])[of]
    u = rng.random(n)
    professional_imaging = imaging & ~inst
    modifier_1 = np.where(professional_imaging & in_facility & (u < 0.6), 0, -1)
    modifier_1 = np.where(professional_imaging & ~in_facility & (u < 0.1), 1, modifier_1)
    office_visit = np.isin(code, [codes.imaging, codes.imaging + 1])  # 99213, 99214
    modifier_1 = np.where(~imaging & ~inst & office_visit & (u < 0.05), 2, modifier_1)
    side = 3 + rng.integers(0, 2, size=n)
    modifier_2 = np.where(imaging & (rng.random(n) < 0.03), side, -1)

    units = np.where(total_line, 3, _choice(rng, (0.88, 0.10, 0.02), n))  # "1", "", "2", "0"
    rendering = np.where(~inst | (rng.random(n) < 0.15), claims.rendering[of], -1)
    ordering = rng.integers(FACILITY_POOL_SIZE, NPI_POOL_SIZE, size=n)
    ordering = np.where(imaging & (rng.random(n) < 0.7), ordering, -1)
    charge = codes.charge[code] * rng.lognormal(0.0, 0.35, size=n)
    cents = np.round(charge * 100).astype(np.int64)
    return _Lines(
        institutional=inst,
        imaging=imaging,
        code=code,
        revenue=np.where(er_visit, er_revenue, codes.revenue[code]),
        day=day,
        day_present=day_present,
        end_present=end_present,
        modifier_1=modifier_1,
        modifier_2=modifier_2,
        units=units,
        rendering=rendering,
        ordering=ordering,
        cents=np.where(modifier_1 == 0, cents * 3 // 10, cents),
    )


@dataclass(frozen=True)
class _Authorizations:
    """One row per authorization (its first version and first code)."""

    lines: np.ndarray
    """The claim lines the first authorizations were requested for, in order."""
    number: np.ndarray
    member: np.ndarray
    code: np.ndarray
    status: np.ndarray
    valid_from: np.ndarray
    valid_to: np.ndarray
    units: np.ndarray
    provider: np.ndarray
    recorded: np.ndarray


def _roughly_needs_authorization(claims: _Claims) -> np.ndarray:
    """Per claim: not a PPO plan, and not an inpatient, emergency or surgery setting."""
    exempt_places = [PLACES_OF_SERVICE.index(p) for p in ("21", "23", "24")]
    exempt_bills = [BILL_TYPES.index(b) for b in ("111", "121", "831")]
    plan = claims.member_plan[claims.member]
    exempt = np.isin(claims.pos, exempt_places) | np.isin(claims.bill_type, exempt_bills)
    return np.asarray((plan != PLAN_TYPES.index("PPO")) & ~exempt)


def _authorizations(
    rng: np.random.Generator,
    count: int,
    claims: _Claims,
    lines: _Lines,
    codes: _Codes,
    *,
    offsets: Offsets,
) -> _Authorizations:
    # Providers mostly ask for authorization where it is needed: outside PPO plans and the
    # exempt settings (inpatient, emergency, ambulatory surgery). Roughly; this is not the policy.
    needy = _roughly_needs_authorization(claims)[claims.claim_of] & lines.imaging
    needing = np.flatnonzero(needy)
    others = np.flatnonzero(lines.imaging & ~needy)
    from_lines = min(round(count * 0.95), len(needing) + len(others))
    from_needing = min(round(from_lines * NEEDING_SHARE), len(needing))
    from_others = min(from_lines - from_needing, len(others))
    from_needing = from_lines - from_others
    orphans = count - from_lines  # for any member, code and day
    picked = np.sort(
        np.concatenate(
            [
                rng.choice(needing, size=from_needing, replace=False),
                rng.choice(others, size=from_others, replace=False),
            ]
        )
    )
    claim = claims.claim_of[picked]

    member = np.concatenate(
        [claims.member[claim], rng.integers(0, len(claims.member_ids), orphans)]
    )
    code = np.concatenate([lines.code[picked], _choice(rng, codes.weights, orphans)])
    substituted = rng.random(count) < 0.05
    code = np.where(substituted, _same_family(rng, code, codes.families), code)
    service_day = np.concatenate([lines.day[picked], rng.integers(0, SPAN_DAYS, size=orphans)])
    window = np.asarray(WINDOW_DAYS)[_choice(rng, WINDOW_DAYS_P, count)]
    valid_from = service_day - rng.integers(0, 31, size=count)
    missed = rng.random(count) < 0.04  # a window that ends before the service
    missed_from = service_day - rng.integers(1, 30, size=count) - window + 1
    valid_from = np.where(missed, missed_from, valid_from)

    provider_kind = _choice(rng, (0.90, 0.08, 0.02), count)  # none, the line's, another
    line_npi = np.where(
        claims.institutional[claim], claims.facility[claim], claims.rendering[claim]
    )
    line_npi = np.concatenate([line_npi, rng.integers(0, NPI_POOL_SIZE, size=orphans)])
    other_npi = rng.integers(0, NPI_POOL_SIZE, size=count)
    provider = np.where(provider_kind == 1, line_npi, other_npi)
    recorded_day = valid_from - rng.integers(0, 8, size=count)
    recorded_second = rng.integers(6 * 3600, 20 * 3600, size=count)
    return _Authorizations(
        lines=picked,
        number=rng.permutation(count) + 100_000_000 + offsets.authorizations,
        member=member,
        code=code,
        status=_choice(rng, STATUSES_P, count),
        valid_from=valid_from,
        valid_to=valid_from + window - 1,
        units=1 + _choice(rng, (0.60, 0.25, 0.15), count),
        provider=np.where(provider_kind == 0, -1, provider),
        recorded=recorded_day * 86_400 + recorded_second,
    )


def _register(
    rng: np.random.Generator,
    base: _Authorizations,
    *,
    target: int,
    claims: _Claims,
    codes: _Codes,
    npis: np.ndarray,
) -> pa.Table:
    """The register: first versions, later versions, and further codes of an authorization."""
    count = len(base.number)
    # Later versions: a pending request decided, or an approval cancelled or extended.
    versioned = rng.choice(count, size=min(round(count * 0.10), count), replace=False)
    was_pending = base.status[versioned] == STATUSES.index("PENDING")
    decided = np.where(rng.random(len(versioned)) < 0.8, 0, 2)  # APPROVED, DENIED
    changed = np.where(rng.random(len(versioned)) < 0.4, 3, 0)  # CANCELLED, APPROVED
    v_status = np.where(was_pending, decided, changed)
    extended = ~was_pending & (changed == 0)
    v_valid_to = np.where(extended, base.valid_to[versioned] + 30, base.valid_to[versioned])
    v_recorded = base.recorded[versioned] + rng.integers(1, 15, size=len(versioned)) * 86_400

    # Further codes under one authorization, mostly of the same family.
    extra_count = min(max(0, target - count - len(versioned)), count)
    extra = rng.choice(count, size=extra_count, replace=False)
    e_code = _same_family(rng, base.code[extra], codes.families)
    e_code = np.where(e_code == base.code[extra], (base.code[extra] + 1) % codes.imaging, e_code)

    def rows(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values, values[versioned], values[extra]])

    code = np.concatenate([base.code, base.code[versioned], e_code])
    status = np.concatenate([base.status, v_status, base.status[extra]])
    valid_to = np.concatenate([base.valid_to, v_valid_to, base.valid_to[extra]])
    units = rows(base.units)
    recorded = np.concatenate([base.recorded, v_recorded, base.recorded[extra]])
    number = rows(base.number)
    order = np.lexsort((code, number, recorded))  # an append log: by recorded_at
    seconds = FIRST_DAY.astype("datetime64[s]") + recorded[order].astype("timedelta64[s]")
    return pa.table(
        {
            "authorization_id": _text_ids("PA", number[order], 9),
            "member_id": _text_ids("M", claims.member_ids[rows(base.member)[order]], 9),
            "hcpcs_code": _take(codes.vocabulary, code[order]),
            "status": _take(STATUSES, status[order]),
            "valid_from": _dates(rows(base.valid_from)[order]),
            "valid_to": _dates(valid_to[order]),
            "units_approved": pa.array(units[order], pa.int64()).cast(pa.string()),
            "provider_npi": _take_npi(npis, rows(base.provider)[order]),
            "recorded_at": pc.strftime(pa.array(seconds), format="%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def _reported_numbers(rng: np.random.Generator, base: _Authorizations, lines: _Lines) -> pa.Array:
    """Prior authorization numbers the providers reported: most real, a few unknown."""
    n = len(lines.code)
    reported = np.full(n, -1, dtype=np.int64)
    tells = rng.random(len(base.lines)) < 0.6
    reported[base.lines[tells]] = base.number[: len(base.lines)][tells]
    unknown = lines.imaging & (reported < 0) & (rng.random(n) < 0.005)
    reported = np.where(unknown, 900_000_000 + rng.integers(0, 99_999_999, size=n), reported)
    return _where(reported < 0, None, _text_ids("PA", np.maximum(reported, 0), 9))


def _claim_columns(
    claims: _Claims,
    lines: _Lines,
    codes: _Codes,
    npis: np.ndarray,
    reported: pa.Array,
    *,
    offsets: Offsets,
) -> dict[str, pa.Array]:
    of = claims.claim_of
    per_line = pa.array(of)
    claim_ids = _text_ids("C", np.arange(claims.count) + 10_000_000 + offsets.claims, 10)
    plan = _take(PLAN_TYPES, claims.member_plan[claims.member])
    plan = _where(claims.plan_lower, pc.utf8_lower(plan), plan)
    frequency = _take(("1", "", "7", "8"), claims.frequency, null=1)
    original = _where(claims.frequency < 2, None, claim_ids.take(pa.array(claims.original)))
    diagnoses = DIAGNOSES + F_CHAPTER
    modifiers = ("26", "TC", "25", "RT", "LT")
    return {
        "claim_id": claim_ids.take(per_line),
        "claim_line_number": _take(
            [str(i) for i in range(max(LINES_PER_CLAIM) + 1)], claims.line_number
        ),
        "claim_type": _take(("professional", "institutional"), lines.institutional.astype(int)),
        "member_id": _take(_text_ids("M", claims.member_ids, 9), claims.member[of]),
        "plan_type": plan.take(per_line),
        "claim_frequency_code": frequency.take(per_line),
        "original_claim_id": original.take(per_line),
        "claim_start_date": _dates(claims.day).take(per_line),
        "claim_end_date": _dates(claims.day + claims.stay - 1).take(per_line),
        "claim_line_start_date": _dates(lines.day, lines.day_present),
        "claim_line_end_date": _dates(lines.day, lines.end_present),
        "place_of_service_code": _take(PLACES_OF_SERVICE, claims.pos[of]),
        "bill_type_code": _take(BILL_TYPES, claims.bill_type[of]),
        "revenue_center_code": _where(
            ~lines.institutional, None, pa.array(lines.revenue, pa.string())
        ),
        "hcpcs_code": _take(codes.vocabulary, lines.code, null=codes.blank),
        "hcpcs_modifier_1": _take(modifiers, lines.modifier_1),
        "hcpcs_modifier_2": _take(modifiers, lines.modifier_2),
        "service_unit_quantity": _take(("1", "", "2", "0"), lines.units, null=1),
        "rendering_npi": _take_npi(npis, lines.rendering),
        "billing_npi": _take_npi(npis, claims.billing[of]),
        "facility_npi": _take_npi(npis, np.where(claims.institutional, claims.facility, -1)[of]),
        "ordering_npi": _take_npi(npis, lines.ordering),
        "diagnosis_code_1": _take(diagnoses, claims.dx1[of]),
        "diagnosis_code_2": _take(diagnoses, claims.dx2[of]),
        "charge_amount": _money(lines.cents),
        "prior_authorization_number": reported,
    }


def _add_defects(
    rng: np.random.Generator,
    columns: dict[str, pa.Array],
    bad_fraction: float,
    wrong_npis: np.ndarray,
) -> None:
    """Give ``bad_fraction`` of the rows one defect each, drawn from :data:`DEFECTS`."""
    n = len(columns["claim_id"])
    n_bad = round(bad_fraction * n)
    if not n_bad:
        return
    bad_rows = rng.choice(n, size=n_bad, replace=False)
    kind = rng.integers(0, len(DEFECTS), size=n_bad)
    masks = {name: np.zeros(n, dtype=bool) for name in DEFECTS}
    for number, name in enumerate(DEFECTS):
        masks[name][bad_rows[kind == number]] = True
    wrong = _take_npi(wrong_npis, rng.integers(0, len(wrong_npis), size=n))
    negative = pc.binary_join_element_wise("-", columns["charge_amount"], "")
    changes: tuple[tuple[str, str, pa.Array | str | None], ...] = (
        ("pos_one_digit", "place_of_service_code", "2"),
        ("impossible_date", "claim_line_start_date", "2025-02-30"),
        ("npi_check_digit", "rendering_npi", wrong),
        ("hcpcs_decimal", "hcpcs_code", "70553.0"),
        ("negative_charge", "charge_amount", negative),
        ("empty_member_id", "member_id", None),
    )
    for defect, column, value in changes:
        columns[column] = _where(masks[defect], value, columns[column])


def _check(lines: int, bad_fraction: float) -> None:
    if lines < 1:
        raise ValueError("lines must be at least 1")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError("bad_fraction must be between 0 and 1")


def generate_tables(
    lines: int,
    seed: int,
    bad_fraction: float = 0.0,
    *,
    register_ratio: float = REGISTER_RATIO,
) -> tuple[pa.Table, pa.Table]:
    """Claim lines and the register as Arrow tables of text (see the module's docstring)."""
    _check(lines, bad_fraction)
    claims, register, _ = _part(
        np.random.default_rng(seed), lines, bad_fraction, register_ratio, Offsets()
    )
    return claims, register


def _part(
    rng: np.random.Generator,
    lines: int,
    bad_fraction: float,
    register_ratio: float,
    offsets: Offsets,
) -> tuple[pa.Table, pa.Table, Offsets]:
    """One part's claim lines and register, and where the next part's numbering starts."""
    npis, wrong_npis = _npi_pool(rng, NPI_POOL_SIZE)
    codes = _code_vocabulary()
    claims = _claims(rng, lines, offsets)
    line_values = _lines(rng, claims, codes)
    target = max(1, round(lines * register_ratio))
    count = max(1, round(target / 1.15))
    base = _authorizations(rng, count, claims, line_values, codes, offsets=offsets)
    register = _register(rng, base, target=target, claims=claims, codes=codes, npis=npis)
    reported = _reported_numbers(rng, base, line_values)
    columns = _claim_columns(claims, line_values, codes, npis, reported, offsets=offsets)
    # Defects come last, so the rest matches the clean file of the same seed.
    _add_defects(rng, columns, bad_fraction, wrong_npis)
    following = Offsets(
        claims=offsets.claims + claims.count,
        members=offsets.members + len(claims.member_ids),
        authorizations=offsets.authorizations + count,
    )
    return pa.table({name: columns[name] for name in CLAIM_COLUMNS}), register, following


def _take_npi(pool: np.ndarray, indices: np.ndarray) -> pa.Array:
    """NPIs of ``pool`` at ``indices`` as text; a negative index is null."""
    text = pa.array(pool, pa.int64()).cast(pa.string())
    return text.take(pa.array(indices, mask=indices < 0))


def generate(
    lines: int,
    seed: int,
    bad_fraction: float = 0.0,
    *,
    register_ratio: float = REGISTER_RATIO,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim lines and the authorization register as data frames of text (null = empty)."""
    claims, register = generate_tables(lines, seed, bad_fraction, register_ratio=register_ratio)
    return claims.to_pandas(), register.to_pandas()


# --- writing ---------------------------------------------------------------------------------


PART_LINES = 10_000_000
"""Lines generated at a time: a file of more is written part after part, each with its own
members, claims and authorizations, so that memory does not grow with the file (a 10M-line
part takes about 5 GB). Files of up to this many lines are one part, as before."""


class _TableWriter:
    """CSV (unquoted; no generated value holds a comma or quote) or Parquet, by extension,
    written one table after another under one header."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pacsv.CSVWriter | pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        table = table.replace_schema_metadata(None)
        if self.writer is None:
            self.schema = table.schema
            if self.path.suffix == ".parquet":
                self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            else:
                options = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
                self.writer = pacsv.CSVWriter(self.path, table.schema, write_options=options)
        self.writer.write_table(table.cast(self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_table(table: pa.Table, path: Path) -> None:
    """One table to ``path`` (CSV or Parquet by extension)."""
    writer = _TableWriter(path)
    writer.write(table)
    writer.close()


def write_generated(
    lines: int,
    seed: int,
    out: Path,
    *,
    bad_fraction: float = 0.0,
    register_ratio: float = REGISTER_RATIO,
    file_format: str = "csv",
    part_lines: int = PART_LINES,
) -> None:
    """``out/claims.<format>`` and ``out/authorizations.<format>`` of ``lines`` lines.

    Up to ``part_lines`` lines this is :func:`generate_tables` written out; beyond, parts
    of ``part_lines`` (seeded by ``[seed, part]``) follow one another in the same files.
    """
    _check(lines, bad_fraction)
    out.mkdir(parents=True, exist_ok=True)
    claims_file = _TableWriter(out / f"claims.{file_format}")
    register_file = _TableWriter(out / f"authorizations.{file_format}")
    offsets = Offsets()
    for part, start in enumerate(range(0, lines, part_lines)):
        rng = np.random.default_rng(seed if part == 0 else [seed, part])
        size = min(part_lines, lines - start)
        claims, register, offsets = _part(rng, size, bad_fraction, register_ratio, offsets)
        claims_file.write(claims)
        register_file.write(register)
        del claims, register
    claims_file.close()
    register_file.close()


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: write ``claims`` and ``authorizations`` files under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, required=True, help="claim lines to write")
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--bad-fraction", type=float, default=0.0, help="share of claim rows with one defect"
    )
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument(
        "--register-ratio",
        type=float,
        default=REGISTER_RATIO,
        help="register rows per claim line (default 1/20)",
    )
    args = parser.parse_args(argv)
    if args.lines < 1:
        parser.error("--lines must be at least 1")
    if not 0.0 <= args.bad_fraction <= 1.0:
        parser.error("--bad-fraction must be between 0 and 1")
    write_generated(
        args.lines,
        args.seed,
        args.out,
        bad_fraction=args.bad_fraction,
        register_ratio=args.register_ratio,
        file_format=args.format,
    )


if __name__ == "__main__":
    main()
