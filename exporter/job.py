"""The delivery job behind `run` and `export`: stages in order, each failure named, one report.

extract -> build -> guard -> export (zips built and validated locally) -> deliver
(S3, or the local outbox) -> record in the history -> email the report. Whatever
happens, the report says which stage ended the run and why; a refusal or failure
leaves the bucket as it was before the delivery stage.

With `changes_since` (a snapshot), a "changes" stage before the export builds that
snapshot with today's project and as-of date, and the export writes only the records
that are new or differ from it. Both sides get today's rules, so the files show what
changed in the data, never what a change to the SQL alone would change; the guard and
the history's `exported` still count every patron in the model.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from exporter.duck import memory_limit
from exporter.errors import ExporterError, GuardError, NotifyError, SnapshotError, UsageError
from exporter.extract import LocalWarehouse, Warehouse
from exporter.project import Project
from exporter.redact import LOG_FORMAT, Redactor
from exporter.report import RunReport
from exporter.settings import MAIL_SETTINGS, S3_SETTINGS, WAREHOUSE_SETTINGS, Settings

if TYPE_CHECKING:  # boto3 and lxml are imported only when a run gets that far
    from exporter.deliver import S3Target
    from exporter.notify import MailSettings

log = logging.getLogger(__name__)

Status = Literal["delivered", "dry-run", "refused", "failed"]

#: Opens a progress display for a stage; the callback counts rows per table or type.
ProgressBar = Callable[[str], AbstractContextManager[Callable[[str, int], None]]]

#: The --changes-since value that means the snapshot of the last delivered run.
LAST_DELIVERED = "last-delivered"


@contextmanager
def _no_progress(_label: str) -> Iterator[Callable[[str, int], None]]:
    yield lambda _name, _n: None


@dataclass
class JobOptions:
    """What `run` and `export` were asked to do."""

    snapshots: Path
    build_dir: Path
    outbox: Path
    as_of: date
    max_xml_bytes: int
    root_element: str | None
    history_file: Path
    dry_run: bool = False
    force: bool = False
    warehouse: Path | None = None  # an explicit local warehouse (flag or PATRONLOAD_WAREHOUSE)
    snapshot: Path | None = None  # export: this snapshot instead of extracting
    extract_first: bool = True
    demo_warehouse: Path = Path("warehouse/demo.duckdb")
    changes_since: Path | None = None  # write only the records new or changed since this
    validate_every_record: bool = False  # lxml on every record, not one per structure


@dataclass
class JobState:
    """What is known so far; the report is written from it whatever the outcome."""

    stage: str = "settings"
    report: RunReport = field(default_factory=RunReport)
    previous: dict[str, Any] | None = None
    destinations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@contextmanager
def captured_log(redactor: Redactor) -> Iterator[io.StringIO]:
    """The run's log at INFO, whatever the terminal shows: it is attached to the report."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.INFO)
    handler.addFilter(redactor)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(min(previous_level or logging.WARNING, logging.INFO))
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def s3_target(settings: Settings) -> S3Target | None:
    if not settings.has(S3_SETTINGS):
        return None
    from exporter.deliver import S3Target

    return S3Target(
        bucket=settings.get("S3_BUCKET_NAME") or "",
        prefix=settings.get("S3_PREFIX") or "",
        endpoint_url=settings.get("AWS_ENDPOINT_URL"),
        region=settings.get("AWS_DEFAULT_REGION"),
    )


def mail_settings(settings: Settings, outbox: Path) -> MailSettings:
    from exporter.notify import MailSettings, parse_recipients

    smtp_port = settings.integer("SMTP_PORT") if settings.get("SMTP_HOST") else 587
    return MailSettings(
        sender=settings.get("SES_SEND_FROM_EMAIL"),
        recipients=parse_recipients(settings.get("SES_RECIPIENT_EMAIL") or ""),
        workspace=settings.workspace,
        smtp_host=settings.get("SMTP_HOST"),
        smtp_port=smtp_port,
        smtp_user=settings.get("SMTP_USER"),
        smtp_password=settings.get("SMTP_PASSWORD"),
        starttls=settings.flag("STARTTLS"),
        ses_region=settings.get("AWS_DEFAULT_REGION"),
        endpoint_url=settings.get("AWS_ENDPOINT_URL"),
        # Only dev may fall back to an email written into the outbox.
        outbox=outbox if settings.is_dev else None,
    )


def oracle_settings(settings: Settings) -> Any:
    """The Oracle connection settings; all five DATA_WAREHOUSE_* must be set."""
    from exporter.oracle import OracleSettings

    missing = [n for n in WAREHOUSE_SETTINGS if settings.get(n) is None]
    if missing:
        raise UsageError(f"the Oracle warehouse needs these settings: {', '.join(missing)}")
    return OracleSettings(
        user=settings.get("DATA_WAREHOUSE_USER") or "",
        password=settings.get("DATA_WAREHOUSE_PASSWORD") or "",
        host=settings.get("DATA_WAREHOUSE_HOST") or "",
        port=settings.integer("DATA_WAREHOUSE_PORT"),
        sid=settings.get("DATA_WAREHOUSE_SID") or "",
        lib_dir=settings.get("ORACLE_LIB_DIR"),
    )


def changes_since_snapshot(value: str | None, history_file: Path, project: str = "") -> Path | None:
    """The snapshot `--changes-since` names: a file, or the last delivered run's.

    Raises:
        UsageError: It is not a readable snapshot, or no delivered run is recorded.
    """
    if value is None:
        return None
    snapshot = Path(value)
    if value == LAST_DELIVERED and not snapshot.exists():
        from exporter.guard import last_delivered
        from exporter.history import read_runs

        previous = last_delivered(read_runs(history_file), project)
        if previous is None:
            raise UsageError(
                f"--changes-since {LAST_DELIVERED}: no delivered run in {history_file}; "
                "deliver a full file first"
            )
        snapshot = Path(previous["snapshot"])
    from exporter.diff import check_snapshot

    try:
        check_snapshot(snapshot)
    except SnapshotError as exc:
        raise UsageError(f"--changes-since: {exc}") from None
    return snapshot


def choose_warehouse(
    project: Project,
    settings: Settings,
    explicit: Path | None,
    demo: Path,
    make_demo: Callable[[Path], None],
) -> Warehouse:
    """An explicit local warehouse, else Oracle when configured, else (dev only) the demo.

    A local warehouse reads its text files as the project's [sources.*] tables say.
    """
    if explicit is not None:
        return LocalWarehouse(explicit, project.file_sources())
    if settings.has(WAREHOUSE_SETTINGS):
        from exporter.oracle import OracleWarehouse

        return OracleWarehouse(oracle_settings(settings))
    if not settings.is_dev:  # settings.require() has said so already; never fall back here
        raise UsageError(f"WORKSPACE={settings.workspace} has no warehouse configured")
    if not demo.exists():
        make_demo(demo)
    return LocalWarehouse(demo, project.file_sources())


def _send_report(
    state: JobState,
    status: Status,
    error: str | None,
    settings: Settings,
    options: JobOptions,
    log_text: str,
) -> str | None:
    """Email the report; a failure to send is logged and changes nothing else."""
    from exporter.notify import RunOutcome, compose, send

    if not settings.is_dev and not settings.has(MAIL_SETTINGS):
        # settings.require() fails a run lacking these; a dry run may go without a report
        log.info("no run report sent: %s not set", " and ".join(MAIL_SETTINGS))
        return None
    try:
        mail = mail_settings(settings, options.outbox)
        outcome = RunOutcome(
            status=status,
            day=options.as_of,
            report=state.report if state.report.extracted else None,
            previous=state.previous,
            destinations=state.destinations,
            stage=state.stage if error else None,
            error=error,
            notes=state.notes,
        )
        where = send(compose(outcome, mail, log_text, settings.secrets()), mail)
    except (NotifyError, UsageError) as exc:
        log.warning("the run report was not sent: %s", exc)
        return None
    except Exception as exc:  # a report must never change the run's result
        log.warning("the run report was not sent: %s: %s", type(exc).__name__, exc)
        log.debug("sending the run report failed", exc_info=True)
        return None
    log.info("run report sent to %s", where)
    return where


def run_job(
    project: Project,
    settings: Settings,
    options: JobOptions,
    *,
    make_demo: Callable[[Path], None],
    progress: ProgressBar | None = None,
    echo: Callable[[str], None] = print,
) -> RunReport:
    """Extract (or take a snapshot), build, guard, export, deliver, record, and report."""
    state = JobState()
    redactor = Redactor(settings.secrets())
    with captured_log(redactor) as log_buffer:
        try:
            _stages(project, settings, options, state, make_demo, progress, echo)
        except ExporterError as exc:
            status: Status = "refused" if isinstance(exc, GuardError) else "failed"
            log.info("%s at %s: %s", status, state.stage, exc)  # the CLI prints the error
            _send_report(
                state, status, redactor.redact(str(exc)), settings, options, log_buffer.getvalue()
            )
            raise
        sent = _send_report(
            state,
            "dry-run" if options.dry_run else "delivered",
            None,
            settings,
            options,
            log_buffer.getvalue(),
        )
    state.report.notes = state.notes
    state.report.report_sent_to = sent or "not sent (see the log)"
    return state.report


def _stages(
    project: Project,
    settings: Settings,
    options: JobOptions,
    state: JobState,
    make_demo: Callable[[Path], None],
    progress: ProgressBar | None,
    echo: Callable[[str], None],
) -> None:
    from exporter.build import build, preflight
    from exporter.datatests import check, run_tests
    from exporter.export import export
    from exporter.extract import extract, latest_snapshot
    from exporter.guard import feed_problems, last_delivered
    from exporter.history import read_runs, record_run
    from exporter.package import Limits

    bar = progress or _no_progress
    report = state.report
    settings.require(
        warehouse=options.extract_first and options.warehouse is None,
        delivery=not options.dry_run,
        mail=not options.dry_run,
    )
    max_drop = settings.share("PATRONLOAD_MAX_DROP")
    memory_limit()  # a bad cap stops the run before anything is written
    if options.changes_since is not None:  # checked by changes_since_snapshot() already
        report.changes_since = str(options.changes_since)
    target = None if options.dry_run else s3_target(settings)
    state.previous = last_delivered(read_runs(options.history_file), str(project.root))
    _check_writable(options.outbox, "outbox")
    client = None
    if target is not None:
        from exporter.deliver import check_bucket, make_client

        client = make_client(target, max_attempts=settings.integer("PATRONLOAD_S3_ATTEMPTS"))
        check_bucket(target, client)  # an unreachable bucket fails before hours of work

    if options.extract_first:
        state.stage = "extract"
        preflight(project)  # every SQL file checked before anything is written
        source = choose_warehouse(
            project, settings, options.warehouse, options.demo_warehouse, make_demo
        )
        log.info("extracting from %s", source.description)
        with bar("extracting") as update:
            extracted = extract(project, source, options.snapshots, on_table=update)
        report.seconds["extract"] = extracted.seconds
        snapshot = extracted.snapshot
        for name, n in extracted.rows.items():
            echo(f"{name}: {n:,} rows extracted")
    else:
        state.stage = "build"
        snapshot = options.snapshot or latest_snapshot(options.snapshots)

    state.stage = "build"
    built = build(project, snapshot, options.build_dir / snapshot.name, options.as_of)
    report.add_build(built)
    log.info("built %s: exported %s", built.database, report.exported)

    state.stage = "test"
    outcomes = run_tests(project, built.database)
    for outcome in outcomes:
        log.info("data test %s", outcome.lines()[0])
        if outcome.status != "pass":
            for line in outcome.lines():
                echo(line)
        if outcome.status == "warn":
            state.notes.append(f"data test warning: {outcome.summary()}")
    check(outcomes)

    state.stage = "guard"
    counted_only = project.settings().counted_only
    problems = feed_problems(report.exported, state.previous, max_drop, counted_only)
    if problems and options.dry_run:
        state.notes += [f"would be refused: {p}" for p in problems]
    elif problems and options.force:
        state.notes += [f"delivered with --force despite: {p}" for p in problems]
    elif problems:
        raise GuardError(
            "refused to deliver: " + "; ".join(problems) + ". Nothing was written or "
            "delivered; the bucket is as it was. If the change is real, rerun with --force"
        )

    with _changes_base(project, options, state) as base_build:
        state.stage = "export"
        stamp = datetime.now(UTC).strftime("%Y-%m-%d_%H.%M.%S")
        with bar("writing users") as update:
            result = export(
                project,
                built,
                options.outbox,
                stamp,
                Limits(max_xml_bytes=options.max_xml_bytes),
                root_element=options.root_element,
                on_users=update,
                base_build=base_build,
                validate_every_record=options.validate_every_record,
            )
    report.add_export(result)
    zips = [z.path for z in result.zips]

    state.stage = "deliver"
    if target is not None:
        from exporter.deliver import deliver

        delivery = deliver(zips, target, client=client)
        state.destinations = delivery.urls()
        report.seconds["deliver"] = delivery.seconds
        if delivery.removed:
            log.info("removed stale zips: %s", ", ".join(delivery.removed))
    else:
        state.destinations = [str(p.resolve()) for p in zips]
    report.destinations = state.destinations

    state.stage = "record"
    where = f"s3://{target.bucket}/{target.key('')}" if target else str(options.outbox.resolve())
    record_run(
        options.history_file,
        report,
        built.database,
        where,
        delivered=not options.dry_run,
        keys=state.destinations,
        workspace=settings.workspace,
        project=str(project.root),
    )


@contextmanager
def _changes_base(project: Project, options: JobOptions, state: JobState) -> Iterator[Path | None]:
    """The build of the --changes-since snapshot, made as today's (same project, same
    as-of date) in a scratch folder beside the builds, removed afterwards; None for a
    full run. A build of that snapshot already in the build folder is left alone: it
    may have another date or older rules, and `explain` reads it.
    """
    if options.changes_since is None:
        yield None
        return
    from exporter.build import build

    state.stage = "changes"
    with tempfile.TemporaryDirectory(prefix=".changes-since-", dir=options.build_dir) as scratch:
        base = options.changes_since
        built = build(project, base, Path(scratch) / base.name, options.as_of)
        state.report.seconds["changes"] = built.seconds
        log.info("built %s as the base of the changes in %.2fs", base, built.seconds)
        yield built.database


def _check_writable(folder: Path, what: str) -> None:
    """Fail before any work when a folder we will write to cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".patronload-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"the {what} {folder} cannot be written: {exc.strerror}") from None
