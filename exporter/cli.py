"""The `patronload` command: a thin layer over the stages that turns errors into messages."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import duckdb

from exporter import __version__
from exporter.errors import ExporterError, SourceError, UsageError
from exporter.project import Project, load_project
from exporter.redact import LOG_FORMAT, Redactor
from exporter.settings import Settings, load_settings

if TYPE_CHECKING:
    from exporter.extract import Warehouse

log = logging.getLogger("exporter")

DEMO_WAREHOUSE = Path("warehouse/demo.duckdb")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """Turns expected failures into `Error: ...` and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExporterError as exc:
            _to_sentry(ctx, exc)
            click.echo(f"Error: {_redact(ctx, str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except duckdb.Error as exc:  # a database failure no stage anticipated
            _to_sentry(ctx, exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(
                f"Error: unexpected database error: {_redact(ctx, first)} "
                "(run with -v for the log)",
                err=True,
            )
            log.debug("unexpected database error", exc_info=True)
            ctx.exit(1)
        except Exception as exc:  # a bug: Sentry hears of it, the traceback stays
            _to_sentry(ctx, exc)
            raise


def _redact(ctx: click.Context, text: str) -> str:
    redactor = (ctx.obj or {}).get("redactor")
    return redactor.redact(text) if redactor else text


def _to_sentry(ctx: click.Context, exc: BaseException) -> None:
    """Report an exception to Sentry when SENTRY_DSN is set, and wait for it to leave."""
    if not (ctx.obj or {}).get("sentry"):
        return
    import sentry_sdk

    sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=5)


def _as_of(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--as-of: {value!r} is not a date like 2026-03-01") from None


def _progress_enabled() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str, int], None]]:
    """A progress line on a terminal; nothing at all in cron or CI."""
    if not _progress_enabled():
        yield lambda _name, _n: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
        console=_stderr_console(),
    ) as bar:
        task = bar.add_task(label)
        counts: dict[str, int] = {}

        def update(name: str, n: int) -> None:
            counts[name] = counts.get(name, 0) + n
            done = ", ".join(f"{k} {v:,}" for k, v in counts.items())
            bar.update(task, description=f"{label}: {done}")

        yield update


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _project(ctx: click.Context) -> Project:
    return ctx.obj["project"]  # type: ignore[no-any-return]


def _demo_warehouse(project: Project) -> Path:
    """Where dev keeps a project's demo data: the built-in demo, or the project's own."""
    if project.root == load_project().root:
        return DEMO_WAREHOUSE
    return Path("warehouse") / project.root.name


def _demo_maker(project: Project) -> Callable[[Path], None]:
    """How to make the demo data: the built-in generator, or the project's [demo] generator."""

    def make(path: Path) -> None:
        import subprocess

        path.parent.mkdir(parents=True, exist_ok=True)
        click.echo(f"creating the demo warehouse {path} (5,000 people)", err=True)
        if path == DEMO_WAREHOUSE:
            from exporter.demo import write_demo_warehouse
            from exporter.sources import load_sources

            write_demo_warehouse(path, load_sources(project), 5000, 1)
            return
        generator = project.demo_generator()
        if generator is None:
            raise UsageError(
                f"{project.root} has no demo data: give --warehouse, or name a generator "
                'in patronload.toml ([demo] generator = "script.py")'
            )
        done = subprocess.run(
            [sys.executable, str(generator), str(path), "--people", "5000"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SourceError(f"{generator}: the demo generator failed: {last}")

    return make


def _settings(ctx: click.Context, **flags: str | None) -> Settings:
    """The settings with this command's own flags on top of the global ones."""
    if not any(v is not None for v in flags.values()):
        return ctx.obj["settings"]  # type: ignore[no-any-return]
    return load_settings({**ctx.obj["flags"], **flags}, ctx.obj["env_file"])


def _warehouse(ctx: click.Context, warehouse: Path | None) -> Warehouse:
    """The warehouse extract reads: --warehouse, else Oracle if configured, else (dev) demo."""
    from exporter.job import choose_warehouse

    settings = _settings(ctx)
    settings.require(warehouse=warehouse is None, delivery=False, mail=False)
    project = _project(ctx)
    return choose_warehouse(
        project, settings, warehouse, _demo_warehouse(project), _demo_maker(project)
    )


def _setup_logging(verbose: bool, level_name: str, redactor: Redactor) -> None:
    """stderr shows LOG_LEVEL (INFO with -v); the run's own log capture sees INFO anyway."""
    level = logging.INFO if verbose else logging.getLevelNamesMapping().get(level_name.upper())
    if level is None:
        raise UsageError(f"LOG_LEVEL: {level_name!r} is not DEBUG, INFO, WARNING or ERROR")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.addFilter(redactor)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _start_sentry(settings: Settings) -> bool:
    dsn = settings.get("SENTRY_DSN")
    if not dsn:
        return False
    import sentry_sdk

    # An event is scrubbed as JSON text, so each secret is looked for as JSON writes it.
    redactor = Redactor(json.dumps(s)[1:-1] for s in settings.secrets())

    def scrub(event: Any, _hint: Any) -> Any:
        return json.loads(redactor.redact(json.dumps(event, default=str)))

    sentry_sdk.init(
        dsn=dsn,
        environment=settings.workspace,
        release=f"patronload@{__version__}",
        send_default_pii=False,
        before_send=scrub,
    )
    return True


@click.group(cls=Group, context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="patronload")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PATRONLOAD_PROJECT",
    help="Project folder with queries/ and schemas/ (default: the built-in project).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="PATRONLOAD_ENV_FILE",
    help="Settings file of NAME=value lines (default: .env here, if there is one).",
)
@click.option(
    "--workspace",
    type=click.Choice(["dev", "stage", "prod"]),
    help="Overrides WORKSPACE. Only dev falls back to demo data and a local outbox.",
)
@click.option(
    "-t",
    "--database-connection-test",
    "connection_test",
    is_flag=True,
    help="Only connect to the Oracle warehouse and print its version (same as db-test).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every step to stderr.")
@click.pass_context
def cli(
    ctx: click.Context,
    project: Path | None,
    env_file: Path | None,
    workspace: str | None,
    connection_test: bool,
    verbose: bool,
) -> None:
    """Build Alma SIS user files from a data warehouse, and explain what happened.

    Example: patronload run --as-of 2026-03-01
    """
    ctx.ensure_object(dict)
    if env_file is None and Path(".env").is_file():
        env_file = Path(".env")
    flags = {"WORKSPACE": workspace}
    settings = load_settings(flags, env_file)
    redactor = Redactor(settings.secrets())
    ctx.obj.update(flags=flags, env_file=env_file, settings=settings, redactor=redactor)
    _setup_logging(verbose, settings.get("LOG_LEVEL") or "WARNING", redactor)
    ctx.obj["sentry"] = _start_sentry(settings)
    ctx.obj["project"] = load_project(project)
    if connection_test:
        ctx.invoke(db_test)
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


SNAPSHOTS = click.option(
    "--snapshots",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("snapshots"),
    envvar="PATRONLOAD_SNAPSHOTS",
    show_default=True,
    help="Folder of dated snapshots.",
)
WAREHOUSE = click.option(
    "--warehouse",
    type=click.Path(path_type=Path),
    envvar="PATRONLOAD_WAREHOUSE",
    help="A DuckDB warehouse file or a folder of <TABLE>.csv files (default: the demo warehouse).",
)
SNAPSHOT = click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Snapshot file to use (default: the latest in --snapshots).",
)
OUTBOX = click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("outbox"),
    envvar="PATRONLOAD_OUTBOX",
    show_default=True,
    help="Folder the zips are written to.",
)
AS_OF = click.option(
    "--as-of", help="Run date for expiry and purge dates, YYYY-MM-DD (default: today, UTC)."
)
BUILD_DIR = click.option(
    "--build-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    envvar="PATRONLOAD_BUILD_DIR",
    show_default=True,
    help="Folder of model databases.",
)
MAX_XML = click.option(
    "--max-xml-bytes",
    type=click.IntRange(min=1024),
    default=1 << 30,
    show_default=True,
    envvar="PATRONLOAD_MAX_XML_BYTES",
    help="Split a patron type's XML into several files past this size.",
)
ROOT = click.option(
    "--root-element",
    envvar="PATRONLOAD_ROOT_ELEMENT",
    help="Root element of each XML file (default: root_element in patronload.toml).",
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON line.")
RESULT_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
HISTORY = click.option(
    "--history",
    "history_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("history/runs.jsonl"),
    envvar="PATRONLOAD_HISTORY",
    show_default=True,
    help="The run history (one JSON line per finished export).",
)


@cli.command("demo-warehouse", context_settings=CONTEXT)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--patrons",
    type=click.IntRange(min=100),
    default=5000,
    show_default=True,
    help="People in the warehouse (at least 100).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same file.")
@click.pass_context
def demo_warehouse(ctx: click.Context, path: Path, patrons: int, seed: int) -> None:
    """Write a deterministic demo warehouse of fake people to PATH.

    Example: patronload demo-warehouse warehouse/demo.duckdb --patrons 100000
    """
    from exporter.demo import write_demo_warehouse
    from exporter.sources import load_sources

    counts = write_demo_warehouse(path, load_sources(_project(ctx)), patrons, seed)
    for table, n in counts.items():
        click.echo(f"{table}: {n:,} rows")
    click.echo(str(path))


def _extract(ctx: click.Context, warehouse: Path | None, snapshots: Path) -> Path:
    from exporter.extract import extract

    source = _warehouse(ctx, warehouse)
    with _progress("extracting") as update:
        result = extract(_project(ctx), source, snapshots, on_table=update)
    for name, n in result.rows.items():
        click.echo(f"{name}: {n:,} rows extracted", err=True)
    return result.snapshot


@cli.command(context_settings=CONTEXT)
@WAREHOUSE
@SNAPSHOTS
@click.pass_context
def extract(ctx: click.Context, warehouse: Path | None, snapshots: Path) -> None:
    """Copy the warehouse into a new dated snapshot; print its path last.

    Example: patronload extract --warehouse tests/fixtures/rules
    """
    click.echo(str(_extract(ctx, warehouse, snapshots)))


def _snapshot(snapshot: Path | None, snapshots: Path) -> Path:
    from exporter.extract import latest_snapshot

    return snapshot if snapshot is not None else latest_snapshot(snapshots)


def _build(ctx: click.Context, snapshot: Path, build_dir: Path, as_of: date) -> Any:
    from exporter.build import build

    return build(_project(ctx), snapshot, build_dir / snapshot.name, as_of)


@cli.command("build", context_settings=CONTEXT)
@SNAPSHOT
@SNAPSHOTS
@BUILD_DIR
@AS_OF
@click.pass_context
def build_cmd(
    ctx: click.Context, snapshot: Path | None, snapshots: Path, build_dir: Path, as_of: str | None
) -> None:
    """Build the SQL models on a snapshot and check that no row is lost.

    Example: patronload build --snapshot snapshots/2026-03-01T060000.000000Z.duckdb
    """
    built = _build(ctx, _snapshot(snapshot, snapshots), build_dir, _as_of(as_of))
    for name, n in built.model_rows.items():
        click.echo(f"{name:<24}{'view':>10}" if n is None else f"{name:<24}{n:>10,} rows")
    click.echo(str(built.database))


DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="Review mode: build and validate into the outbox only; never touch the bucket.",
)
FORCE = click.option(
    "--force",
    is_flag=True,
    help="Deliver even if a patron type is empty or shrank more than --max-drop.",
)
MAX_DROP = click.option(
    "--max-drop",
    help="Largest share a patron type may shrink by since the last delivery "
    "(PATRONLOAD_MAX_DROP, default 0.10).",
)


CHANGES_SINCE = click.option(
    "--changes-since",
    metavar="SNAPSHOT",
    help="Write only the patrons new or changed since this snapshot (or 'last-delivered': "
    "the last delivered run's), into <type>_changes_<time>.zip; both sides are built with "
    "today's SQL and --as-of, so only data changes count. Default: every patron.",
)


VALIDATE_ALL = click.option(
    "--validate-every-record",
    is_flag=True,
    help="Validate every record with lxml (about 50 CPU-seconds per million). Default: "
    "lxml validates the first record of each structure and every record whose values "
    "SQL cannot prove valid for their schema types; the rest are proven in SQL.",
)


def export_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `export` and `run` share, handed on to `_job`."""
    options = [
        BUILD_DIR,
        OUTBOX,
        AS_OF,
        MAX_XML,
        ROOT,
        DRY_RUN,
        FORCE,
        MAX_DROP,
        CHANGES_SINCE,
        VALIDATE_ALL,
        JSON,
        HISTORY,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _job(
    ctx: click.Context,
    *,
    max_drop: str | None,
    as_json: bool,
    as_of: str | None,
    changes_since: str | None,
    **options: Any,
) -> None:
    from exporter.job import JobOptions, changes_since_snapshot, run_job

    job = JobOptions(
        as_of=_as_of(as_of),
        demo_warehouse=_demo_warehouse(_project(ctx)),
        # checked here, before the run starts, so a wrong value writes nothing at all
        changes_since=changes_since_snapshot(
            changes_since, options["history_file"], str(_project(ctx).root)
        ),
        **options,
    )
    settings = _settings(ctx, PATRONLOAD_MAX_DROP=max_drop)

    report = run_job(
        _project(ctx),
        settings,
        job,
        make_demo=_demo_maker(_project(ctx)),
        progress=_progress,
        echo=lambda line: click.echo(line, err=True),
    )
    click.echo(report.to_json() if as_json else "\n".join(report.lines()))


@cli.command("export", context_settings=CONTEXT)
@SNAPSHOT
@SNAPSHOTS
@export_options
@click.pass_context
def export_cmd(ctx: click.Context, /, **options: Any) -> None:
    """Build the models on a snapshot, write validated zips, deliver them and report.

    Delivery goes to S3 when S3_BUCKET_NAME and S3_PREFIX are set, else the outbox.
    With --changes-since only the patrons new or changed since that snapshot are
    written (a daily incremental load; removed people are not in such a file).

    Example: patronload export --snapshot snapshots/2026-03-01T060000.000000Z.duckdb --dry-run
    """
    _job(ctx, extract_first=False, **options)


@cli.command(context_settings=CONTEXT)
@WAREHOUSE
@SNAPSHOTS
@export_options
@click.pass_context
def run(ctx: click.Context, /, **options: Any) -> None:
    """Extract, build, export, deliver and report in one go: the daily job.

    Example: patronload run --warehouse warehouse/demo.duckdb --outbox outbox
    """
    _job(ctx, extract_first=True, **options)


@cli.command("config", context_settings=CONTEXT)
@click.pass_context
def config_cmd(ctx: click.Context) -> None:
    """Print every setting's effective value (secrets masked) and where it came from.

    Example: patronload --env-file prod.env config
    """
    settings = _settings(ctx)
    where = f"settings file: {settings.env_file}" if settings.env_file else "no settings file"
    click.echo(where)
    for line in settings.lines():
        click.echo(line)


@cli.command("db-test", context_settings=CONTEXT)
@click.pass_context
def db_test(ctx: click.Context) -> None:
    """Only connect to the Oracle warehouse and print its version.

    Example: patronload db-test   (or: patronload -t)
    """
    from exporter.job import oracle_settings
    from exporter.oracle import server_version

    version = server_version(oracle_settings(_settings(ctx)))
    message = f"Successfully connected to Oracle Database version: {version}"
    logging.getLogger("exporter.oracle").info(message)
    click.echo(message)


@cli.command(context_settings=CONTEXT)
@click.argument("zips", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, zips: tuple[Path, ...]) -> None:
    """Check every XML file in the zips against the project's schema, streaming.

    Example: patronload validate outbox/*.zip
    """
    from exporter.validate import count_users, validate_zips

    problems = validate_zips(list(zips), _project(ctx).xsd_file)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.exceptions.Exit(1)
    for path in zips:
        click.echo(f"{path}: valid, {count_users(path):,} users")


@cli.command(context_settings=CONTEXT)
@click.option(
    "--patrons",
    type=click.IntRange(min=100),
    default=1_000_000,
    show_default=True,
    help="Patrons of the large run; a 100,000 run is measured too, to show the growth.",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the scratch data (default: the system's temporary folder).",
)
def bench(patrons: int, work: Path | None) -> None:
    """Time extract, build and export on a demo warehouse against zlib's own speed.

    Example: patronload bench --patrons 200000
    """
    from exporter.bench import run, table

    sizes = sorted({min(100_000, patrons), patrons})
    results = run(sizes, work)
    click.echo("\n".join(table(results)))
    click.echo(json.dumps({"bench": results}))


def _built(ctx: click.Context, snapshot: Path, build_dir: Path) -> Path:
    """The build of a snapshot, made now (as of today) if there is none yet."""
    database = build_dir / snapshot.name
    if not database.is_file():
        click.echo(f"building {snapshot.name} first", err=True)
        _build(ctx, snapshot, build_dir, datetime.now(UTC).date())
    return database


@cli.command(context_settings=CONTEXT)
@click.argument("query")
@SNAPSHOT
@SNAPSHOTS
@BUILD_DIR
@HISTORY
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_context
def explain(
    ctx: click.Context,
    query: str,
    snapshot: Path | None,
    snapshots: Path,
    build_dir: Path,
    history_file: Path,
    as_json: bool,
) -> None:
    """Why a person was or was not exported: verdict, sources, record, file, history.

    QUERY is a primary id, MIT ID, barcode, email or name (case does not matter).

    Example: patronload explain jdoe@mit.edu
    """
    from exporter.explain import explain as run_explain
    from exporter.extract import SNAPSHOT_GLOB
    from exporter.history import read_runs

    chosen = _snapshot(snapshot, snapshots)
    answer = run_explain(
        _project(ctx),
        chosen,
        _built(ctx, chosen, build_dir),
        query,
        read_runs(history_file),
        sorted(snapshots.glob(SNAPSHOT_GLOB)) if snapshots.is_dir() else [chosen],
        build_dir,
    )
    click.echo(answer.to_json() if as_json else "\n".join(answer.lines()))
    if not answer.people:
        raise click.exceptions.Exit(1)


@cli.command(context_settings=CONTEXT)
@SNAPSHOT
@SNAPSHOTS
@BUILD_DIR
@click.option("--reason", help="Only this reason code, e.g. student_is_staff.")
@click.option(
    "--csv", "as_csv", is_flag=True, help="Write CSV (for the people who fix source data)."
)
@click.pass_context
def rejections(
    ctx: click.Context,
    snapshot: Path | None,
    snapshots: Path,
    build_dir: Path,
    reason: str | None,
    as_csv: bool,
) -> None:
    """The rows of a snapshot that are not exported, with their reasons.

    Example: patronload rejections --reason student_is_staff --csv > fix-these.csv
    """
    import csv

    from exporter.duck import connect, quote

    settings = _project(ctx).settings()
    database = _built(ctx, _snapshot(snapshot, snapshots), build_dir)
    with connect(database, read_only=True) as con:
        cur = con.execute(
            f"SELECT j.*, r.explanation FROM {quote(settings.rejections_model)} j "
            f"LEFT JOIN {quote(settings.reasons_seed)} r ON r.reason = j.reason "
            "WHERE ? IS NULL OR j.reason = ? ORDER BY ALL",
            [reason, reason],
        )
        names = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
        return
    from exporter.text import table

    shown = [n for n in names if n != "explanation"]
    for line in table(shown, [row[: len(shown)] for row in rows]):
        click.echo(line)
    click.echo(f"{len(rows):,} row(s)")


@cli.command("diff", context_settings=CONTEXT)
@click.argument("old", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", required=False, type=click.Path(dir_okay=False, path_type=Path))
@SNAPSHOTS
@AS_OF
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="People listed after the counts.",
)
@RESULT_JSON
@click.pass_context
def diff_cmd(
    ctx: click.Context,
    old: Path | None,
    new: Path | None,
    snapshots: Path,
    as_of: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Patrons added, removed and changed per type between two snapshots.

    OLD and NEW default to the last two snapshots. Both are built with the same
    as-of date, so only real changes show.

    Example: patronload diff --limit 20
    """
    from exporter.diff import diff_snapshots
    from exporter.extract import SNAPSHOT_GLOB

    if old is None or new is None:
        found = sorted(snapshots.glob(SNAPSHOT_GLOB)) if snapshots.is_dir() else []
        if len(found) < 2:
            raise UsageError(f"diff needs two snapshots; {snapshots} has {len(found)}")
        old, new = (old or found[-2], new or found[-1]) if old is None else (old, found[-1])
    result = diff_snapshots(_project(ctx), old, new, _as_of(as_of), limit)
    click.echo(result.to_json() if as_json else "\n".join(result.lines()))


@cli.command(context_settings=CONTEXT)
@click.argument("query")
@click.option(
    "--in",
    "zip_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A zip written by export.",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def find(query: str, zip_path: Path, limit: int) -> None:
    """Print the records of a produced zip that match QUERY, without extracting it.

    Example: patronload find jdoe@mit.edu --in outbox/staff_2026-03-01_06.00.00.zip
    """
    from exporter.findzip import find_in_zip, pretty

    matches = find_in_zip(zip_path, query, limit)
    for m in matches:
        click.echo(f"{m.zip_path} > {m.member}, record {m.record:,}")
        click.echo(pretty(m.xml))
    if not matches:
        click.echo(f"no record in {zip_path} matches {query!r}")
        raise click.exceptions.Exit(1)


@cli.command("history", context_settings=CONTEXT)
@HISTORY
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON lines.")
def history_cmd(history_file: Path, as_json: bool) -> None:
    """One line per finished run: when, counts per type, rejections, where it went.

    Example: patronload history
    """
    from exporter.history import history_lines, read_runs

    runs = read_runs(history_file)
    if as_json:
        for run_entry in runs:
            click.echo(json.dumps(run_entry, sort_keys=True))
        return
    for line in history_lines(runs):
        click.echo(line)
    if not runs:
        click.echo(f"no runs recorded in {history_file}")


@cli.command("test", context_settings=CONTEXT)
@SNAPSHOT
@SNAPSHOTS
@BUILD_DIR
@AS_OF
@click.pass_context
def test_cmd(
    ctx: click.Context, snapshot: Path | None, snapshots: Path, build_dir: Path, as_of: str | None
) -> None:
    """Build the models on a snapshot and run the data tests (built-in and queries/tests/).

    Exit 1 if a test fails; warnings are shown but do not fail.

    Example: patronload test --snapshot snapshots/2026-03-01T060000.000000Z.duckdb
    """
    from exporter.datatests import check, run_tests

    built = _build(ctx, _snapshot(snapshot, snapshots), build_dir, _as_of(as_of))
    outcomes = run_tests(_project(ctx), built.database)
    for outcome in outcomes:
        click.echo("\n".join(outcome.lines()))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("pass", "warn", "fail")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
    check(outcomes)


@cli.command("preview", context_settings=CONTEXT)
@click.argument("queries", nargs=-1)
@click.option("--type", "patron_type", help="Only this patron type, e.g. staff.")
@click.option("--limit", type=click.IntRange(min=1), default=3, show_default=True)
@SNAPSHOT
@SNAPSHOTS
@AS_OF
@click.pass_context
def preview_cmd(
    ctx: click.Context,
    queries: tuple[str, ...],
    patron_type: str | None,
    limit: int,
    snapshot: Path | None,
    snapshots: Path,
    as_of: str | None,
) -> None:
    """The XML that would be sent for a few patrons, straight from the models.

    QUERY is a primary id, MIT ID, barcode, email or name, as for explain. The models
    are built fresh on the snapshot (default: the latest) from the SQL as it is now.

    Example: patronload preview --type student --limit 2
    """
    import tempfile

    from exporter.preview import preview

    with tempfile.TemporaryDirectory(prefix="patronload-preview-") as scratch:
        # built aside, so a preview never replaces the build that explain reads
        built = _build(ctx, _snapshot(snapshot, snapshots), Path(scratch), _as_of(as_of))
        records = preview(_project(ctx), built.database, list(queries), patron_type, limit)
    for record in records:
        click.echo(f"<!-- {record.patron_type} {record.record_key} -->")
        click.echo(record.xml)
    if not records:
        click.echo("no patron matches", err=True)
        raise click.exceptions.Exit(1)


@cli.command("models", context_settings=CONTEXT)
@SNAPSHOT
@SNAPSHOTS
@BUILD_DIR
@click.pass_context
def models_cmd(ctx: click.Context, snapshot: Path | None, snapshots: Path, build_dir: Path) -> None:
    """The models in dependency order, what each reads, and its rows on the latest build.

    Example: patronload models
    """
    from exporter.models import load_models

    models = load_models(_project(ctx))
    counts: dict[str, int | None] = {}
    try:
        database = _built(ctx, _snapshot(snapshot, snapshots), build_dir)
    except ExporterError as exc:
        click.echo(f"(no row counts: {exc})", err=True)
    else:
        from exporter.duck import connect, quote

        with connect(database, read_only=True) as con:
            for m in models:
                (n,) = con.execute(f"SELECT count(*) FROM {quote(m.name)}").fetchone() or (0,)
                counts[m.name] = int(n)
    width = max(len(m.name) for m in models)
    for m in models:
        rows = f"{counts[m.name]:>10,}" if m.name in counts else f"{'':>10}"
        kind = "view" if m.is_view else "table"
        click.echo(f"{m.name:<{width}}  {kind:<5} {rows}  reads {', '.join(m.reads)}")


@cli.command("lint", context_settings=CONTEXT)
@click.pass_context
def lint_cmd(ctx: click.Context) -> None:
    """Check every SQL file of queries/ without running anything: syntax, tables, columns.

    Each problem is printed as file:line:col: message; exit 1 if there is any.

    Example: patronload lint
    """
    from exporter.lint import lint_project

    result = lint_project(_project(ctx))
    for problem in result.problems:
        click.echo(str(problem))
    if result.problems:
        click.echo(f"{len(result.problems)} problem(s) in {result.files} file(s)", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{result.files} file(s) checked, no problems")


@cli.command("impact", context_settings=CONTEXT)
@click.option("--base", default="HEAD", show_default=True, help="Git revision to compare with.")
@SNAPSHOT
@SNAPSHOTS
@AS_OF
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Examples shown side by side per kind of change.",
)
@RESULT_JSON
@click.pass_context
def impact_cmd(
    ctx: click.Context,
    base: str,
    snapshot: Path | None,
    snapshots: Path,
    as_of: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """What a change to queries/ does to the records: the models at --base and as they
    are now, built on the same snapshot and compared. Nothing is delivered.

    Example: patronload impact --base main
    """
    from exporter.impact import impact

    result = impact(_project(ctx), _snapshot(snapshot, snapshots), base, _as_of(as_of), limit)
    click.echo(result.to_json() if as_json else "\n".join(result.lines()))


@cli.command("lineage", context_settings=CONTEXT)
@click.argument("element")
@RESULT_JSON
@click.pass_context
def lineage_cmd(ctx: click.Context, element: str, as_json: bool) -> None:
    """Which source columns and SQL files feed an XML element.

    ELEMENT is an element name of the record, or a dotted path of them
    (parent.child) when a name is used in several places.

    Example: patronload lineage <element>
    """
    from exporter.lineage import lineage

    result = lineage(_project(ctx), element)
    click.echo(result.to_json() if as_json else "\n".join(result.lines()))


def main() -> None:
    """Entry point of the `patronload` script."""
    cli(prog_name="patronload")
