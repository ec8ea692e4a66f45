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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.errors import PipelineError
from schemas.values import DENIAL_REASONS, HCPCS_SHAPE, PLAN_TYPES, SETTING_REASONS

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
PROFESSIONAL_CONDITIONS = frozenset({"place_of_service"})
"""Conditions read on professional claims; the others on institutional ones, so one way
a setting shows that names both kinds could never hold."""
MODIFIER_SHAPE = re.compile(r"[A-Z0-9]{2}")
"""A modifier as a claim carries it (upper-cased when read)."""
CODE_SHAPE = re.compile(HCPCS_SHAPE)
"""A code of the code table, of the shape a claim's ``hcpcs_code`` must have."""
REMITTANCE_SHAPES = {
    "carc": re.compile(r"[A-Z0-9]{1,3}"),
    "rarc": re.compile(r"[A-Z]{1,2}[0-9]{1,4}"),
}
"""What a claim adjustment reason code (``197``, ``B7``) and a remittance advice remark
code (``N640``, ``MA130``) look like."""
GROUP_CODE = "CO"
"""The contract's group code of a denial: the provider is liable, the member held
harmless (CONTRACT §4, POLICY §4)."""
TABLES = {
    "program": (
        "name",
        "code_table",
        "behavioral_health_diagnosis",
        "records_with_behavioral_health_modalities",
        "records_with_behavioral_health_families",
        "professional_component_modifiers",
    ),
    "switches": ("allow_family_substitution", "observation_exempt", "excepted_plan_types"),
    "remittance": ("group_code", "reasons"),
}
"""The settings of each table the program reads: any other key in them is refused (a
misspelt one would be ignored); notes go in a table of their own."""
EXEMPTION_KEYS = ("reason", "when", "switch")


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
    # Blanks around a cell are no part of it, as around a claim's value (" MRA" was another
    # modality, and its lines needed no records).
    for name in ("modality", "body_region", "code_family"):
        trimmed = frame[name].str.strip()
        frame[name] = trimmed.where(trimmed.ne(""))
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
    _refuse_unclear_table(frame, where)
    families = frame.groupby("code_family")[["modality", "body_region"]].nunique()
    mixed = families[(families > 1).any(axis=1)].index.tolist()
    if mixed:
        raise RulesError(
            f"{where}: code families cross modality or body region: {', '.join(mixed)}"
        )
    return frame


def _refuse_unclear_table(frame: pd.DataFrame, where: str) -> None:
    """A code table that cannot mean what it says: no rows, a code of a shape no claim
    carries, a row without its modality or body region, a row in force from after its
    end, two rows of one code in force on one day, or one code in two families (an
    authorization's family is read by its code alone)."""
    if frame.empty:
        raise RulesError(f"{where}: the code table has no rows")
    misshapen = sorted({c for c in frame["hcpcs_code"] if not CODE_SHAPE.fullmatch(c)})
    if misshapen:
        raise UnclearRules(
            f"{where}: the code table has codes no claim can carry: {', '.join(misshapen)} "
            "(expected a CPT or HCPCS code: five digits, four and a letter, or a letter and four)"
        )
    for name in ("modality", "body_region"):
        lacking = frame.loc[frame[name].isna(), "hcpcs_code"]  # blank: trimmed to nothing
        if len(lacking):
            raise UnclearRules(
                f"{where}: the code table has rows without a {name}: "
                f"{', '.join(sorted(set(lacking)))}"
            )
    reversed_rows = frame.loc[frame["effective_from"] > frame["effective_to"], "hcpcs_code"]
    if len(reversed_rows):
        raise UnclearRules(
            f"{where}: the code table has rows that end before they start: "
            f"{', '.join(sorted(set(reversed_rows)))}"
        )
    families = frame.groupby("hcpcs_code")["code_family"].nunique()
    if (families > 1).any():
        raise UnclearRules(
            f"{where}: the code table puts a code in two families: "
            f"{', '.join(families[families > 1].index)} (a code keeps one family)"
        )
    # As seconds: an open start (NaT, the least int64) is the earliest, an open end the latest.
    start = frame["effective_from"].to_numpy().astype(np.int64)
    end = frame["effective_to"].to_numpy().astype(np.int64)
    end[frame["effective_to"].isna().to_numpy()] = np.iinfo(np.int64).max
    ordered = frame.assign(start=start, end=end).sort_values(["hcpcs_code", "start"], kind="stable")
    same_code = ordered["hcpcs_code"].eq(ordered["hcpcs_code"].shift())
    overlapping = ordered.loc[
        same_code & (ordered["start"] <= ordered["end"].shift()), "hcpcs_code"
    ]
    if len(overlapping):
        raise UnclearRules(
            f"{where}: the code table has two rows of one code in force on one day: "
            f"{', '.join(sorted(set(overlapping)))}"
        )


def _exemptions(entries: list[dict[str, Any]], where: str) -> tuple[Exemption, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UnclearRules(f"{where}: exemptions must be written as [[exemptions]] tables")
    exemptions = []
    for entry in entries:
        reason = entry.get("reason")
        ways = entry.get("when")
        if (
            not isinstance(reason, str)
            or not isinstance(ways, list)
            or not ways
            or not all(isinstance(way, dict) for way in ways)
        ):
            raise RulesError(
                f"{where}: each [[exemptions]] needs a reason and a list `when` of tables"
            )
        unknown_keys = sorted(set(entry) - set(EXEMPTION_KEYS))
        if unknown_keys:
            raise UnclearRules(
                f"{where}: exemption {reason} has settings the program does not read: "
                f"{', '.join(unknown_keys)} (it reads {', '.join(EXEMPTION_KEYS)})"
            )
        switch = entry.get("switch")
        if switch is not None and not isinstance(switch, str):
            raise UnclearRules(
                f"{where}: exemption {reason} switch must name a switch, not {switch!r}"
            )
        if reason not in SETTING_REASONS:
            raise UnclearRules(
                f"{where}: exemption reason {reason} is not one of {', '.join(SETTING_REASONS)}"
            )
        parsed = []
        for way in ways:
            unknown = set(way) - set(EXEMPTION_CONDITIONS)
            if not way:
                raise UnclearRules(f"{where}: exemption {reason} has a way with no condition")
            if unknown:
                raise RulesError(
                    f"{where}: exemption {reason} has conditions other than "
                    f"{', '.join(EXEMPTION_CONDITIONS)}: {', '.join(sorted(unknown))}"
                )
            kinds = {key in PROFESSIONAL_CONDITIONS for key in way}
            if len(kinds) > 1:
                raise UnclearRules(
                    f"{where}: exemption {reason} has a way that can never hold: "
                    f"{', '.join(sorted(way))} (a place of service is read on professional "
                    "claims, a type of bill and a revenue code on institutional ones; "
                    "give each its own entry of `when`)"
                )
            parsed.append(
                {
                    key: _codes(values, f"exemption {reason} {key}", where, CONDITION_SHAPES[key])
                    for key, values in way.items()
                }
            )
        exemptions.append(Exemption(reason=reason, when=tuple(parsed), switch=switch))
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


def _code(value: Any, name: str, where: str, shape: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UnclearRules(f"{where}: {name} must be a code (text), not {value!r}")
    if shape is not None and not shape.fullmatch(value):
        raise UnclearRules(
            f"{where}: {name} {value!r} is not of the shape {shape.pattern} (as written, "
            "without blanks)"
        )
    return value


def _remittance(reasons: dict[str, Any], where: str) -> dict[str, dict[str, str]]:
    """Every denial reason's remittance codes: a CARC each, a RARC where given."""
    if not isinstance(reasons, dict):
        raise UnclearRules(f"{where}: [remittance.reasons] must be one table, not a list")
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
            name: _code(value, f"remittance {reason} {name}", where, REMITTANCE_SHAPES[name])
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
        _refuse_unread_settings(document, where)
        program, switches, remittance = (document[name] for name in TABLES)
        pattern = _pattern(program["behavioral_health_diagnosis"], where)
        table = _read_code_table(code_table, where)
        rules = Rules(
            code_table=table,
            behavioral_health_diagnosis=pattern,
            records_with_behavioral_health_modalities=_named(
                program.get("records_with_behavioral_health_modalities", []),
                "program.records_with_behavioral_health_modalities",
                where,
                table["modality"],
            ),
            records_with_behavioral_health_families=_named(
                program.get("records_with_behavioral_health_families", []),
                "program.records_with_behavioral_health_families",
                where,
                table["code_family"],
            ),
            professional_component_modifiers=_codes(
                program["professional_component_modifiers"],
                "program.professional_component_modifiers",
                where,
                MODIFIER_SHAPE,
            ),
            allow_family_substitution=_switch(switches, "allow_family_substitution", where),
            observation_exempt=_switch(switches, "observation_exempt", where),
            excepted_plan_types=_plan_types(switches["excepted_plan_types"], where),
            exemptions=_exemptions(document.get("exemptions", []), where),
            group_code=_group_code(remittance["group_code"], where),
            remittance=_remittance(remittance["reasons"], where),
            digest=_digest(document, code_table),
            source=where,
        )
    except KeyError as error:
        raise RulesError(f"{where}: the rules file lacks the setting {error}") from error
    for exemption in rules.exemptions:
        try:
            rules.switch_on(exemption.switch)
        except RulesError as error:
            raise UnclearRules(f"{where}: exemption {exemption.reason}: {error}") from error
    return rules


def _refuse_unread_settings(document: dict[str, Any], where: str) -> None:
    """The tables the program reads hold settings it reads, and no other table is one of
    them under another name: a misspelt setting or table would be ignored, and the rules
    read otherwise than written (an exemption written ``swich``; ``[[exemption]]`` or
    ``[[EXEMPTIONS]]`` entries, each with its reason and its ways, and ``[PROGRAM]``).
    Notes under any other name are the payer's own, unless they hold an exemption (a
    setting's reason and the ways it shows) or a setting of those tables."""
    for name, settings in TABLES.items():
        table = document.get(name)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise UnclearRules(f"{where}: [{name}] must be a table of settings")
        unknown = sorted(set(table) - set(settings))
        if unknown:
            raise UnclearRules(
                f"{where}: [{name}] has settings the program does not read: "
                f"{', '.join(unknown)} (it reads {', '.join(settings)}; notes go in a "
                "table of their own, such as [notes])"
            )
    known = [*TABLES, "exemptions"]
    for key, value in document.items():
        if key in known:
            continue
        if key.lower() in known:
            raise UnclearRules(
                f"{where}: a table named {key!r} is not read (the program reads "
                f"{key.lower()!r}, in lower case)"
            )
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            reason, ways = entry.get("reason"), entry.get("when")
            if isinstance(reason, str) and reason in SETTING_REASONS and isinstance(ways, list):
                raise UnclearRules(
                    f"{where}: {key!r} holds an exemption ({reason}, with the ways "
                    "it shows) the program does not read: exemptions are [[exemptions]] "
                    "entries"
                )
            for name, settings in TABLES.items():
                misplaced = sorted(set(entry) & set(settings) - {"name"})
                if misplaced:
                    raise UnclearRules(
                        f"{where}: {key!r} holds settings of [{name}] the program does not "
                        f"read there: {', '.join(misplaced)}"
                    )


def _pattern(pattern: Any, where: str) -> str:
    """The behavioral-health diagnosis pattern, as the job reads it: with Arrow's
    regular expressions (RE2: no look-ahead, no back-reference)."""
    name = "program.behavioral_health_diagnosis"
    if not isinstance(pattern, str):
        raise UnclearRules(f"{where}: {name} must be a regular expression in quotes")
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern=pattern)
    except pa.ArrowInvalid as error:
        raise UnclearRules(
            f"{where}: {name} is not a regular expression the job can read (RE2's): {error}"
        ) from error
    return pattern


def _named(values: Any, name: str, where: str, known: pd.Series) -> frozenset[str]:
    """Modalities or families the code table has: another could never match a line."""
    names = _codes(values, name, where)
    unknown = sorted(names - set(known.dropna()))
    if unknown:
        raise UnclearRules(
            f"{where}: {name} names what the code table has not: {', '.join(unknown)}"
        )
    return names


def _group_code(value: Any, where: str) -> str:
    code = _code(value, "remittance group_code", where)
    if code != GROUP_CODE:
        raise UnclearRules(
            f"{where}: remittance group_code must be {GROUP_CODE} (the provider is liable "
            f"and the member held harmless, as the contract says), not {code!r}"
        )
    return code


def load_rules(path: str | Path | None = None) -> Rules:
    """The built-in rules, or the rules file at ``path`` with its code table beside it."""
    if path is None:
        package = files(__package__)
        text = package.joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
        table_name = tomllib.loads(text)["program"]["code_table"]
        return parse_rules(text, package.joinpath(table_name).read_bytes(), "built-in")
    rules_path = Path(path)
    if rules_path.exists() and not rules_path.is_file():  # a pipe would be waited on
        raise RulesError(f"{rules_path}: not a regular file (a directory, a pipe or a device)")
    try:
        text = rules_path.read_text(encoding="utf-8-sig")  # a byte-order mark is no setting
        program = tomllib.loads(text).get("program", {})
    except OSError as error:
        raise RulesError(f"{rules_path}: cannot be read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise RulesError(f"{rules_path}: cannot be read as UTF-8 text: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{rules_path}: not a valid TOML rules file: {error}") from error
    table_name = program.get("code_table") if isinstance(program, dict) else None
    if not table_name:
        raise RulesError(f"{rules_path}: [program] code_table is not set")
    if not isinstance(table_name, str):
        raise UnclearRules(f"{rules_path}: [program] code_table must be a file name in quotes")
    table_path = rules_path.parent / table_name
    try:
        table_bytes = table_path.read_bytes()
    except OSError as error:
        raise RulesError(
            f"{rules_path}: its code table {table_path} (code_table, read from beside the "
            f"rules file) cannot be read: {error.strerror}"
        ) from error
    return parse_rules(text, table_bytes, str(rules_path))
