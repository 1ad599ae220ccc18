"""DuckDB's memory cap, which every stage that reads or writes a database applies."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from exporter.duck import capped, memory_limit, one_thread
from exporter.errors import UsageError


def _database(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS n FROM range(10)")
    con.close()
    return path


def test_capped_applies_the_setting_and_removes_its_spill_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATRONLOAD_MEMORY_LIMIT", "123MB")
    with capped(_database(tmp_path / "b.duckdb")) as con:
        limit, spill = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone() or (None, None)
        assert limit == "117.3 MiB"  # DuckDB shows 123 MB in MiB
        assert Path(spill).name.startswith("patronload-spill-")
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE u (n INT)")
    assert not Path(spill).exists()


def test_the_default_cap_is_300mb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATRONLOAD_MEMORY_LIMIT", raising=False)
    assert memory_limit() == "300MB"


def test_a_cap_duckdb_cannot_read_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATRONLOAD_MEMORY_LIMIT", "lots")
    with pytest.raises(UsageError) as raised:
        memory_limit()
    assert str(raised.value) == (
        "PATRONLOAD_MEMORY_LIMIT: 'lots' is not a memory size like 300MB or 2GB"
    )


def test_one_thread_resets_after_a_clean_exit_only() -> None:
    con = duckdb.connect()

    def threads() -> object:
        return (con.execute("SELECT current_setting('threads')").fetchone() or (None,))[0]

    every = threads()
    with one_thread(con):
        assert threads() == 1
    assert threads() == every
    with pytest.raises(duckdb.Error), one_thread(con):
        con.execute("SELECT * FROM missing_table")
    assert threads() == 1  # left alone: a reset could have hidden the error
    con.close()
