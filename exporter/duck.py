"""Small DuckDB helpers every stage shares: quoting, messages, write-once files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


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


def limit_memory(con: duckdb.DuckDBPyConnection, spill: Path) -> None:
    """Cap DuckDB's memory (PATRONLOAD_MEMORY_LIMIT, default 600MB); spill to `spill`."""
    limit = os.environ.get("PATRONLOAD_MEMORY_LIMIT", "600MB")
    con.execute(f"SET memory_limit = {literal(limit)}")
    con.execute(f"SET temp_directory = {literal(str(spill))}")


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
