"""Small DuckDB helpers every stage shares: quoting, messages, write-once files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from exporter.errors import UsageError
from exporter.settings import SPEC_BY_NAME

MEMORY_LIMIT = "PATRONLOAD_MEMORY_LIMIT"


def quote(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def first_line(exc: BaseException) -> str:
    """The first line of an error's message: DuckDB's carry hints on further lines."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(path: Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that never draws its own progress bar (we show ours)."""
    con = duckdb.connect(str(path) if path else ":memory:", read_only=read_only)
    con.execute("SET enable_progress_bar = false")
    return con


def _set_memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    limit = os.environ.get(MEMORY_LIMIT) or SPEC_BY_NAME[MEMORY_LIMIT].default or ""
    try:
        con.execute(f"SET memory_limit = {literal(limit)}")
    except duckdb.Error:
        raise UsageError(
            f"{MEMORY_LIMIT}: {limit!r} is not a memory size like 300MB or 2GB"
        ) from None
    return limit


def memory_limit() -> str:
    """PATRONLOAD_MEMORY_LIMIT (or its default), once DuckDB has accepted it."""
    probe = duckdb.connect()
    try:
        return _set_memory_limit(probe)
    finally:
        probe.close()


def limit_memory(con: duckdb.DuckDBPyConnection, spill: Path) -> None:
    """Cap DuckDB's memory (memory_limit()); spill to `spill` beyond it."""
    _set_memory_limit(con)
    con.execute(f"SET temp_directory = {literal(str(spill))}")


@contextmanager
def capped(path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with DuckDB's memory capped (limit_memory): read-only to `path`,
    or in memory without one.

    Uncapped, DuckDB keeps every block it reads in its buffer pool, so a stage that
    reads a build once would still grow with the patrons. Spills go to a temporary
    folder, removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="patronload-spill-") as spill:
        con = connect(path, read_only=path is not None)
        try:
            limit_memory(con, Path(spill))
            yield con
        finally:
            con.close()


@contextmanager
def one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the statements inside on one DuckDB thread; every thread again after.

    Only a clean exit resets: after a failure the reset could hide the error, and
    the connection is not used again.
    """
    con.execute("SET threads = 1")
    yield
    con.execute("RESET threads")


def _remove_temporary(tmp: Path) -> None:
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)


@contextmanager
def write_once(final: Path, mode: int = 0o600) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a new database that appears at `final` only when complete.

    The file is written as `.<name>.tmp` beside `final`, checkpointed (so no WAL is
    left behind), given `mode` (owner-only by default: these files hold personal
    data) and renamed. On any failure the temporary file is removed and `final`,
    if it existed, is left as it was.
    """
    tmp = final.with_name(f".{final.name}.tmp")
    _remove_temporary(tmp)  # left by a run that was killed
    con = connect(tmp)
    try:
        yield con
        con.execute("CHECKPOINT")
        con.close()
        os.chmod(tmp, mode)
        os.replace(tmp, final)
    except BaseException:
        con.close()
        _remove_temporary(tmp)
        raise
