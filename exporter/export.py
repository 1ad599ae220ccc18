"""Export stage: stream the final model of a build into validated zips in the outbox.

DuckDB writes each record's XML (exporter.xmlsql); its Arrow string buffers go to
the zip as they are, without becoming Python strings. A reader thread fetches the
next batch while the main thread compresses the last one; DuckDB and zlib both
release the GIL, so the two overlap on separate cores.

An incremental export (`base_build`) writes only the records that are new or differ
from that build's, compared as whole records (exporter.diff classifies them); what
counts as a change is therefore whatever the project's final model puts in a record.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from exporter.build import BuildResult
from exporter.duck import capped, literal, one_thread, quote
from exporter.errors import ExportError
from exporter.package import Chunk, Limits, PackageWriter, ZipFile
from exporter.project import Project
from exporter.xmlsql import Facts, compile_record, part_facts, written_text
from exporter.xmlwrite import Shape, shape_of

if TYPE_CHECKING:
    from exporter.checkchunks import ChunkChecker, Sampler
    from exporter.xsdsql import Proof

log = logging.getLogger(__name__)

#: Columns of the final model that steer the export and are not part of the record.
GROUP_COLUMN = "patron_type"
KEY_COLUMN = "record_key"

#: Inserted before the run's time in the names of an incremental export's files:
#: `staff_changes_2026-03-01_06.00.00.zip` beside a full `staff_2026-03-01_06.00.00.zip`.
CHANGES_NAME = "changes"

#: The kinds of difference (exporter.diff) whose records an incremental export writes.
WRITTEN_KINDS = ("added", "changed")

# The records of one patron type that are new or changed since the base build; `delta`
# is exporter.diff's classification of every record of both builds.
_CHANGED_ROWS = """
SELECT n.{record} AS r, n.{key} FROM {model} AS n
SEMI JOIN delta AS d
    ON d.patron_type = n.{group} AND d.record_key = n.{key}
    AND d.kind IN ({kinds})
WHERE n.{group} = ?
"""

T = TypeVar("T")


@dataclass(frozen=True)
class ExportResult:
    """The zips of one export and what went into them.

    Attributes:
        users: Records written per patron type (for an incremental export, the new and
            changed ones only).
        changes: Incremental exports only: per patron type, the records added, removed,
            changed and unchanged since the base build; None for a full export.
        compare_seconds: Time spent comparing with the base build.
    """

    zips: list[ZipFile]
    users: dict[str, int]
    removed_chars: int
    truncated_values: int
    write_seconds: float
    validate_seconds: float
    validation_peak_rss: int = 0
    changes: dict[str, dict[str, int]] | None = None
    compare_seconds: float = 0.0
    validated_records: int = 0
    signatures: int = 0  # distinct record structures (0 when every record was validated)
    validated_every_record: bool = True


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


def _chunks(
    reader: Any, counts: _Counts, sampler: Sampler | None
) -> Iterator[tuple[Chunk, list[int] | None]]:
    """Chunks over the XML column of each Arrow batch, sharing its memory, each with
    the positions of its records to validate (None: all)."""
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
        chunk = Chunk(memoryview(data)[base : offs[-1]], [o - base for o in offs[1:]])
        yield chunk, None if sampler is None else sampler.select(batch)


def _checked(
    chunks: Iterator[tuple[Chunk, list[int] | None]],
    patron_type: str,
    checker: ChunkChecker,
    on_users: Callable[[str, int], None] | None,
) -> Generator[Chunk]:
    """Pass chunks on to the zip, each also handed to the validators and counted."""
    for chunk, selected in chunks:
        checker.submit(patron_type, chunk.data, chunk.ends, selected)
        yield chunk
        if on_users:
            on_users(patron_type, chunk.count)


@contextmanager
def _source(
    database: Path, base_build: Path | None, model: str
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, int]] | None]]:
    """A connection that reads the build's final model by its name, and the changes.

    For an incremental export both builds are attached read-only and every record is
    classified first (the temporary table `delta`); the counts per type come along.
    """
    if base_build is None:
        with capped(database) as con:
            yield con, None
        return
    from exporter.diff import RECORD_DIFFERS, attach_builds, classify

    with attach_builds(base_build, database) as con:
        con.execute("USE new_build")
        column, duck_type = record_column(con, model)
        base_column, base_type = record_column(con, f"old_build.main.{quote(model)}")
        if (base_column, str(base_type)) != (column, str(duck_type)):
            raise ExportError(
                f"the base build {base_build} has records of another type than {database}; "
                "build both with the same project"
            )
        yield con, classify(con, model, (column, column), RECORD_DIFFERS, [])


def _proof(
    project: Project,
    root: str,
    column: str,
    shape: Shape,
    facts: Facts,
) -> Proof | None:
    """The signature and value checks of this type's records; None: validate them all."""
    from exporter.xsdsql import compile_proof  # xmlschema is only needed from here on

    limit = project.settings().max_value_length
    fit = written_text(limit, facts)
    proof = compile_proof(project.xsd_file, root, column, shape, fit, limit, facts.present)
    if proof is None:
        log.info("the schema ties records together: validating every record")
    for part in dict.fromkeys(proof.unknown if proof else []):
        log.info("validated by lxml wherever present: %s", part)
    return proof


def _check_columns(proof: Proof | None) -> tuple[str, Sampler | None]:
    """The export query's extra columns for `proof`, and the sampler that reads them.
    Bits are chosen per type (see compile_proof), so each type has its own sampler."""
    from exporter.checkchunks import Sampler

    if proof is None:
        return "", None
    words = [f"w{i}" for i in range(len(proof.words))]
    columns = [f", {proof.proven} AS proven"]
    columns += [f", {sql} AS {name}" for sql, name in zip(proof.words, words, strict=True)]
    return "".join(columns), Sampler(words)


def _rows_sql(column: str, model: str, incremental: bool) -> str:
    """The records of one patron type (the parameter) to write, as `r` and the key."""
    if not incremental:
        return (
            f"SELECT {quote(column)} AS r, {KEY_COLUMN} FROM {quote(model)} "
            f"WHERE {GROUP_COLUMN} = ?"
        )
    return _CHANGED_ROWS.format(
        record=quote(column),
        key=quote(KEY_COLUMN),
        group=quote(GROUP_COLUMN),
        model=quote(model),
        kinds=", ".join(literal(kind) for kind in WRITTEN_KINDS),
    )


def export(
    project: Project,
    built: BuildResult,
    outbox: Path,
    stamp: str,
    limits: Limits,
    *,
    root_element: str | None = None,
    batch_rows: int = 2_048,
    on_users: Callable[[str, int], None] | None = None,
    base_build: Path | None = None,
    validate_every_record: bool = False,
) -> ExportResult:
    """Write one zip set per patron type, validating the records as it goes, then
    publish them together.

    Args:
        project: The project whose final model and schema are used.
        built: The build to export.
        outbox: Where the zips are published.
        stamp: The run's time, part of every file name.
        limits: Alma's limits and the XML split size.
        root_element: Overrides the project's root element.
        batch_rows: Records fetched from DuckDB at a time.
        on_users: Called with (patron type, records) as records are written.
        base_build: Write only the records new or changed since this build (of an
            earlier snapshot, built with the same project and as-of date); the files
            are named `<type>_changes_<stamp>`. A patron type with no such record gets a
            valid empty file, as a full export of an empty type does. Records removed
            since are not written: an incremental file cannot say "delete".
        validate_every_record: Validate every record with lxml instead of one per
            signature plus those whose values SQL cannot prove (exporter.xsdsql).

    Returns:
        The zips, records written per type and, when incremental, the changes per type.
    """
    from exporter.checkchunks import ChunkChecker  # lxml is only needed from here on

    settings = project.settings()
    try:
        outbox.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the outbox {outbox}: {exc.strerror}") from None
    root = root_element or settings.root_element
    checker = ChunkChecker(project.xsd_file, root)
    name = stamp if base_build is None else f"{CHANGES_NAME}_{stamp}"
    package = PackageWriter(outbox, name, built.as_of, root, limits)
    counts = _Counts()
    signatures = 0
    try:
        t0 = time.perf_counter()
        with _source(built.database, base_build, settings.final_model) as (con, changes):
            compare_seconds = time.perf_counter() - t0 if changes is not None else 0.0
            t0 = time.perf_counter()
            column, duck_type = record_column(con, settings.final_model)
            shape = shape_of(duck_type)
            rows = _rows_sql(column, settings.final_model, changes is not None)
            # A full export reads the final model as the build stored it, in export
            # order; a join keeps no order, so the changed records are sorted.
            order = "" if changes is None else f" ORDER BY {KEY_COLUMN}"
            for acct in built.accounting:
                if acct.patron_type in settings.counted_only:
                    if acct.exported:
                        raise ExportError(
                            f"{acct.exported:,} patron(s) exported as {acct.patron_type}, "
                            "which patronload.toml lists in counted_only (never a file)"
                        )
                    continue
                params = [acct.patron_type]
                facts = part_facts(con, rows, params, shape)
                record = compile_record(column, shape, settings.max_value_length, facts)
                proof = None
                if not validate_every_record:
                    proof = _proof(project, root, column, shape, facts)
                    validate_every_record = proof is None
                checks, sampler = _check_columns(proof)
                sql = (
                    f"SELECT {record.xml} AS xml, {record.truncated} AS truncated, "
                    f"{record.removed} AS removed{checks} FROM (SELECT r, {record.fast} AS x, "
                    f"{record.dirty} AS dirty, {KEY_COLUMN} FROM ({rows})){order}"
                )
                log.info(
                    "%s: %d constant parts of the record, %d text parts to cut",
                    acct.patron_type,
                    len(facts.constants),
                    sum(
                        not facts.fits(p, settings.max_value_length)
                        for p in facts.widest
                        if p not in facts.constants
                    ),
                )
                # One thread streams (the constant-parts scan above has them all): a
                # second holds its own working vectors for the record's SQL, about
                # 80 MiB at 1,000,000 patrons, and made the stream no faster.
                with one_thread(con):
                    reader = con.sql(sql, params=params).to_arrow_reader(batch_rows)
                    fetched = prefetch(_chunks(reader, counts, sampler))
                    chunks = _checked(fetched, acct.patron_type, checker, on_users)
                    try:
                        made = package.write_type(acct.patron_type, chunks)
                    except OSError as exc:
                        raise ExportError(
                            f"cannot write to the outbox {outbox}: {exc.strerror}"
                        ) from None
                    finally:
                        chunks.close()
                        fetched.close()  # stops the reader thread before the connection closes
                counts.users[acct.patron_type] = sum(z.users for z in made)
                signatures += len(sampler.seen) if sampler else 0
            write_seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        checker.finish()  # the records still being validated when the writing ended
        validate_seconds = time.perf_counter() - t1
        log.info(
            "validated %s of %s records with lxml against %s%s",
            f"{checker.validated:,}",
            f"{sum(counts.users.values()):,}",
            project.xsd_file.name,
            f" ({signatures:,} signatures; the rest proven by SQL type checks)"
            if signatures
            else "",
        )
        package.publish()
    except BaseException:
        checker.close()
        package.discard()
        raise
    return ExportResult(
        package.zips,
        counts.users,
        counts.removed,
        counts.truncated,
        write_seconds,
        validate_seconds,
        checker.peak_rss,
        changes,
        compare_seconds,
        checker.validated,
        signatures,
        validate_every_record,
    )
