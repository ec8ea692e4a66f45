"""The policy as data: the rules file, the code table it names, and their digest.

The code that applies the rules has no code numbers in it; they are all here.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.errors import PipelineError
from schemas.values import DENIAL_REASONS, PLAN_TYPES, SETTING_REASONS

DEFAULT_RULES = "default.toml"
CODE_TABLE_COLUMNS = (
    "hcpcs_code",
    "modality",
    "body_region",
    "code_family",
    "records_required",
    "behavioral_health_only",
    "effective_from",
    "effective_to",
)
EXEMPTION_CONDITIONS = ("place_of_service", "bill_type", "revenue_code")
CONDITION_SHAPES = {
    "place_of_service": re.compile(r"[0-9]{2}"),
    "bill_type": re.compile(r"[0-9]{2}"),  # the type of bill's first two digits
    "revenue_code": re.compile(r"[0-9]{4}"),
}
"""What a code of each exemption condition looks like: one of another shape could never
match a claim (``490`` for the revenue code ``0490``)."""


class RulesError(PipelineError):
    """The rules file or its code table is not usable."""


class UnclearRules(RulesError):
    """A rules file whose settings cannot mean what they say: a switch that is not true
    or false, a code list that is not a list of quoted codes, a plan type or reason the
    contract does not know, a denial without its CARC (refused since version 0.2.0)."""


@dataclass(frozen=True)
class Exemption:
    """A setting in which imaging needs no authorization, and the ways it shows on a claim."""

    reason: str
    when: tuple[dict[str, frozenset[str]], ...]
    switch: str | None = None


@dataclass(frozen=True)
class Rules:
    """Everything the policy's steps need to know, loaded and checked once."""

    code_table: pd.DataFrame
    behavioral_health_diagnosis: str
    records_with_behavioral_health_modalities: frozenset[str]
    records_with_behavioral_health_families: frozenset[str]
    professional_component_modifiers: frozenset[str]
    allow_family_substitution: bool
    observation_exempt: bool
    excepted_plan_types: frozenset[str]
    exemptions: tuple[Exemption, ...]
    group_code: str
    remittance: dict[str, dict[str, str]]
    digest: str
    source: str = field(default="built-in")

    def switch_on(self, name: str | None) -> bool:
        """Whether an exemption guarded by switch ``name`` applies (no switch: always)."""
        if name is None:
            return True
        value = getattr(self, name, None)
        if not isinstance(value, bool):
            raise RulesError(f"exemption switch {name!r} is not a switch of the rules file")
        return value

    @property
    def active_exemptions(self) -> tuple[Exemption, ...]:
        """The exemptions in force, in the order they are checked."""
        return tuple(e for e in self.exemptions if self.switch_on(e.switch))


def _read_code_table(data: bytes, where: str) -> pd.DataFrame:
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in CODE_TABLE_COLUMNS},
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as error:
        raise RulesError(f"{where}: the code table cannot be read: {error}") from error
    missing = [name for name in CODE_TABLE_COLUMNS if name not in table.column_names]
    if missing:
        raise RulesError(f"{where}: the code table is missing columns: {', '.join(missing)}")
    frame = table.select(list(CODE_TABLE_COLUMNS)).to_pandas()
    flags = {}
    for name in ("records_required", "behavioral_health_only"):
        text = frame[name].str.strip().str.lower()
        if not text.isin(["true", "false"]).all():
            raise RulesError(f"{where}: {name} must be true or false on every row")
        flags[name] = text.eq("true")
    dates = {}
    for name in ("effective_from", "effective_to"):
        parsed = pd.to_datetime(frame[name], format="%Y-%m-%d", errors="coerce")
        if (parsed.isna() & frame[name].notna()).any():
            raise RulesError(f"{where}: {name} must be empty or a date YYYY-MM-DD")
        dates[name] = parsed.astype("datetime64[s]")
    frame = frame.assign(hcpcs_code=frame["hcpcs_code"].str.strip().str.upper(), **flags, **dates)
    if frame["hcpcs_code"].isna().any() or frame["code_family"].isna().any():
        raise RulesError(f"{where}: every code table row needs a hcpcs_code and code_family")
    families = frame.groupby("code_family")[["modality", "body_region"]].nunique()
    mixed = families[(families > 1).any(axis=1)].index.tolist()
    if mixed:
        raise RulesError(
            f"{where}: code families cross modality or body region: {', '.join(mixed)}"
        )
    return frame


def _exemptions(entries: list[dict[str, Any]], where: str) -> tuple[Exemption, ...]:
    exemptions = []
    for entry in entries:
        reason = entry.get("reason")
        ways = entry.get("when")
        if not isinstance(reason, str) or not isinstance(ways, list) or not ways:
            raise RulesError(f"{where}: each [[exemptions]] needs a reason and a list `when`")
        if reason not in SETTING_REASONS:
            raise UnclearRules(
                f"{where}: exemption reason {reason} is not one of {', '.join(SETTING_REASONS)}"
            )
        parsed = []
        for way in ways:
            unknown = set(way) - set(EXEMPTION_CONDITIONS)
            if unknown or not way:
                raise RulesError(
                    f"{where}: exemption {reason} has conditions other than "
                    f"{', '.join(EXEMPTION_CONDITIONS)}: {', '.join(sorted(unknown))}"
                )
            parsed.append(
                {
                    key: _codes(values, f"exemption {reason} {key}", where, CONDITION_SHAPES[key])
                    for key, values in way.items()
                }
            )
        exemptions.append(Exemption(reason=reason, when=tuple(parsed), switch=entry.get("switch")))
    return tuple(exemptions)


def _codes(
    values: Any, name: str, where: str, shape: re.Pattern[str] | None = None
) -> frozenset[str]:
    """A list of codes as text (of ``shape``, where given): ``"23"`` alone would be read
    as the codes 2 and 3, and the number 490 never equals the revenue code ``0490``."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise UnclearRules(f"{where}: {name} must be a list of codes in quotes, not {values!r}")
    misshapen = [v for v in values if shape is not None and not shape.fullmatch(v)]
    if misshapen:
        raise UnclearRules(
            f"{where}: {name} has codes no claim can carry: {', '.join(misshapen)} "
            f"(expected {shape.pattern if shape else ''})"
        )
    return frozenset(values)


def _switch(switches: dict[str, Any], name: str, where: str) -> bool:
    value = switches[name]
    if not isinstance(value, bool):
        raise UnclearRules(f"{where}: switches.{name} must be true or false, not {value!r}")
    return value


def _plan_types(values: Any, where: str) -> frozenset[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise UnclearRules(f"{where}: switches.excepted_plan_types must be a list of plan types")
    unknown = sorted({v.upper() for v in values} - set(PLAN_TYPES))
    if unknown:
        raise UnclearRules(
            f"{where}: switches.excepted_plan_types names plan types the contract does not "
            f"know: {', '.join(unknown)} (known: {', '.join(PLAN_TYPES)})"
        )
    return frozenset(v.upper() for v in values)


def _code(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UnclearRules(f"{where}: {name} must be a code (text), not {value!r}")
    return value


def _remittance(reasons: dict[str, Any], where: str) -> dict[str, dict[str, str]]:
    """Every denial reason's remittance codes: a CARC each, a RARC where given."""
    unknown = sorted(set(reasons) - set(DENIAL_REASONS))
    lacking = [reason for reason in DENIAL_REASONS if reason not in reasons]
    if unknown or lacking:
        raise UnclearRules(
            f"{where}: [remittance.reasons] must give the codes of every denial reason, and "
            f"of no other: lacking {', '.join(lacking) or 'none'}; "
            f"unknown {', '.join(unknown) or 'none'}"
        )
    codes = {}
    for reason, entry in reasons.items():
        if not isinstance(entry, dict) or set(entry) - {"carc", "rarc"} or "carc" not in entry:
            raise UnclearRules(
                f"{where}: remittance for {reason} must be {{ carc = ..., rarc = ... }} "
                "(rarc optional)"
            )
        codes[reason] = {
            name: _code(value, f"remittance {reason} {name}", where)
            for name, value in entry.items()
        }
    return codes


def _digest(document: dict[str, Any], code_table: bytes) -> str:
    canonical = json.dumps(
        document, sort_keys=True, separators=(",", ":"), default=_toml_moment
    ).encode()
    digest = hashlib.sha256()
    digest.update(canonical)
    digest.update(b"\0")
    digest.update(code_table.replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def _toml_moment(value: object) -> object:
    """A TOML date, time or date-time (which JSON has not) in the digest: its ISO text,
    marked apart from a string of the same text."""
    if isinstance(value, date | time):  # a datetime is a date
        return {"toml": type(value).__name__, "iso": value.isoformat()}
    raise TypeError(f"{type(value).__name__} in a rules file")


def parse_rules(text: str, code_table: bytes, where: str) -> Rules:
    """Rules from the text of a rules file and the bytes of its code table."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{where}: not a valid TOML rules file: {error}") from error
    try:
        program = document["program"]
        switches = document["switches"]
        remittance = document["remittance"]
        pattern = program["behavioral_health_diagnosis"]
        re.compile(pattern)
        rules = Rules(
            code_table=_read_code_table(code_table, where),
            behavioral_health_diagnosis=pattern,
            records_with_behavioral_health_modalities=_codes(
                program.get("records_with_behavioral_health_modalities", []),
                "program.records_with_behavioral_health_modalities",
                where,
            ),
            records_with_behavioral_health_families=_codes(
                program.get("records_with_behavioral_health_families", []),
                "program.records_with_behavioral_health_families",
                where,
            ),
            professional_component_modifiers=_codes(
                program.get("professional_component_modifiers", []),
                "program.professional_component_modifiers",
                where,
            ),
            allow_family_substitution=_switch(switches, "allow_family_substitution", where),
            observation_exempt=_switch(switches, "observation_exempt", where),
            excepted_plan_types=_plan_types(switches["excepted_plan_types"], where),
            exemptions=_exemptions(document.get("exemptions", []), where),
            group_code=_code(remittance["group_code"], "remittance group_code", where),
            remittance=_remittance(remittance["reasons"], where),
            digest=_digest(document, code_table),
            source=where,
        )
    except KeyError as error:
        raise RulesError(f"{where}: the rules file lacks the setting {error}") from error
    except re.error as error:
        raise RulesError(f"{where}: behavioral_health_diagnosis is not a regex: {error}") from error
    for exemption in rules.exemptions:
        rules.switch_on(exemption.switch)
    return rules


def load_rules(path: str | Path | None = None) -> Rules:
    """The built-in rules, or the rules file at ``path`` with its code table beside it."""
    if path is None:
        package = files(__package__)
        text = package.joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
        table_name = tomllib.loads(text)["program"]["code_table"]
        return parse_rules(text, package.joinpath(table_name).read_bytes(), "built-in")
    rules_path = Path(path)
    try:
        text = rules_path.read_text(encoding="utf-8")
        table_name = tomllib.loads(text).get("program", {}).get("code_table")
    except OSError as error:
        raise RulesError(f"{rules_path}: cannot be read: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{rules_path}: not a valid TOML rules file: {error}") from error
    if not table_name:
        raise RulesError(f"{rules_path}: [program] code_table is not set")
    table_path = rules_path.parent / table_name
    try:
        table_bytes = table_path.read_bytes()
    except OSError as error:
        raise RulesError(
            f"{rules_path}: its code table {table_path} (code_table, read from beside the "
            f"rules file) cannot be read: {error.strerror}"
        ) from error
    return parse_rules(text, table_bytes, str(rules_path))
