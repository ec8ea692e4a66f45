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
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.errors import PipelineError

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


class RulesError(PipelineError):
    """The rules file or its code table is not usable."""


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
        parsed = []
        for way in ways:
            unknown = set(way) - set(EXEMPTION_CONDITIONS)
            if unknown or not way:
                raise RulesError(
                    f"{where}: exemption {reason} has conditions other than "
                    f"{', '.join(EXEMPTION_CONDITIONS)}: {', '.join(sorted(unknown))}"
                )
            parsed.append({key: frozenset(str(v) for v in values) for key, values in way.items()})
        exemptions.append(Exemption(reason=reason, when=tuple(parsed), switch=entry.get("switch")))
    return tuple(exemptions)


def _digest(document: dict[str, Any], code_table: bytes) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256()
    digest.update(canonical)
    digest.update(b"\0")
    digest.update(code_table.replace(b"\r\n", b"\n"))
    return digest.hexdigest()


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
            records_with_behavioral_health_modalities=frozenset(
                program.get("records_with_behavioral_health_modalities", [])
            ),
            records_with_behavioral_health_families=frozenset(
                program.get("records_with_behavioral_health_families", [])
            ),
            professional_component_modifiers=frozenset(
                program.get("professional_component_modifiers", [])
            ),
            allow_family_substitution=bool(switches["allow_family_substitution"]),
            observation_exempt=bool(switches["observation_exempt"]),
            excepted_plan_types=frozenset(p.upper() for p in switches["excepted_plan_types"]),
            exemptions=_exemptions(document.get("exemptions", []), where),
            group_code=str(remittance["group_code"]),
            remittance={k: dict(v) for k, v in remittance["reasons"].items()},
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
        if not table_name:
            raise RulesError(f"{rules_path}: [program] code_table is not set")
        table_bytes = (rules_path.parent / table_name).read_bytes()
    except OSError as error:
        raise RulesError(f"{rules_path}: cannot be read: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{rules_path}: not a valid TOML rules file: {error}") from error
    return parse_rules(text, table_bytes, str(rules_path))
