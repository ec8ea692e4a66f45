"""A rules file that cannot mean what it says is refused when it is loaded (exit 1),
never read as something else: a switch written as text, a plan type or a reason the
contract does not know, a denial without its remittance codes."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.rules import DEFAULT_RULES, RulesError, load_rules, parse_rules

DEFAULT = files("pipeline.rules").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
TABLE_NAME = "advanced_imaging_codes.csv"
TABLE = files("pipeline.rules").joinpath(TABLE_NAME).read_bytes()
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def edited(old: str, new: str) -> str:
    assert DEFAULT.count(old) == 1, old
    return DEFAULT.replace(old, new)


def test_the_built_in_rules_load() -> None:
    rules = parse_rules(DEFAULT, TABLE, "test")
    assert rules.digest == load_rules().digest
    assert rules.allow_family_substitution is True
    assert rules.remittance["UNITS_EXCEEDED"] == {"carc": "198", "rarc": "N640"}


REFUSED = [
    (
        "allow_family_substitution = true",
        'allow_family_substitution = "false"',
        "switches.allow_family_substitution must be true or false, not 'false'",
    ),
    ("observation_exempt = false", "observation_exempt = 0", "switches.observation_exempt"),
    (
        'excepted_plan_types = ["PPO"]',
        'excepted_plan_types = ["PPO", "XYZ"]',
        "names plan types the contract does not know: XYZ",
    ),
    ('excepted_plan_types = ["PPO"]', 'excepted_plan_types = "PPO"', "a list of plan types"),
    ('reason = "INPATIENT"', 'reason = "FOO"', "exemption reason FOO is not one of"),
    ('UNITS_EXCEEDED = { carc = "198", rarc = "N640" }\n', "", "lacking UNITS_EXCEEDED"),
    (
        'UNITS_EXCEEDED = { carc = "198", rarc = "N640" }\n',
        'UNITS_EXCEEDED = { carc = "198", rarc = "N640" }\n'
        'AUTHORIZATION_MATCHED = { carc = "1" }\n',
        "unknown AUTHORIZATION_MATCHED",
    ),
    (
        'UNITS_EXCEEDED = { carc = "198", rarc = "N640" }',
        'UNITS_EXCEEDED = { rarc = "N640" }',
        "remittance for UNITS_EXCEEDED must be",
    ),
    (
        'UNITS_EXCEEDED = { carc = "198", rarc = "N640" }',
        'UNITS_EXCEEDED = { carc = 198, rarc = "N640" }',
        "remittance UNITS_EXCEEDED carc must be a code (text), not 198",
    ),
    ('group_code = "CO"', 'group_code = ""', "remittance group_code must be a code"),
    (
        '{ place_of_service = ["23"] }',
        '{ place_of_service = "23" }',
        "exemption EMERGENCY_ROOM place_of_service must be a list of codes in quotes, not '23'",
    ),
    (
        '{ revenue_code = ["0490", "0499"] }',
        "{ revenue_code = [490, 499] }",
        "exemption AMBULATORY_SURGERY revenue_code must be a list of codes in quotes",
    ),
    (
        '{ revenue_code = ["0490", "0499"] }',
        '{ revenue_code = ["490", "0499"] }',
        "exemption AMBULATORY_SURGERY revenue_code has codes no claim can carry: 490",
    ),
    (
        '{ place_of_service = ["23"] }',
        '{ place_of_service = ["23", "ER"] }',
        "exemption EMERGENCY_ROOM place_of_service has codes no claim can carry: ER",
    ),
    (
        'professional_component_modifiers = ["26"]',
        'professional_component_modifiers = "26"',
        "program.professional_component_modifiers must be a list of codes in quotes",
    ),
    (
        'professional_component_modifiers = ["26"]',
        'professional_component_modifiers = ["26 "]',
        "program.professional_component_modifiers has codes no claim can carry: 26 ",
    ),
    (
        'professional_component_modifiers = ["26"]\n',
        "",
        "lacks the setting 'professional_component_modifiers'",
    ),
    (
        'behavioral_health_diagnosis = "^F(0[1-9]|[1-9][0-9])"',
        "behavioral_health_diagnosis = 5",
        "behavioral_health_diagnosis must be a regular expression in quotes",
    ),
    (  # Python's engine reads a look-ahead; Arrow's (RE2), which the run uses, does not
        'behavioral_health_diagnosis = "^F(0[1-9]|[1-9][0-9])"',
        'behavioral_health_diagnosis = "^F(?!00)[0-9]{2}"',
        "behavioral_health_diagnosis is not a regular expression the job can read",
    ),
    (
        'records_with_behavioral_health_modalities = ["MRA"]',
        'records_with_behavioral_health_modalities = ["MRX"]',
        "records_with_behavioral_health_modalities names what the code table has not: MRX",
    ),
    ("[program]\n", 'program = "x"\n[payer_notes]\n', "[program] must be a table of settings"),
    (
        "observation_exempt = false",
        "observation_exempt = false\nobservaton_exempt = true",
        "[switches] has settings the program does not read: observaton_exempt",
    ),
    ('switch = "observation_exempt"', "switch = true", "switch must name a switch, not True"),
    (  # misspelt, the switch was ignored and the exemption always applied
        'switch = "observation_exempt"',
        'swich = "observation_exempt"',
        "exemption OBSERVATION has settings the program does not read: swich",
    ),
    (  # misspelt, the table was ignored and the inpatient exemption gone
        '[[exemptions]]\nreason = "INPATIENT"',
        '[[exemption]]\nreason = "INPATIENT"',
        "'exemption' holds an exemption (INPATIENT, with the ways it shows) the program "
        "does not read",
    ),
    (  # in capitals, the same
        '[[exemptions]]\nreason = "INPATIENT"',
        '[[EXEMPTIONS]]\nreason = "INPATIENT"',
        "a table named 'EXEMPTIONS' is not read (the program reads 'exemptions', in lower case)",
    ),
    ("[switches]\n", "[Switches]\n", "a table named 'Switches' is not read"),
    (  # a second, misspelt table of switches was ignored
        "[switches]\n",
        "[swiches]\nobservation_exempt = true\n\n[switches]\n",
        "'swiches' holds settings of [switches] the program does not read there: "
        "observation_exempt",
    ),
    (
        '{ place_of_service = ["21"] },',
        "{},",
        "exemption INPATIENT has a way with no condition",
    ),
    (
        'switch = "observation_exempt"',
        'switch = "urgent_exempt"',
        "test: exemption OBSERVATION: exemption switch 'urgent_exempt' is not a switch",
    ),
    (  # a place of service is read on professional claims, a revenue code on institutional
        '{ place_of_service = ["23"] },\n  { revenue_code = ["0450",',
        '{ place_of_service = ["23"], revenue_code = ["0450",',
        "exemption EMERGENCY_ROOM has a way that can never hold",
    ),
    ("[remittance.reasons]\n", "[[remittance.reasons]]\n", "must be one table, not a list"),
    ('group_code = "CO"', 'group_code = "PI"', "remittance group_code must be CO"),
    (
        'UNITS_EXCEEDED = { carc = "198", rarc = "N640" }',
        'UNITS_EXCEEDED = { carc = " 198", rarc = "N640" }',
        "remittance UNITS_EXCEEDED carc ' 198' is not of the shape",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), REFUSED, ids=[r[2][:40] for r in REFUSED])
def test_a_rules_file_that_cannot_mean_what_it_says_is_refused(
    old: str, new: str, message: str
) -> None:
    with pytest.raises(RulesError, match="^test: ") as refused:
        parse_rules(edited(old, new), TABLE, "test")
    assert message in str(refused.value)


TABLE_REFUSED = [
    (b"70553,MRI,brain,MR_BRAIN,false,false,,,", b"", "has no rows"),  # the header alone
    (
        b"70553,MRI,brain,MR_BRAIN,false,false,,,",
        b"70553.0,MRI,brain,MR_BRAIN,false,false,,,",
        "codes no claim can carry: 70553.0",
    ),
    (
        b"70553,MRI,brain,MR_BRAIN,false,false,,,",
        b"70553,,,MR_BRAIN,false,false,,,",
        "rows without a modality: 70553",
    ),
    (
        b"70553,MRI,brain,MR_BRAIN,false,false,,,",
        b"70553,MRI,brain,MR_BRAIN,false,false,2026-12-31,2026-01-01,",
        "rows that end before they start: 70553",
    ),
    (  # the first row won, silently
        b"70450,CT,head,CT_HEAD,false,false,,,",
        b"70450,CT,head,CT_HEAD,false,false,,,\n70450,CT,head,CT_HEAD,false,false,2026-01-01,,",
        "two rows of one code in force on one day: 70450",
    ),
    (  # an authorization's family was its code's first row's, whatever its dates
        b"71271,CT,chest,CT_CHEST_LDCT,false,false,2021-01-01,,",
        b"71271,CT,chest,CT_CHEST,false,false,2021-01-01,2025-12-31,\n"
        b"71271,CT,chest,CT_CHEST_LDCT,false,false,2026-01-01,,",
        "puts a code in two families: 71271",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "message"), TABLE_REFUSED, ids=[r[2][:40] for r in TABLE_REFUSED]
)
def test_a_code_table_that_cannot_mean_what_it_says_is_refused(
    old: bytes, new: bytes, message: str
) -> None:
    lines = TABLE.splitlines(keepends=True)
    header, rows = lines[0], b"".join(lines[1:])
    start = rows.index(old)
    table = header + (rows[:start] + new + rows[start + len(old) :] if new else b"")
    with pytest.raises(RulesError, match="^test: ") as refused:
        parse_rules(DEFAULT, table, "test")
    assert message in str(refused.value)


def test_a_rules_file_that_is_not_utf8_or_names_no_table_by_name_is_refused(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_bytes(DEFAULT.encode() + b"\n# approuv\xe9\n")
    with pytest.raises(RulesError, match="cannot be read as UTF-8 text"):
        load_rules(rules)
    rules.write_text(edited(f'code_table = "{TABLE_NAME}"', "code_table = 5"))
    with pytest.raises(RulesError, match="code_table must be a file name in quotes"):
        load_rules(rules)


def test_the_run_refuses_such_rules_before_any_work(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(edited("allow_family_substitution = true", 'allow_family_substitution = "no"'))
    (tmp_path / TABLE_NAME).write_bytes(TABLE)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "--claims", str(SAMPLES / "claims.csv")]
        + ["--authorizations", str(SAMPLES / "authorizations.csv"), "--as-of", "2026-06-30"]
        + ["--rules", str(rules), "--out", str(out)],
    )
    assert result.exit_code == 1, result.output
    assert "switches.allow_family_substitution must be true or false" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "notes",
    [
        '[exemption_notes]\nEMERGENCY_ROOM = "per manual 4.2"',
        '[remittance_notes]\nname = "as filed"',
        '[notes]\nreason = "annual update"\nwhen = "approved 2026-01-15 by the committee"',
        '[[changes]]\ndate = 2026-01-01\nreason = "added C8900 per manual 4.2"',
        '[[history]]\nreason = "INPATIENT"',
    ],
)
def test_notes_under_any_other_name_are_the_payers_own(notes: str) -> None:
    assert parse_rules(DEFAULT + "\n" + notes + "\n", TABLE, "test").observation_exempt is False


def test_a_pattern_only_re2_reads_is_read() -> None:
    # \z and \pN are RE2's; Python's engine refused them, though the run reads with RE2
    rules = parse_rules(edited('"^F(0[1-9]|[1-9][0-9])"', r"'^F\pN\pN.*\z'"), TABLE, "test")
    assert rules.behavioral_health_diagnosis == r"^F\pN\pN.*\z"


def test_blanks_around_a_code_table_cell_are_no_part_of_it() -> None:
    table = TABLE + b"C8900, MRA, abdomen, MRA_ABD, false, false,,,\n"
    rules = parse_rules(DEFAULT, table, "test")
    row = rules.code_table.set_index("hcpcs_code").loc["C8900"]
    assert (row["modality"], row["body_region"], row["code_family"]) == (
        "MRA",
        "abdomen",
        "MRA_ABD",
    )


def test_a_rules_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_bytes(b"\xef\xbb\xbf" + DEFAULT.encode())
    (tmp_path / TABLE_NAME).write_bytes(TABLE)
    assert load_rules(rules).allow_family_substitution is True


def test_a_note_with_a_toml_date_is_digested_not_a_crash() -> None:
    """A payer's own table beside the settings (a date the rules were approved, say) is
    read like any other text of the file: it changes the digest, and nothing else."""
    noted = DEFAULT + "\n[notes]\napproved = 2026-01-01\n"
    as_text = DEFAULT + '\n[notes]\napproved = "2026-01-01"\n'
    rules = parse_rules(noted, TABLE, "test")
    assert rules.allow_family_substitution is True
    digests = {rules.digest, parse_rules(as_text, TABLE, "test").digest, load_rules().digest}
    assert len(digests) == 3, "a date, the same text as a string, and no note: three digests"


def test_a_rules_file_without_its_code_table_beside_it_names_the_table(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(DEFAULT)
    with pytest.raises(RulesError) as refused:
        load_rules(rules)
    message = str(refused.value)
    assert f"its code table {tmp_path / TABLE_NAME}" in message
    assert "No such file or directory" in message
    (tmp_path / TABLE_NAME).write_bytes(TABLE)
    assert load_rules(rules).digest == parse_rules(DEFAULT, TABLE, str(rules)).digest


def test_a_rules_file_that_is_not_there_is_named(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"rules\.toml: cannot be read: No such file"):
        load_rules(tmp_path / "rules.toml")
