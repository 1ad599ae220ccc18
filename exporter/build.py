"""Build stage: seeds, macros and models in DuckDB, on a snapshot attached read-only.

The build database is separate from the snapshot (which stays write-once). It is
written under a temporary name and renamed, so a failed build leaves the previous
one, if any, untouched.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from exporter.duck import connect, first_line, limit_memory, one_thread, quote, write_once
from exporter.errors import BuildError, SnapshotError
from exporter.models import RUN_CONTEXT, load_models, load_seeds
from exporter.project import ExportSettings, Project
from exporter.sources import load_extracts, load_sources

log = logging.getLogger(__name__)

#: How the final model is stored, and so the order records are written in.
EXPORT_ORDER = "patron_type, record_key"


@dataclass(frozen=True)
class Accounting:
    """Rows of one patron type through the pipeline."""

    patron_type: str
    extracted: int
    exported: int
    rejected: int


@dataclass(frozen=True)
class BuildResult:
    """A finished build database and what it holds."""

    database: Path
    snapshot: Path
    as_of: date
    model_rows: dict[str, int | None]  # None for a view
    accounting: list[Accounting]
    rejections: dict[tuple[str, str], int]
    seconds: float


def open_snapshot(con: duckdb.DuckDBPyConnection, snapshot: Path) -> None:
    """Attach a snapshot read-only and let unqualified names find its tables."""
    if not snapshot.is_file():
        raise SnapshotError(f"snapshot not found: {snapshot}")
    try:
        con.execute(
            f"ATTACH '{snapshot.as_posix().replace(chr(39), chr(39) * 2)}' AS snapshot (READ_ONLY)"
        )
    except duckdb.Error as exc:
        raise SnapshotError(f"{snapshot}: not a readable snapshot: {first_line(exc)}") from None
    meta = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = 'snapshot' AND table_name = '_patronload_meta'"
    ).fetchone()
    if not meta or not meta[0]:
        con.execute("DETACH snapshot")
        raise SnapshotError(f"{snapshot}: not a patronload snapshot (no _patronload_meta table)")
    con.execute("SET search_path = 'main,snapshot.main'")


def _run_file_statements(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    if not path.is_file():
        return
    try:
        con.execute(path.read_text(encoding="utf-8"))
    except duckdb.Error as exc:
        raise BuildError(f"{path}: {first_line(exc)}") from None


def _check_accounting(con: duckdb.DuckDBPyConnection, settings: ExportSettings) -> list[Accounting]:
    cur = con.execute(f"SELECT * FROM {quote(settings.accounting_model)}")
    names = [d[0] for d in cur.description or []]
    rows = [Accounting(**dict(zip(names, r, strict=True))) for r in cur.fetchall()]
    for a in rows:
        if a.extracted != a.exported + a.rejected:
            raise BuildError(
                f"rows lost for {a.patron_type}: extracted {a.extracted} but exported "
                f"{a.exported} + rejected {a.rejected} = {a.exported + a.rejected}"
            )
    (total,) = con.execute(f"SELECT count(*) FROM {quote(settings.final_model)}").fetchone() or (0,)
    if total != sum(a.exported for a in rows):
        raise BuildError(
            f"{settings.final_model} holds {total} users but {settings.accounting_model} "
            f"counts {sum(a.exported for a in rows)} exported"
        )
    return rows


def _build_models(
    con: duckdb.DuckDBPyConnection, project: Project, as_of: date
) -> dict[str, int | None]:
    """Load seeds, the run context and macros, then every model in dependency order.

    The final model is stored in export order (patron type, then record key), so the
    export streams it as stored: no sort, and memory that does not grow with patrons.
    """
    final = project.settings().final_model
    models = load_models(project)
    model_rows: dict[str, int | None] = {}
    for seed in load_seeds(project):
        con.execute(
            f"CREATE TABLE {quote(seed.name)} AS SELECT * FROM "
            "read_csv(?, header=true, all_varchar=true)",
            [str(seed.path)],
        )
    con.execute(f"CREATE TABLE {RUN_CONTEXT} AS SELECT ?::DATE AS as_of", [as_of])
    _run_file_statements(con, project.macros_file)
    for model in models:
        t0 = time.perf_counter()
        if model.is_view and model.name == final:
            raise BuildError(f"{model.path}: the final model must be stored, not a view")
        kind = "VIEW" if model.is_view else "TABLE"
        order = f" ORDER BY {EXPORT_ORDER}" if model.name == final else ""
        # DuckDB's sort of the wide record rows needs working memory per thread: with
        # two it cannot sort a million records under a 400MB cap, with one it can under
        # 300MB. The other models keep every thread.
        try:
            with one_thread(con) if order else nullcontext():
                con.execute(
                    f"CREATE {kind} {quote(model.name)} AS SELECT * FROM ({model.sql}\n){order}"
                )
        except duckdb.Error as exc:
            raise BuildError(f"{model.path}: {first_line(exc)}") from None
        if model.is_view:
            model_rows[model.name] = None
            log.info("built %s as a view", model.name)
            continue
        (n,) = con.execute(f"SELECT count(*) FROM {quote(model.name)}").fetchone() or (0,)
        model_rows[model.name] = int(n)
        log.info("built %s: %s rows in %.2fs", model.name, n, time.perf_counter() - t0)
    return model_rows


def preflight(project: Project) -> None:
    """Run the extract SQL and every model on empty source tables, in memory.

    Catches syntax errors, unknown tables and columns, and type errors in any SQL
    file, and a broken XML schema, before a run writes a snapshot or touches a
    warehouse.
    """
    from exporter.validate import load_schema  # lxml only when a run starts

    settings = project.settings()
    load_schema(project.xsd_file)
    con = connect()
    try:
        for table in load_sources(project).values():
            con.execute(table.ddl())
        for query in load_extracts(project):
            try:
                con.execute(f"CREATE TABLE {quote(query.name)} AS {query.to_duckdb()}")
            except duckdb.Error as exc:
                raise BuildError(f"{query.path}: {first_line(exc)}") from None
        _build_models(con, project, date.today())
        _check_accounting(con, settings)
    finally:
        con.close()


def build(project: Project, snapshot: Path, database: Path, as_of: date) -> BuildResult:
    """Build every model on `snapshot` into `database`, then check the row accounting."""
    started = time.perf_counter()
    settings = project.settings()
    load_models(project)  # parse everything before any work
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(
            f"cannot create the build folder {database.parent}: {exc.strerror}"
        ) from None
    with write_once(database) as con:
        limit_memory(con, database.parent / ".spill")
        open_snapshot(con, snapshot)
        model_rows = _build_models(con, project, as_of)
        accounting = _check_accounting(con, settings)
        rejections = {
            (t, r): int(n)
            for t, r, n in con.execute(
                "SELECT patron_type, reason, count(*) "
                f"FROM {quote(settings.rejections_model)} GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        }
        con.execute("DETACH snapshot")
    return BuildResult(
        database, snapshot, as_of, model_rows, accounting, rejections, time.perf_counter() - started
    )
