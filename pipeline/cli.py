"""The ``adjudicate`` command: options in, exit codes out.

Exit codes: 0 done; 1 the run failed and published nothing; 2 usage error;
3 a safety guard held the run and nothing was published.
Only counts and check names reach the terminal: member ids and NPIs go to the
output files, never to stdout, stderr or logs.

The engine (pandas, pandera) is imported by the commands that use it, as they run;
``run`` and ``verify`` start their worker processes first, which import it beside this
process instead of after it (``pipeline.workers``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TextIO

import click

from pipeline import __version__
from pipeline.errors import Held, PipelineError, Stopped
from pipeline.progress import JsonLog, Observer, Silent, TerminalProgress
from pipeline.publish import refuse_existing
from pipeline.report import MANIFEST, write_report
from pipeline.workers import ROWS_PER_PARTITION, WORKERS, started_early
from schemas import codesets
from schemas.values import PLAN_TYPES


class AsOf(click.ParamType):
    """An ISO date or date-time, read as UTC; a bare date means the end of that day."""

    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        return parse_as_of(str(value), lambda message: self.fail(message, param, ctx))


class Rate(click.FloatRange):
    """A share from 0 to 1. ``nan`` is refused: no share is above it, so a guard given
    it would never hold a run."""

    name = "rate"

    def __init__(self) -> None:
        super().__init__(0, 1)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rate = super().convert(value, param, ctx)
        if math.isnan(rate):
            self.fail(f"{value!r} is not a number from 0 to 1", param, ctx)
        return rate


RATE = Rate()


def parse_as_of(text: str, fail: Any) -> datetime:
    """``--as-of`` as a naive UTC datetime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{text!r} is not an ISO date (2026-11-27) or date-time (2026-11-27T06:00:00Z)")
    if _is_date(text.strip()):
        moment = datetime.combine(moment.date(), time.max)  # the day's last microsecond
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 9999-12-31T23:00:00-05:00: past the last year in UTC
            fail(f"{text!r} is outside the years 0001 to 9999 in UTC")
    return moment


def _is_date(text: str) -> bool:
    """A date alone (``2026-06-30``, ``20260630``), as ``date.fromisoformat`` reads one; a
    date-time's ``T`` may be written ``t``, so its letter cannot tell them apart."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _named(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """A path option as a path, refused empty: a scheduler's unset variable would
    otherwise name the working directory (``.`` names it on purpose)."""
    if value is None:
        return None
    if not value.strip(" \t"):
        raise click.BadParameter("is empty (an unset variable?); name a path", ctx, param)
    return Path(value)


def now_utc() -> datetime:
    """The run's default ``--as-of``: this second, UTC."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Within: SIGTERM (a scheduler's stop or timeout) or SIGHUP (the terminal or session
    that started the run gone) raises :class:`Stopped`, so the run removes its staging
    directory and spill files and stops its workers, as a failed run does, where the
    signal's default would end it on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    # A signal the process was started ignoring stays ignored: a shell's background job
    # ignores SIGINT, and nohup asks for SIGHUP to be.
    previous = {
        number: signal.signal(number, stop)
        for number in STOPPING
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


STOPPING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
"""The signals that stop a run as a failure does: SIGINT (Ctrl-C) too, so that one
landing after the rename says the run was published (exit 0), as SIGTERM's does."""


class _EachOnce(click.Command):
    """A command whose options (flags too) are each given at most once: the parser keeps
    the last of two silently (a second ``--authorizations`` dropped the first register,
    and its members' lines were denied), so two are a usage error (exit 2). Options that
    take several values (``--claims``) repeat as before; ``--help`` still answers."""

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_once(args: list[str]) -> Any:
            opts, rest, order = parse(args=args)
            if ctx.resilient_parsing or any(param.is_eager for param in order):
                return opts, rest, order  # completing a command line, or --help: no check
            given: set[str | None] = set()
            for param in order:  # one entry each time an option is given
                if isinstance(param, click.Option) and not (
                    param.multiple or param.count or param.is_eager
                ):
                    if param.name in given:
                        raise click.UsageError(f"{param.opts[0]} is given twice; give it once", ctx)
                    given.add(param.name)
            return opts, rest, order

        parser.parse_args = parse_once  # type: ignore[method-assign]
        return parser


class _Commands(click.Group):
    command_class = _EachOnce


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adjudicate")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Adjudicate advanced-imaging claim lines against prior authorizations."""
    if ctx.invoked_subcommand in ("run", "validate", "verify"):  # before their arguments'
        _refuse_gone_directory()  # checks, which a relative path fails first


def _refuse_gone_directory() -> None:
    """Refuse, in a sentence, to run from a working directory removed while the shell
    stood in it: the libraries' imports, the workers' start and the manifest need it."""
    try:
        os.getcwd()
    except FileNotFoundError as error:
        raise click.ClickException(
            "the working directory is gone (removed while the shell stood in it); "
            "start the command from a directory that exists"
        ) from error


def workers_option(text: str) -> Any:
    """``--workers``, as ``run`` and ``verify`` take it."""
    return click.option(
        "--workers", type=click.IntRange(1, 64), default=WORKERS, show_default=True, help=text
    )


def partition_rows_option(text: str) -> Any:
    """``--partition-rows``, as ``run`` and ``verify`` take it."""
    return click.option(
        "--partition-rows",
        type=click.IntRange(1, None),
        default=ROWS_PER_PARTITION,
        show_default=True,
        help=text,
    )


claims_option = click.option(
    "--claims",
    "claims",
    multiple=True,
    required=True,
    metavar="PATH",
    help="A claims file (.csv, .csv.gz, .parquet); repeat for several.",
)


def _echo_counts(summary: dict[str, Any]) -> None:
    for entry in summary["inputs"]:
        click.echo(
            f"{entry['source']} {entry['path']}: {entry['rows_read']} rows read, "
            f"{entry['valid']} valid, {entry['rejected']} rejected"
        )
        for reject in entry["rejects_by_check"]:
            click.echo(f"    {reject['column']:<28} {reject['check']:<34} {reject['rejects']:>8}")


@main.command()
@claims_option
@click.option("--authorizations", metavar="PATH", help="The authorization register.")
@click.option(
    "--as-of",
    "as_of",
    type=AsOf(),
    help="The moment the run stands at (UTC); services after it are rejected. Default: now.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Publish rejects.parquet and summary.json here (must not exist).",
)
def validate(
    claims: tuple[str, ...],
    authorizations: str | None,
    as_of: datetime | None,
    out: Path | None,
) -> None:
    """Validate claims (and the register) against the contract; adjudicate nothing."""
    from pipeline.run import publish_validation, validate_files, validation_summary

    try:
        with _sigterm_stops():  # a stop removes the staging directory, as run's does
            if out is not None:
                refuse_existing(out)
            result = validate_files(claims, authorizations, as_of or now_utc())
            summary = validation_summary(result)
            if out is not None:
                publish_validation(result, out)
    except PipelineError as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(_system_error(error, out)) from error
    except (MemoryError, RuntimeError, UnicodeError) as error:
        raise click.ClickException(_ran_out(error)) from error
    except Stopped as stopped:
        if out is None or not out.exists():
            where = "" if out is None else f"; nothing was published to {out}"
            click.echo(f"stopped ({stopped.signal_name}){where}", err=True)
            raise SystemExit(1) from stopped
        click.echo(f"stopped ({stopped.signal_name}) after {out} was published", err=True)
        return
    with _account(None if out is None else f"published {out}"):
        _echo_counts(summary)
        if out is not None:
            click.echo(f"published {out}")


def _system_error(error: OSError, out: Path | None) -> str:
    """A message for what the file system refused (a read-only or full disk, a path
    through a file), in place of a traceback: the system's words and the path; and,
    for a command that publishes, whether anything was."""
    where = f": {error.filename}" if error.filename else ""
    said = f"{error.strerror}{where}" if error.strerror else str(error)
    if out is None:
        return said
    return f"{said}; nothing was published to {out}" if not out.exists() else said


def _observer(log_format: str, quiet: bool) -> Observer:
    """JSON lines when asked; a progress line on a terminal; else nothing."""
    # Click 8.5 deprecated get_text_stream (removed in 9) and serves it through a module
    # __getattr__ typed ``object``; it still returns the text stream.
    stream: TextIO | None = sys.stderr  # None where the scheduler closed it (2>&-)
    if stream is None:
        return Silent()
    if log_format == "json":
        return JsonLog(stream)
    if not quiet and stream.isatty():
        return TerminalProgress(stream)
    return Silent()


HELD = 3
"""Exit code of a run a safety guard held: nothing was published."""


@main.command()
@claims_option
@click.option("--authorizations", required=True, metavar="PATH", help="The authorization register.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The directory to publish (must not exist).",
)
@click.option(
    "--as-of",
    "as_of",
    type=AsOf(),
    help="The moment the run stands at (UTC). Default: now, recorded in the manifest.",
)
@click.option(
    "--ledger",
    type=click.Path(file_okay=False),
    callback=_named,
    help="The units ledger, a directory that outlives runs.",
)
@click.option(
    "--rules", "rules_path", metavar="PATH", help="A rules file replacing the built-in one."
)
@click.option(
    "--max-reject-rate",
    type=RATE,
    default=0.05,
    show_default=True,
    help="Hold the run if more of the claim rows than this are rejected.",
)
@click.option(
    "--max-denial-rate",
    type=RATE,
    default=0.5,
    show_default=True,
    help="Hold the run if more of the lines needing authorization than this are denied.",
)
@click.option(
    "--force", is_flag=True, help="Publish even if a safety guard trips (the manifest says so)."
)
@click.option("--quiet", is_flag=True, help="Print nothing but errors and held-run reasons.")
@workers_option(
    "Processes that read, validate and decide partitions side by side (same output); "
    "the default is two, one on a one-core machine."
)
@partition_rows_option("Claim lines a partition holds: peak memory follows it (same output).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a progress line on a terminal only; json: one JSON object per stage on stderr.",
)
def run(
    *,
    claims: tuple[str, ...],
    authorizations: str,
    out: Path,
    as_of: datetime | None,
    ledger: Path | None,
    rules_path: str | None,
    max_reject_rate: float,
    max_denial_rate: float,
    force: bool,
    quiet: bool,
    workers: int,
    partition_rows: int,
    log_format: str,
) -> None:
    """The nightly job: validate, adjudicate, publish DIR."""
    started_at = now_utc()
    if ledger is not None and Path(os.path.realpath(ledger)).is_relative_to(os.path.realpath(out)):
        # Its entry is written before DIR is published, which would then exist.
        raise click.BadParameter(
            f"{ledger} is inside --out {out}: the ledger outlives runs, so it cannot be "
            "a part of one",
            param_hint="'--ledger'",
        )
    try:
        refuse_existing(out)
        with _sigterm_stops(), started_early(workers, claims, partition_rows):
            # The engine is imported now, while the workers import it too.
            from pipeline.io import sha256_of
            from pipeline.rules import load_rules
            from pipeline.run import RunOptions, publish_run

            options = RunOptions(
                claims=claims,
                authorizations=authorizations,
                as_of=as_of or started_at,
                rules_path=rules_path,
                ledger=ledger,
                max_reject_rate=max_reject_rate,
                max_denial_rate=max_denial_rate,
                force=force,
                workers=workers,
                rows_per_partition=partition_rows,
            )
            rules = load_rules(rules_path)
            observer = _observer(log_format, quiet)
            execution, guards = publish_run(
                options, rules, out, started_at, now_utc, observer=observer
            )
    except Held as held:
        for reason in held.reasons:
            click.echo(f"held: {reason}", err=True)
        click.echo(f"nothing was published to {out}; --force publishes anyway", err=True)
        raise SystemExit(HELD) from held
    except PipelineError as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(_system_error(error, out)) from error
    except (BrokenProcessPool, MemoryError, RuntimeError, UnicodeError) as error:
        raise click.ClickException(f"{_ran_out(error)}; nothing was published to {out}") from error
    except Stopped as stopped:
        if not out.exists():
            click.echo(f"stopped ({stopped.signal_name}); nothing was published to {out}", err=True)
            raise SystemExit(1) from stopped
        click.echo(f"stopped ({stopped.signal_name}) after {out} was published", err=True)
        return
    if quiet:
        return
    with _account(f"published {out} (run {execution.run_id})"):
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        _echo_counts(summary)
        decisions = summary["decisions"]
        click.echo("decisions: " + ", ".join(f"{k} {v}" for k, v in decisions.items()))
        click.echo(f"denied amount: {summary['denied_amount']}")
        for reason in guards:
            click.echo(f"forced past a guard: {reason}")
        # The manifest's digest, for the scheduler's log: an auditor's verify prints it too.
        digest = sha256_of(out / MANIFEST)
        click.echo(f"published {out} (run {execution.run_id}; manifest sha256 {digest})")


@contextlib.contextmanager
def _account(published: str | None) -> Iterator[None]:
    """Printing a command's account. Where it fails (stdout closed, full or its reader
    gone; DIR taken away at once by what waits for it), a command that published
    (``published``: what it says then) still exits 0, saying so on stderr: the run did
    not fail. One that published nothing fails with the system's words."""
    closed = sys.stdout is None  # closed by the scheduler (>&-): click drops every line
    try:
        if closed:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the account goes nowhere)
        yield
        if closed:
            raise OSError(errno.EBADF, "standard output is closed")
    except OSError as error:
        _stdout_to_nowhere()
        if published is None:
            raise click.ClickException(_system_error(error, None)) from error
        with contextlib.suppress(OSError):
            click.echo(
                f"{published}; its account could not be printed: {_system_error(error, None)}",
                err=True,
            )


def _ran_out(error: BaseException) -> str:
    """What a worker's end, a failed allocation or a path the system cannot be given
    means, for the scheduler's log; any other error as it is (a defect: its traceback)."""
    if isinstance(error, UnicodeEncodeError) and isinstance(error.object, str):
        return (
            f"the path {error.object!r} is not UTF-8 text and cannot be given to the reader "
            "or the system (rename it)"
        )
    if isinstance(error, MemoryError) or "can't start new thread" in str(error):
        return "the run ran out of memory (a smaller --partition-rows needs less)"
    if isinstance(error, BrokenProcessPool):
        return (
            "a worker process ended abruptly (killed, or by the system for want of memory: "
            "a smaller --partition-rows needs less)"
        )
    raise error


def _stdout_to_nowhere() -> None:
    """Standard output sent to the null device from here on, so that the interpreter's
    last flush of it fails no more (which would exit 120)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # None: closed at start
        nowhere = os.open(os.devnull, os.O_WRONLY)
        os.dup2(nowhere, sys.stdout.fileno())


@main.command("verify")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@workers_option("As run's: the rerun's processes (same output).")
@partition_rows_option("As run's: the rerun's peak memory follows it (same output).")
def verify_command(directory: Path, workers: int, partition_rows: int) -> None:
    """Recompute DIR from the inputs its manifest names; exit 0 only if byte-identical."""
    # The manifest's digest as verify reads it, for the scheduler's log, whatever follows.
    with contextlib.suppress(OSError):
        digest = hashlib.sha256((directory / MANIFEST).read_bytes()).hexdigest()
        click.echo(f"{directory}: manifest sha256 {digest}")
    try:
        # The rerun's scratch directory is removed on a stop; its workers start first,
        # as run's do, and import the engine while this process checks the inputs.
        with _sigterm_stops(), started_early(workers, _claims_of(directory), partition_rows):
            from pipeline.verify import verify

            verdict = verify(directory, workers=workers, rows_per_partition=partition_rows)
    except PipelineError as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(_system_error(error, None)) from error
    except (BrokenProcessPool, MemoryError, RuntimeError, UnicodeError) as error:
        raise click.ClickException(
            f"{directory}: {_ran_out(error)}; nothing was verified"
        ) from error
    except Stopped as stopped:
        click.echo(
            f"{directory}: stopped ({stopped.signal_name}) before the rerun was done", err=True
        )
        raise SystemExit(1) from stopped
    if verdict.identical:
        click.echo(f"{directory}: run {verdict.run_id} reproduced; every output is byte-identical")
        return
    click.echo(f"{directory}: run {verdict.run_id} NOT reproduced:", err=True)
    for line in verdict.differences:
        click.echo(f"  {line}", err=True)
    raise SystemExit(1)


def _claims_of(directory: Path) -> list[str]:
    """The claims files the manifest in ``directory`` names, as the rerun will find them
    (relative to the run's working directory); none where the manifest cannot be read
    (``verify`` says why)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        where = Path(manifest["working_directory"])
        return [str(where / i["path"]) for i in manifest["inputs"] if i["source"] == "claims"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


@main.command("report")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    callback=_named,
    help="Write the page here instead of DIR/report.html.",
)
def report_command(directory: Path, out: Path | None) -> None:
    """Rebuild report.html, the analysts' page, for the run published in DIR."""
    try:
        written = write_report(directory, out)
    except PipelineError as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(_system_error(error, None)) from error
    click.echo(f"wrote {written}")


def _shaped(
    pattern: str,
    what: str,
    known: tuple[str, Callable[[], frozenset[str]]] | None = None,
    read: Callable[[str], str] = str,
) -> Any:
    """A click callback refusing an option value not of the given shape or, given
    ``known`` (a code set's name and its codes, as ``run`` checks them; ``read`` makes a
    value its set's form), not in that set; the value is passed on trimmed, as ``run``
    trims a CSV value."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        values = value if isinstance(value, tuple) else (value,)
        trimmed = tuple(None if item is None else item.strip(" \t") for item in values)
        for item, given in zip(trimmed, values, strict=True):
            if item is None:
                continue
            if not re.fullmatch(pattern, item.upper()):
                raise click.BadParameter(f"{given!r} is not {what}", ctx, param)
            if known is not None and read(item) not in known[1]():
                raise click.BadParameter(
                    f"{given!r} is not in the {known[0]} code set: run rejects a line with it",
                    ctx,
                    param,
                )
        return trimmed if isinstance(value, tuple) else trimmed[0]

    return callback


def _plan_type(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A plan type read as run reads one: trimmed, in any case."""
    plan = value.strip(" \t").upper()
    if plan not in PLAN_TYPES:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(PLAN_TYPES)}", ctx, param)
    return plan


class ServiceDate(click.ParamType):
    """A date written ``YYYY-MM-DD``, as a claim's dates are (``2026-3-1`` refused)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a real date written YYYY-MM-DD", param, ctx)


@main.command("check-code")
@click.argument("code")
@click.option("--date", "when", type=ServiceDate(), help="Date of service. Default: today (UTC).")
@click.option(
    "--plan-type",
    default="HMO",
    show_default=True,
    callback=_plan_type,
    help=f"One of {', '.join(PLAN_TYPES)}, in any case.",
)
@click.option(
    "--place-of-service",
    callback=_shaped(
        r"\d{2}",
        "a two-digit place of service code",
        ("CMS Place of Service", codesets.place_of_service_codes),
    ),
    help="Where the service is provided (professional claims).",
)
@click.option(
    "--bill-type",
    callback=_shaped(
        r"0?\d{3}",
        "a three-digit type of bill",
        ("UB-04 type of bill", codesets.bill_type_codes),
        read=lambda code: code[-3:],  # 0131 is 131, as run reads it
    ),
    help="UB-04 type of bill (institutional claims).",
)
@click.option(
    "--revenue-code",
    callback=_shaped(
        r"\d{4}", "a four-digit revenue code", ("UB-04 revenue", codesets.revenue_center_codes)
    ),
    help="A revenue code on the same claim (institutional).",
)
@click.option(
    "--diagnosis",
    multiple=True,
    callback=_shaped(r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?", "an ICD-10-CM code"),
    help="An ICD-10-CM diagnosis; repeat for several.",
)
@click.option(
    "--rules", "rules_path", metavar="PATH", help="A rules file replacing the built-in one."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check_code_command(
    *,
    code: str,
    when: date | None,
    plan_type: str,
    place_of_service: str | None,
    bill_type: str | None,
    revenue_code: str | None,
    diagnosis: tuple[str, ...],
    rules_path: str | None,
    as_json: bool,
) -> None:
    """Does CODE need prior authorization, and are medical records required?"""
    from pipeline.codecheck import Service, check_code
    from pipeline.rules import load_rules

    if place_of_service is not None and (bill_type is not None or revenue_code is not None):
        raise click.UsageError(
            "--place-of-service describes a professional claim and --bill-type or "
            "--revenue-code an institutional one; give one or the other."
        )
    if revenue_code is not None and bill_type is None:
        raise click.UsageError(
            "--revenue-code describes an institutional claim, which needs --bill-type: "
            "run rejects an institutional line without a type of bill."
        )
    try:
        rules = load_rules(rules_path)
    except PipelineError as error:
        raise click.ClickException(str(error)) from error
    service = Service(
        hcpcs_code=code,
        date_of_service=when or now_utc().date(),
        plan_type=plan_type,
        place_of_service=place_of_service,
        bill_type=bill_type,
        revenue_code=revenue_code,
        diagnoses=diagnosis,
    )
    answer = check_code(service, rules)
    if as_json:
        click.echo(json.dumps(answer.as_dict(), sort_keys=True))
        return
    click.echo(answer.explanation)
    for name, value in answer.as_dict().items():
        if name != "explanation":
            click.echo(f"  {name}: {'-' if value is None else value}")
