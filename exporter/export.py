"""Export stage: stream the final model of a build into validated zips in the outbox.

DuckDB writes each record's XML (exporter.xmlsql); its Arrow string buffers go to
the zip as they are, without becoming Python strings. A reader thread fetches the
next batch while the main thread compresses the last one; DuckDB and zlib both
release the GIL, so the two overlap on separate cores.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from exporter.build import BuildResult
from exporter.duck import connect, quote
from exporter.errors import ExportError
from exporter.package import Chunk, Limits, PackageWriter, ZipFile
from exporter.project import Project
from exporter.xmlsql import compile_record, constant_values
from exporter.xmlwrite import shape_of

if TYPE_CHECKING:
    from exporter.checkchunks import ChunkChecker

log = logging.getLogger(__name__)

#: Columns of the final model that steer the export and are not part of the record.
GROUP_COLUMN = "patron_type"
KEY_COLUMN = "record_key"

T = TypeVar("T")


@dataclass(frozen=True)
class ExportResult:
    """The zips of one export and what went into them."""

    zips: list[ZipFile]
    users: dict[str, int]
    removed_chars: int
    truncated_values: int
    write_seconds: float
    validate_seconds: float
    validation_peak_rss: int = 0


@dataclass
class _Counts:
    truncated: int = 0
    removed: int = 0
    users: dict[str, int] = field(default_factory=dict)


def record_column(con: duckdb.DuckDBPyConnection, model: str) -> tuple[str, Any]:
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


def prefetch(items: Iterator[T], depth: int = 2) -> Generator[T]:
    """Iterate `items` in a background thread, at most `depth` ahead of the consumer.

    Close the generator when done with it (or on failure): that stops and joins
    the thread, which may be holding a database connection.
    """
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _chunks(reader: Any, counts: _Counts) -> Iterator[Chunk]:
    """Chunks over the XML column of each Arrow batch, sharing its memory."""
    for batch in reader:
        xml = batch.column(0)
        _, offsets, data = xml.buffers()
        if pa.types.is_large_string(xml.type):
            view = memoryview(offsets).cast("q")
        elif pa.types.is_string(xml.type):
            view = memoryview(offsets).cast("i")
        else:
            raise ExportError(f"unexpected Arrow type {xml.type} for the XML column")
        offs = view[xml.offset : xml.offset + len(xml) + 1]
        base = offs[0]
        counts.truncated += pc.sum(batch.column(1)).as_py() or 0
        counts.removed += pc.sum(batch.column(2)).as_py() or 0
        yield Chunk(memoryview(data)[base : offs[-1]], [o - base for o in offs[1:]])


def _checked(
    chunks: Iterator[Chunk],
    patron_type: str,
    checker: ChunkChecker,
    on_users: Callable[[str, int], None] | None,
) -> Generator[Chunk]:
    """Pass chunks on to the zip, each also handed to the validators and counted."""
    for chunk in chunks:
        checker.submit(patron_type, chunk.data, chunk.ends)
        yield chunk
        if on_users:
            on_users(patron_type, chunk.count)


def export(
    project: Project,
    built: BuildResult,
    outbox: Path,
    stamp: str,
    limits: Limits,
    *,
    root_element: str | None = None,
    batch_rows: int = 10_000,
    on_users: Callable[[str, int], None] | None = None,
) -> ExportResult:
    """Write one zip set per patron type, validating every record as it goes, then
    publish them together."""
    from exporter.checkchunks import ChunkChecker  # lxml is only needed from here on

    settings = project.settings()
    try:
        outbox.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the outbox {outbox}: {exc.strerror}") from None
    root = root_element or settings.root_element
    checker = ChunkChecker(project.xsd_file, root)
    con = connect(built.database, read_only=True)
    package = PackageWriter(outbox, stamp, built.as_of, root, limits)
    counts = _Counts()
    try:
        t0 = time.perf_counter()
        column, duck_type = record_column(con, settings.final_model)
        shape = shape_of(duck_type)
        rows = (
            f"SELECT {quote(column)} AS r, {KEY_COLUMN} FROM {quote(settings.final_model)} "
            f"WHERE {GROUP_COLUMN} = ?"
        )
        for acct in built.accounting:
            params = [acct.patron_type]
            constants = constant_values(con, rows, params, shape)
            record = compile_record(column, shape, settings.max_value_length, constants)
            sql = (
                f"SELECT {record.xml} AS xml, {record.truncated} AS truncated, "
                f"{record.removed} AS removed FROM (SELECT r, {record.fast} AS x, {KEY_COLUMN} "
                f"FROM ({rows}))"  # stored in export order by the build; read as stored
            )
            log.info("%s: %d constant parts of the record", acct.patron_type, len(constants))
            reader = con.sql(sql, params=params).to_arrow_reader(batch_rows)

            fetched = prefetch(_chunks(reader, counts))
            chunks = _checked(fetched, acct.patron_type, checker, on_users)
            try:
                made = package.write_type(acct.patron_type, chunks)
            except OSError as exc:
                raise ExportError(f"cannot write to the outbox {outbox}: {exc.strerror}") from None
            finally:
                chunks.close()
                fetched.close()  # stops the reader thread before the connection closes
            counts.users[acct.patron_type] = sum(z.users for z in made)
        write_seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        checker.finish()  # the records still being validated when the writing ended
        validate_seconds = time.perf_counter() - t1
        package.publish()
    except BaseException:
        checker.close()
        package.discard()
        raise
    finally:
        con.close()
    return ExportResult(
        package.zips,
        counts.users,
        counts.removed,
        counts.truncated,
        write_seconds,
        validate_seconds,
        checker.peak_rss,
    )
