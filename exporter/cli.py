"""The `patronload` command: a thin layer over the stages that turns errors into messages."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import duckdb

from exporter import __version__
from exporter.errors import ExporterError, UsageError
from exporter.project import Project, load_project

log = logging.getLogger("exporter")

DEMO_WAREHOUSE = Path("warehouse/demo.duckdb")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """Turns expected failures into `Error: ...` and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExporterError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except duckdb.Error as exc:  # a database failure no stage anticipated
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(
                f"Error: unexpected database error: {first} (run with -v for the log)", err=True
            )
            log.debug("unexpected database error", exc_info=True)
            ctx.exit(1)


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


def _resolve_warehouse(warehouse: Path | None) -> Path:
    """The warehouse to read: the one named, or the demo warehouse, made if missing."""
    if warehouse is not None:
        return warehouse
    if not DEMO_WAREHOUSE.exists():
        from exporter.demo import write_demo_warehouse
        from exporter.sources import load_sources

        DEMO_WAREHOUSE.parent.mkdir(parents=True, exist_ok=True)
        click.echo(f"creating the demo warehouse {DEMO_WAREHOUSE} (5,000 people)", err=True)
        write_demo_warehouse(DEMO_WAREHOUSE, load_sources(load_project()), 5000, 1)
    return DEMO_WAREHOUSE


def _check_writable(folder: Path, what: str) -> None:
    """Fail before any work when a folder we will write to cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".patronload-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"the {what} {folder} cannot be written: {exc.strerror}") from None


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="patronload")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PATRONLOAD_PROJECT",
    help="Project folder with queries/ and schemas/ (default: the built-in project).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every step to stderr.")
@click.pass_context
def cli(ctx: click.Context, project: Path | None, verbose: bool) -> None:
    """Build Alma SIS user files from a data warehouse, and explain what happened.

    Example: patronload run --as-of 2026-03-01
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.ensure_object(dict)
    ctx.obj["project"] = load_project(project)


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

    source = _resolve_warehouse(warehouse)
    with _progress("extracting") as update:
        result = extract(_project(ctx), source, snapshots, on_table=update)
    for name, n in result.rows.items():
        click.echo(f"{name}: {n:,} rows extracted", err=True)
    ctx.obj["extract_seconds"] = result.seconds
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


def export_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `export` and `run` share, handed on to `_export_and_report`."""
    for option in reversed([BUILD_DIR, OUTBOX, AS_OF, MAX_XML, ROOT, JSON, HISTORY]):
        command = option(command)
    return command


def _export_and_report(
    ctx: click.Context,
    snapshot: Path,
    *,
    build_dir: Path,
    outbox: Path,
    as_of: str | None,
    max_xml_bytes: int,
    root_element: str | None,
    as_json: bool,
    history_file: Path,
) -> None:
    from exporter.export import export
    from exporter.history import record_run
    from exporter.package import Limits
    from exporter.report import RunReport

    stamp = datetime.now(UTC).strftime("%Y-%m-%d_%H.%M.%S")
    report = RunReport()
    if "extract_seconds" in ctx.obj:
        report.seconds["extract"] = ctx.obj["extract_seconds"]
    _check_writable(outbox, "outbox")
    built = _build(ctx, snapshot, build_dir, _as_of(as_of))
    report.add_build(built)
    with _progress("writing users") as update:
        result = export(
            _project(ctx),
            built,
            outbox,
            stamp,
            Limits(max_xml_bytes=max_xml_bytes),
            root_element=root_element,
            on_users=update,
        )
    report.add_export(result)
    record_run(history_file, report, built.database, str(outbox.resolve()))
    click.echo(report.to_json() if as_json else "\n".join(report.lines()))


@cli.command("export", context_settings=CONTEXT)
@SNAPSHOT
@SNAPSHOTS
@export_options
@click.pass_context
def export_cmd(
    ctx: click.Context, /, snapshot: Path | None, snapshots: Path, **options: Any
) -> None:
    """Build the models on a snapshot and write validated zips to the outbox.

    Example: patronload export --outbox outbox --as-of 2026-03-01
    """
    _as_of(options["as_of"])  # a bad date fails before any work
    _export_and_report(ctx, _snapshot(snapshot, snapshots), **options)


@cli.command(context_settings=CONTEXT)
@WAREHOUSE
@SNAPSHOTS
@export_options
@click.pass_context
def run(ctx: click.Context, /, warehouse: Path | None, snapshots: Path, **options: Any) -> None:
    """Extract, build and export in one go: the daily job.

    Example: patronload run --warehouse warehouse/demo.duckdb --outbox outbox
    """
    from exporter.build import preflight

    _as_of(options["as_of"])  # a bad date fails before any work
    preflight(_project(ctx))  # every SQL file checked before anything is written
    _check_writable(options["outbox"], "outbox")
    snapshot = _extract(ctx, warehouse, snapshots)
    _export_and_report(ctx, snapshot, **options)


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
    shown = [n for n in names if n != "explanation"]
    widths = [max([len(n)] + [len(str(r[i] or "")) for r in rows]) for i, n in enumerate(shown)]
    click.echo("  ".join(n.ljust(w) for n, w in zip(shown, widths, strict=True)).rstrip())
    for row in rows:
        cells = [str(v if v is not None else "") for v in row[: len(shown)]]
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
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


def main() -> None:
    """Entry point of the `patronload` script."""
    cli(prog_name="patronload")
