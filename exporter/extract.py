"""Extract stage: run queries/extract/*.sql against a warehouse into a new snapshot.

A snapshot is a DuckDB file named for its UTC creation time, written under a
temporary name and renamed when complete, readable only by its owner, and never
modified afterwards.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import duckdb

from exporter import __version__
from exporter.duck import first_line, literal, quote, write_once
from exporter.errors import SnapshotError, SourceError
from exporter.project import Project
from exporter.sources import ExtractQuery, SourceTable, load_extracts, load_sources

log = logging.getLogger(__name__)

META_TABLE = "_patronload_meta"
EXTRACTS_TABLE = "_patronload_extracts"
SNAPSHOT_GLOB = "????-??-??T??????.??????Z.duckdb"


@dataclass(frozen=True)
class ExtractResult:
    """What one extract produced."""

    snapshot: Path
    rows: dict[str, int]
    seconds: float


def _typed_view(
    con: duckdb.DuckDBPyConnection,
    table: SourceTable,
    relation: str,
    present: list[str],
    locate: Callable[[int], str],
) -> None:
    """Expose `relation` as `table` with the declared column types, whatever it stored.

    Every value that does not convert is an error naming where it is (`locate`
    turns a 1-based row number into a file line or table row).
    """
    missing = [c for c in table.columns if c not in present]
    if missing:
        raise SourceError(f"{locate(0)}: lacks the column {missing[0]} of {table.name}")
    for column, type_ in table.columns.items():
        if type_ == "VARCHAR":
            continue
        bad = con.execute(
            f"SELECT n, v FROM (SELECT row_number() OVER () AS n, {quote(column)}::VARCHAR AS v "
            f"FROM {relation}) WHERE v IS NOT NULL AND TRY_CAST(v AS {type_}) IS NULL "
            "ORDER BY n LIMIT 1"
        ).fetchone()
        if bad:
            raise SourceError(f"{locate(bad[0])}: column {column}: {bad[1]!r} is not a {type_}")
    cols = ", ".join(f"CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in table.columns.items())
    con.execute(f"CREATE TEMP VIEW {quote(table.name)} AS SELECT {cols} FROM {relation}")


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    if not header:
        raise SourceError(f"{path}: empty file, expected a header row of column names")
    return [h.strip().upper() for h in header]


def _refuse_rejected_lines(con: duckdb.DuckDBPyConnection) -> None:
    """Raise on the first CSV line DuckDB could not parse, naming its file and line."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = 'reject_errors'"
    ).fetchone()
    if exists == (0,):  # DuckDB creates the table with the first rejected line
        return
    rejected = con.execute(
        "SELECT s.file_path, e.line, e.error_message FROM temp.reject_errors e "
        "JOIN temp.reject_scans s USING (scan_id, file_id) "
        "ORDER BY s.file_path, e.line, e.column_idx LIMIT 1"
    ).fetchone()
    if rejected:
        raise SourceError(f"{rejected[0]}:{rejected[1]}: {rejected[2]}")


def _attach_csv_folder(
    con: duckdb.DuckDBPyConnection, folder: Path, tables: list[SourceTable]
) -> None:
    for table in tables:
        path = folder / f"{table.name}.csv"
        if not path.is_file():
            raise SourceError(f"{path}: not found (the warehouse folder needs {table.name}.csv)")
        header = _csv_header(path)
        missing = [c for c in table.columns if c not in header]
        if missing:
            raise SourceError(f"{path}: header lacks the column {missing[0]}")
        # Every column is read as text first: types come from schemas/, never guessed.
        # Lines that do not parse are kept aside by DuckDB with their line numbers.
        spec = ", ".join(f"{literal(f'c{i}')}: 'VARCHAR'" for i in range(len(header)))
        relation = (
            f"(SELECT {', '.join(f'c{i} AS {quote(h)}' for i, h in enumerate(header))} "
            f"FROM read_csv({literal(str(path))}, header=true, auto_detect=false, "
            f"columns={{{spec}}}, nullstr='', quote='\"', escape='\"', store_rejects=true))"
        )
        con.execute(f"SELECT count(*) FROM {relation}").fetchone()  # read it all once
        _refuse_rejected_lines(con)

        def line_of(row: int, path: Path = path) -> str:
            return f"{path}:{row + 1}" if row else str(path)

        _typed_view(con, table, relation, header, line_of)


def _attach_duckdb(con: duckdb.DuckDBPyConnection, path: Path, tables: list[SourceTable]) -> None:
    try:
        con.execute(f"ATTACH {literal(str(path))} AS warehouse (READ_ONLY)")
    except duckdb.Error as exc:
        raise SourceError(f"{path}: not a readable DuckDB warehouse: {first_line(exc)}") from None
    for table in tables:
        present = [
            r[0].upper()
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() "
                "WHERE database_name = 'warehouse' AND upper(table_name) = ?",
                [table.name],
            ).fetchall()
        ]
        if not present:
            raise SourceError(f"{path}: has no table {table.name}")

        def row_of(row: int, name: str = table.name) -> str:
            return f"{path}: table {name}, row {row}" if row else f"{path}: table {name}"

        _typed_view(con, table, f"warehouse.main.{quote(table.name)}", present, row_of)


def new_snapshot_path(folder: Path, now: datetime) -> Path:
    """`<folder>/<UTC time>.duckdb`, unique even for two extracts in one second."""
    return folder / f"{now.strftime('%Y-%m-%dT%H%M%S.%f')}Z.duckdb"


def latest_snapshot(folder: Path) -> Path:
    """The newest snapshot in a folder, by its name (its UTC creation time)."""
    found = sorted(folder.glob(SNAPSHOT_GLOB)) if folder.is_dir() else []
    if not found:
        raise SnapshotError(f"no snapshot in {folder}; run 'patronload extract' first")
    return found[-1]


def _record_metadata(
    con: duckdb.DuckDBPyConnection,
    queries: list[ExtractQuery],
    rows: dict[str, int],
    source: str,
    started: datetime,
) -> None:
    con.execute(f"CREATE TABLE {META_TABLE} (key VARCHAR, value VARCHAR)")
    meta = {
        "created_at": started.isoformat(),
        "source": source,
        "patronload_version": __version__,
        "row_counts": json.dumps(rows, sort_keys=True),
    }
    con.executemany(f"INSERT INTO {META_TABLE} VALUES (?, ?)", list(meta.items()))
    con.execute(
        f"CREATE TABLE {EXTRACTS_TABLE} "
        "(name VARCHAR, sql_file VARCHAR, sha256 VARCHAR, source_tables VARCHAR[], rows BIGINT)"
    )
    con.executemany(
        f"INSERT INTO {EXTRACTS_TABLE} VALUES (?, ?, ?, ?, ?)",
        [[q.name, q.path.name, q.sha256, list(q.source_tables), rows[q.name]] for q in queries],
    )


class Warehouse(Protocol):
    """Where extract reads from. The local warehouse and Oracle both fill a snapshot this way.

    `attach` checks the source (and connects) before any row is copied; `copy` runs
    one extract query and stores its rows as `main.<target>` of the snapshot.
    """

    description: str

    def attach(self, con: duckdb.DuckDBPyConnection, tables: list[SourceTable]) -> None: ...

    def copy(self, con: duckdb.DuckDBPyConnection, query: ExtractQuery, target: str) -> None: ...

    def close(self) -> None: ...


class LocalWarehouse:
    """A DuckDB file or a folder of `<TABLE>.csv`, read with the extract SQL transpiled."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path.resolve())

    def attach(self, con: duckdb.DuckDBPyConnection, tables: list[SourceTable]) -> None:
        if not self.path.exists():
            raise SourceError(f"warehouse not found: {self.path}")
        if self.path.is_dir():
            _attach_csv_folder(con, self.path, tables)
        else:
            _attach_duckdb(con, self.path, tables)

    def copy(self, con: duckdb.DuckDBPyConnection, query: ExtractQuery, target: str) -> None:
        try:
            con.execute(f"CREATE TABLE main.{quote(target)} AS {query.to_duckdb()}")
        except duckdb.Error as exc:
            raise SourceError(f"{query.path}: failed on {self.path}: {first_line(exc)}") from None

    def close(self) -> None:
        pass


def extract(
    project: Project,
    warehouse: Path | Warehouse,
    snapshots: Path,
    on_table: Callable[[str, int], None] | None = None,
) -> ExtractResult:
    """Validate the extract SQL, then copy the warehouse's rows into a new snapshot."""
    queries = load_extracts(project)  # parse and check before touching any source
    sources = load_sources(project)
    needed = [sources[name] for name in dict.fromkeys(t for q in queries for t in q.source_tables)]
    for q in queries:
        q.to_duckdb()  # a construct with no honest translation fails before any work
    source = LocalWarehouse(warehouse) if isinstance(warehouse, Path) else warehouse
    if isinstance(warehouse, Path) and not warehouse.exists():
        raise SourceError(f"warehouse not found: {warehouse}")
    try:
        snapshots.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SnapshotError(
            f"cannot create the snapshots folder {snapshots}: {exc.strerror}"
        ) from None

    started = datetime.now(UTC)
    final = new_snapshot_path(snapshots, started)
    rows: dict[str, int] = {}
    try:
        with write_once(final) as con:
            source.attach(con, needed)
            for q in queries:
                source.copy(con, q, q.name)
                (count,) = con.execute(f"SELECT count(*) FROM main.{quote(q.name)}").fetchone() or (
                    0,
                )
                rows[q.name] = int(count)
                log.info("extracted %s rows into %s", count, q.name)
                if on_table:
                    on_table(q.name, int(count))
            _refuse_rejected_lines(con)
            _record_metadata(con, queries, rows, source.description, started)
    finally:
        source.close()
    seconds = (datetime.now(UTC) - started).total_seconds()
    return ExtractResult(final, rows, seconds)
