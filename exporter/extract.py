"""Extract stage: run queries/extract/*.sql against a warehouse into a new snapshot.

A snapshot is a DuckDB file named for its UTC creation time, written under a
temporary name and renamed when complete, readable only by its owner, and never
modified afterwards.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

import duckdb

from exporter import __version__
from exporter.duck import first_line, limit_memory, literal, quote, write_once
from exporter.errors import SnapshotError, SourceError
from exporter.project import FileSource, Project
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


def _csv_header(path: Path, fmt: FileSource) -> list[str]:
    try:
        # errors="replace": only the header line is read, whatever bytes follow it
        with path.open(newline="", encoding=fmt.encoding, errors="replace") as fh:
            header = next(csv.reader(fh, delimiter=fmt.delimiter, quotechar=fmt.quote), None)
    except (OSError, UnicodeDecodeError, LookupError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    if not header:
        raise SourceError(f"{path}: empty file, expected a header row of column names")
    header[0] = header[0].removeprefix("\ufeff")  # a byte order mark is not part of a name
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


def _read_text_file(path: Path, fmt: FileSource, names: list[str]) -> str:
    """A relation over the file with every column as text, bad lines kept aside."""
    spec = ", ".join(f"{literal(f'c{i}')}: 'VARCHAR'" for i in range(len(names)))
    return (
        f"(SELECT {', '.join(f'c{i} AS {quote(h)}' for i, h in enumerate(names))} "
        f"FROM read_csv({literal(str(path))}, header={str(fmt.header).lower()}, "
        f"auto_detect=false, columns={{{spec}}}, delim={literal(fmt.delimiter)}, "
        f"quote={literal(fmt.quote)}, escape={literal(fmt.quote)}, "
        f"encoding={literal(fmt.encoding)}, nullstr='', store_rejects=true))"
    )


#: Rows handed to DuckDB at a time while a file is read line by line.
_LINE_BATCH = 50_000


#: Joins the fields of a line that needed unquoting, for DuckDB to split again.
_UNIT_SEPARATOR = "\x1f"
#: What is kept of each line besides its number: the text and the separator that
#: splits it into fields, or for a line that cannot be split the reason and its text.
_LINE_PARTS = ("text", "sep", "error", "raw")


def _split_by(text: str, fmt: FileSource, width: int) -> tuple[str, str]:
    """The line's text and the separator DuckDB splits it by into `width` fields.

    A line without quotes is split by the delimiter as it is; a quoted one is
    unquoted here and joined by the unit separator. ValueError says why the line
    cannot be split.
    """
    if not fmt.quote or fmt.quote not in text:
        found = text.count(fmt.delimiter) + 1
        if found != width:
            raise ValueError(
                f"expected {width} fields separated by {fmt.delimiter!r}, found {found}"
            )
        return text, fmt.delimiter
    try:
        fields = next(csv.reader([text], delimiter=fmt.delimiter, quotechar=fmt.quote, strict=True))
    except csv.Error as exc:
        raise ValueError(f"bad quoting: {exc}") from None
    if len(fields) != width:
        raise ValueError(
            f"expected {width} fields separated by {fmt.delimiter!r}, found {len(fields)}"
        )
    if _UNIT_SEPARATOR in text:
        raise ValueError("holds the control character U+001F, which no value may hold")
    return _UNIT_SEPARATOR.join(fields), _UNIT_SEPARATOR


def _check_encoding(text: str, encoding: str) -> None:
    """ValueError naming the first byte of a line (read with surrogateescape) that is
    not in the file's encoding."""
    try:
        text.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = text[exc.start].encode(encoding, "surrogateescape")
        raise ValueError(
            f"not valid {encoding}: byte 0x{bad.hex()} at character {exc.start + 1}"
        ) from None


def _read_lines(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: FileSource,
    names: list[str],
    target: str,
    markers: tuple[str, str, str],
) -> None:
    """Read a file into the temporary table `target`, one physical line per row.

    Every column is text; `markers` name the columns for the line number (every
    row), why the line could not be split and its text. A line never spills into
    the next: a stray quote, a wrong number of fields, bytes that are not in the
    declared encoding or a carriage return in a value spoil that line only. Blank
    lines are skipped. Read in batches, so memory does not grow with the file.
    """
    import pyarrow as pa  # only for files read line by line

    line_col, error_col, raw_col = markers
    columns = [*names, line_col, error_col, raw_col]
    con.execute(
        f"CREATE TEMP TABLE {quote(target)} ("
        + ", ".join(f"{quote(c)} {'BIGINT' if c == line_col else 'VARCHAR'}" for c in columns)
        + ")"
    )
    # DuckDB splits the lines; an empty field is NULL, as in every other source
    insert = (
        f"INSERT INTO temp.{quote(target)} SELECT "
        + "".join(f"nullif(f[{i + 1}], ''), " for i in range(len(names)))
        + "line, error, raw FROM (SELECT string_split(text, sep) AS f, * FROM _patronload_lines)"
    )
    schema = pa.schema([("line", pa.int64())] + [(c, pa.string()) for c in _LINE_PARTS])
    rows: list[tuple[int, str | None, str | None, str | None, str | None]] = []

    def flush() -> None:
        data = dict(zip(schema.names, zip(*rows, strict=True), strict=True))
        con.register("_patronload_lines", pa.table(data, schema=schema))
        con.execute(insert)
        con.unregister("_patronload_lines")
        rows.clear()

    try:
        with path.open(encoding=fmt.encoding, errors="surrogateescape", newline="\n") as fh:
            for row in _numbered_lines(fh, fmt, len(names)):
                rows.append(row)
                if len(rows) >= _LINE_BATCH:
                    flush()
    except (OSError, LookupError, UnicodeError) as exc:  # UnicodeError: an encoding whose
        raise SourceError(f"{path}: cannot read: {exc}") from None  # bad bytes cannot be kept
    if rows:
        flush()


def _numbered_lines(
    fh: TextIO, fmt: FileSource, width: int
) -> Iterator[tuple[int, str | None, str | None, str | None, str | None]]:
    """Each non-blank line: its number and `_LINE_PARTS`."""
    for number, line in enumerate(fh, start=1):
        if number == 1 and fmt.header:
            continue
        text = line.removesuffix("\n").removesuffix("\r")
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text:
            continue
        try:
            _check_encoding(text, fmt.encoding)
            joined, separator = _split_by(text, fmt, width)
        except ValueError as exc:
            raw = text.encode(fmt.encoding, "surrogateescape").decode(fmt.encoding, "replace")
            yield number, None, None, str(exc), raw
        else:
            yield number, joined, separator, None, None


def _tolerant_view(
    con: duckdb.DuckDBPyConnection, table: SourceTable, relation: str, fmt: FileSource
) -> None:
    """`table` with a row for every line: the values typed, and why a line was not read.

    A value that does not convert to its declared type is left NULL and named in the
    error column, after any reason the line could not be split.
    """
    error = fmt.error_column.upper() if fmt.error_column else ""
    data = {c: t for c, t in table.columns.items() if c not in fmt.pseudo_columns}
    problems = ", ".join(
        f"CASE WHEN {quote(c)} IS NOT NULL AND TRY_CAST({quote(c)} AS {t}) IS NULL "
        f"THEN 'column {c}: ' || {quote(c)} || ' is not a {t}' END"
        for c, t in data.items()
        if t != "VARCHAR"
    )
    good = [f"TRY_CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in data.items()]
    good.append(
        f"nullif(concat_ws('; ', {quote(error)}, {problems or 'NULL'}), '') AS {quote(error)}"
    )
    for marker in (fmt.line_column, fmt.raw_column):
        if marker:
            good.append(quote(marker.upper()))
    typed = ", ".join(f"CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in table.columns.items())
    con.execute(
        f"CREATE TEMP VIEW {quote(table.name)} AS SELECT {typed} FROM "
        f"(SELECT {', '.join(good)} FROM {relation})"
    )


def _attach_csv_folder(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    tables: list[SourceTable],
    formats: dict[str, FileSource],
) -> None:
    for table in tables:
        fmt = formats.get(table.name) or FileSource(table.name, f"{table.name}.csv")
        path = folder / fmt.file
        if not path.is_file():
            raise SourceError(f"{path}: not found (the warehouse folder needs {fmt.file})")
        undeclared = [c for c in fmt.pseudo_columns if c not in table.columns]
        if undeclared:
            raise SourceError(
                f"[sources.{table.name}] names the column {undeclared[0]}, which "
                f"schemas/sources.sql does not declare for {table.name}"
            )
        data_columns = [c for c in table.columns if c not in fmt.pseudo_columns]
        if fmt.header:
            header = _csv_header(path, fmt)
            missing = [c for c in data_columns if c not in header]
            if missing:
                raise SourceError(f"{path}: header lacks the column {missing[0]}")
            clash = [c for c in fmt.pseudo_columns if c in header]
            if clash:
                raise SourceError(
                    f"{path}: the header has a column {clash[0]}, which "
                    f"[sources.{table.name}] names for the extract to fill"
                )
        else:
            header = data_columns  # declared, in order: nothing is guessed from the file
        if fmt.error_column:
            # One physical line is one record: a bad line is a row saying why, and never
            # takes the lines after it along (as a stray quote does in a CSV reader).
            target = f"lines_{table.name.lower()}"
            markers = (
                (fmt.line_column or "_patronload_line").upper(),
                fmt.error_column.upper(),
                (fmt.raw_column or "_patronload_raw").upper(),
            )
            _read_lines(con, path, fmt, header, target, markers)
            _tolerant_view(con, table, f"temp.{quote(target)}", fmt)
            continue
        # Every column is read as text first: types come from schemas/, never guessed.
        # Lines that do not parse are kept aside by DuckDB with their line numbers.
        relation = _read_text_file(path, fmt, header)
        try:
            con.execute(f"SELECT count(*) FROM {relation}").fetchone()  # read it all once
        except duckdb.Error as exc:
            raise SourceError(f"{path}: cannot read: {first_line(exc)}") from None
        _refuse_rejected_lines(con)

        def line_of(row: int, path: Path = path, header: bool = fmt.header) -> str:
            return f"{path}:{row + int(header)}" if row else str(path)

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

    def __init__(self, path: Path, formats: dict[str, FileSource] | None = None) -> None:
        self.path = path
        self.formats = formats or {}
        self.description = str(path.resolve())

    def attach(self, con: duckdb.DuckDBPyConnection, tables: list[SourceTable]) -> None:
        if not self.path.exists():
            raise SourceError(f"warehouse not found: {self.path}")
        if self.path.is_dir():
            _attach_csv_folder(con, self.path, tables, self.formats)
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
    if isinstance(warehouse, Path):
        source: Warehouse = LocalWarehouse(warehouse, project.file_sources())
    else:
        source = warehouse
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
            limit_memory(con, snapshots / ".spill")
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
