"""DuckDB's memory cap, which every stage that reads or writes a database applies."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from exporter.duck import capped_reader, memory_limit
from exporter.errors import UsageError


def _database(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS n FROM range(10)")
    con.close()
    return path


def test_capped_reader_applies_the_setting_and_removes_its_spill_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATRONLOAD_MEMORY_LIMIT", "123MB")
    with capped_reader(_database(tmp_path / "b.duckdb")) as con:
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
