"""Export stage: stream the final model of a build into validated zips in the outbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from exporter.build import BuildResult
from exporter.duck import quote
from exporter.errors import ExportError, ValidationError
from exporter.package import Limits, PackageWriter, ZipFile
from exporter.project import Project
from exporter.xmlwrite import RecordWriter, shape_of

log = logging.getLogger(__name__)

#: Columns of the final model that steer the export and are not part of the record.
GROUP_COLUMN = "patron_type"
KEY_COLUMN = "record_key"


@dataclass(frozen=True)
class ExportResult:
    """The zips of one export and what went into them."""

    zips: list[ZipFile]
    users: dict[str, int]
    removed_chars: int
    truncated_values: int
    write_seconds: float
    validate_seconds: float


def _record_column(con: duckdb.DuckDBPyConnection, model: str) -> tuple[str, Any]:
    rel = con.table(model)
    columns = dict(zip(rel.columns, rel.types, strict=True))
    for needed in (GROUP_COLUMN, KEY_COLUMN):
        if needed not in columns:
            raise ExportError(f"the final model {model} has no column {needed}")
    record = [c for c in columns if c not in (GROUP_COLUMN, KEY_COLUMN)]
    if len(record) != 1 or columns[record[0]].id != "struct":
        raise ExportError(
            f"the final model {model} must have exactly one STRUCT column besides "
            f"{GROUP_COLUMN} and {KEY_COLUMN}; it has {', '.join(record) or 'none'}"
        )
    return record[0], columns[record[0]]


def _batches(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any], size: int
) -> Iterator[list[Any]]:
    """The query's single column in batches of Python values, through Arrow.

    Arrow's conversion of nested structs is several times faster than the
    DB-API's row tuples, and the reader streams: one batch in memory at a time.
    """
    for batch in con.sql(sql, params=params).to_arrow_reader(size):
        yield batch.column(0).to_pylist()


def export(
    project: Project,
    built: BuildResult,
    outbox: Path,
    stamp: str,
    limits: Limits,
    *,
    root_element: str | None = None,
    batch_rows: int = 5000,
    on_users: Callable[[str, int], None] | None = None,
) -> ExportResult:
    """Write one zip set per patron type, validate them all, then publish them together."""
    from exporter.validate import validate_zips  # lxml is only needed from here on

    settings = project.settings()
    try:
        outbox.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the outbox {outbox}: {exc.strerror}") from None
    con = duckdb.connect(str(built.database), read_only=True)
    writer_pkg = PackageWriter(
        outbox, stamp, built.as_of, root_element or settings.root_element, limits
    )
    users: dict[str, int] = {}
    try:
        t0 = time.perf_counter()
        column, duck_type = _record_column(con, settings.final_model)
        writer = RecordWriter(column, shape_of(duck_type), settings.max_value_length)
        sql = (
            f"SELECT {quote(column)} FROM {quote(settings.final_model)} "
            f"WHERE {GROUP_COLUMN} = ? ORDER BY {KEY_COLUMN}"
        )
        for acct in built.accounting:

            def records(patron_type: str = acct.patron_type) -> Iterator[list[str]]:
                for rows in _batches(con, sql, [patron_type], batch_rows):
                    yield writer.records(rows)
                    if on_users:
                        on_users(patron_type, len(rows))

            try:
                made = writer_pkg.write_type(acct.patron_type, records())
            except OSError as exc:
                raise ExportError(f"cannot write to the outbox {outbox}: {exc.strerror}") from None
            users[acct.patron_type] = sum(z.users for z in made)
        write_seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        problems = validate_zips([z.temporary for z in writer_pkg.zips], project.xsd_file)
        if problems:
            shown = "; ".join(str(p) for p in problems[:3])
            raise ValidationError(
                f"{len(problems)} problem(s) in the produced XML, nothing published: {shown}"
            )
        validate_seconds = time.perf_counter() - t1
        writer_pkg.publish()
    except BaseException:
        writer_pkg.discard()
        raise
    finally:
        con.close()
    return ExportResult(
        writer_pkg.zips,
        users,
        writer.sanitizer.removed_chars,
        writer.sanitizer.truncated_values,
        write_seconds,
        validate_seconds,
    )
