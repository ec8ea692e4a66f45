"""``adjudicate check-code`` (CONTRACT §1, POLICY §5): the provider's question before the
service, answered by the same rules as ``run``, with a sentence saying why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main


def check(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["check-code", *args, "--json"])
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.mark.parametrize(
    ("args", "needs", "reason", "words"),
    [
        (["70553", "--date", "2026-03-01"], True, None, "requires prior authorization on"),
        (
            ["70553", "--date", "2026-03-01", "--place-of-service", "23"],
            False,
            "EMERGENCY_ROOM",
            "during an emergency room visit",
        ),
        (
            ["70553", "--date", "2026-03-01", "--plan-type", "PPO"],
            False,
            "PLAN_EXCEPTION",
            "PPO plans are excepted",
        ),
        (
            ["70553", "--date", "2026-03-01", "--bill-type", "131", "--revenue-code", "0456"],
            False,
            "HOSPITAL_URGENT_CARE",
            "needs no prior authorization when ordered and provided during",
        ),
        (["99213", "--date", "2026-03-01"], False, None, "is not in the advanced imaging program"),
        (
            ["78830", "--date", "2021-06-01"],
            False,
            None,
            "only for behavioral-health indications",
        ),
        (
            # SPECT is in force from 2020-01-01: before it, no diagnosis would have mattered.
            ["78830", "--date", "2019-06-01"],
            False,
            None,
            "is not in force in the imaging program on 2019-06-01",
        ),
        (
            ["78830", "--date", "2021-06-01", "--diagnosis", "F32.9"],
            True,
            None,
            "Attach medical records",
        ),
    ],
    ids=[
        "office",
        "emergency room",
        "PPO",
        "hospital urgent care",
        "not imaging",
        "SPECT without a behavioral-health diagnosis",
        "SPECT before it was in force",
        "SPECT with one",
    ],
)
def test_the_answer_and_why(args: list[str], needs: bool, reason: str | None, words: str) -> None:
    answer = check(*args)
    assert answer["requires_authorization"] is needs
    assert answer["exempt_reason"] == reason
    assert words in answer["explanation"]


def test_a_malformed_date_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["check-code", "70553", "--date", "2026-02-30"])
    assert result.exit_code == 2
    assert "--date" in result.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--place-of-service", " 23"], "EMERGENCY_ROOM"),
        (["--bill-type", " 131", "--revenue-code", "0456 "], "HOSPITAL_URGENT_CARE"),
        (["--bill-type", "0131", "--revenue-code", "0450"], "EMERGENCY_ROOM"),
        (["--plan-type", " ppo "], "PLAN_EXCEPTION"),
    ],
    ids=[
        "place of service",
        "type of bill and revenue code",
        "four-digit type of bill",
        "plan type",
    ],
)
def test_option_values_are_trimmed_as_run_trims_a_claims_value(
    args: list[str], reason: str
) -> None:
    answer = check("70553", "--date", "2026-03-01", *args)
    assert answer["exempt_reason"] == reason


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (["--date", "2026-3-1"], "--date", "written YYYY-MM-DD"),
        (["--place-of-service", "00"], "--place-of-service", "CMS Place of Service code set"),
        (["--bill-type", "999"], "--bill-type", "UB-04 type of bill code set"),
        (
            ["--bill-type", "131", "--revenue-code", "0457"],
            "--revenue-code",
            "UB-04 revenue code set",
        ),
        (["--revenue-code", "0450"], "--bill-type", "needs --bill-type"),
    ],
    ids=[
        "an unpadded date",
        "an unknown place of service",
        "an unknown type of bill",
        "an unknown revenue code",
        "a revenue code without a type of bill",
    ],
)
def test_facts_run_would_reject_are_a_usage_error(args: list[str], option: str, words: str) -> None:
    result = CliRunner().invoke(main, ["check-code", "70553", *args])
    assert result.exit_code == 2, result.output
    assert option in result.stderr
    assert words in result.stderr


@pytest.mark.parametrize("code", ["70553.0", "70553 26", "7055"])
def test_a_malformed_code_is_not_told_it_needs_no_authorization(code: str) -> None:
    answer = check(code, "--date", "2026-03-01")
    assert answer["in_program"] is False
    assert "is not a five-character CPT or HCPCS code" in answer["explanation"]
    assert "no prior authorization is needed" not in answer["explanation"]
