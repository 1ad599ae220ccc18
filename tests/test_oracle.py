"""The Oracle source, against tests/oracle_double.py (and the real driver on a closed port)."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from exporter.errors import SourceError
from exporter.extract import extract
from exporter.oracle import OracleSettings, OracleWarehouse, connect, server_version
from exporter.project import Project, load_project
from exporter.sources import ExtractQuery, load_extracts, load_sources
from tests.conftest import FIXTURES
from tests.oracle_double import DB_TYPE_LONG, DB_TYPE_VARCHAR, OracleDouble

PASSWORD = "s3cret-Pw!"
SETTINGS = OracleSettings(
    user="patron_ro", password=PASSWORD, host="dw.example.edu", port=1521, sid="DWPROD"
)


def rules_double(**options: Any) -> OracleDouble:
    """The rules fixture warehouse, served as Oracle would serve it."""
    sources = load_sources(load_project())
    return OracleDouble.from_csv_folder(FIXTURES / "rules", sources.values(), **options)


def tables(snapshot: Path) -> dict[str, tuple[list[tuple[str, str]], list[tuple[Any, ...]]]]:
    """Every extracted table of a snapshot: its columns with types, and its rows sorted."""
    with duckdb.connect(str(snapshot), read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() "
                "WHERE NOT starts_with(table_name, '_patronload') ORDER BY 1"
            ).fetchall()
        ]
        return {
            name: (
                [(c[0], c[1]) for c in con.execute(f'DESCRIBE "{name}"').fetchall()],
                con.execute(f'SELECT * FROM "{name}" ORDER BY ALL').fetchall(),
            )
            for name in names
        }


@pytest.fixture
def things(tmp_path: Path) -> tuple[Project, Path]:
    """A test-only project reading THING (NUMBER, CLOB, DATE columns) and its warehouse file."""
    root = tmp_path / "project"
    (root / "schemas").mkdir(parents=True)
    (root / "queries" / "extract").mkdir(parents=True)
    (root / "schemas" / "sources.sql").write_text(
        "CREATE TABLE THING (ID VARCHAR2(10), BIG NUMBER(38), PRICE NUMBER(12,2), "
        "SEEN DATE, NOTES CLOB);\n"
    )
    (root / "queries" / "extract" / "things.sql").write_text(
        "SELECT t.ID, t.BIG, t.PRICE, t.SEEN, t.NOTES FROM THING t\n"
    )
    project = Project(root)
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(load_sources(project)["THING"].ddl())
        con.execute(
            "INSERT INTO THING VALUES "
            "('000123', 123456789012345678901234567, 0.10, '2027-06-30', 'a long note'), "
            "('0042', 9007199254740993, 12345678.99, NULL, NULL), "
            "('1e5', NULL, -0.5, '1999-12-31', '')"
        )
    return project, warehouse


def test_oracle_extract_equals_local_extract(tmp_path: Path) -> None:
    warehouse = OracleWarehouse(SETTINGS, rules_double(), batch_rows=3)
    from_oracle = extract(load_project(), warehouse, tmp_path / "oracle")
    local = extract(load_project(), FIXTURES / "rules", tmp_path / "local")

    assert from_oracle.rows == local.rows
    assert tables(from_oracle.snapshot) == tables(local.snapshot)
    assert set(tables(local.snapshot)) == {"staff", "student"}


def test_oracle_extract_records_source_without_password(tmp_path: Path) -> None:
    result = extract(load_project(), OracleWarehouse(SETTINGS, rules_double()), tmp_path)
    with duckdb.connect(str(result.snapshot), read_only=True) as con:
        source = con.execute("SELECT value FROM _patronload_meta WHERE key = 'source'").fetchone()
    assert source == ("oracle://patron_ro@dw.example.edu:1521/DWPROD",)


def test_oracle_fetches_in_batches_never_fetchall(tmp_path: Path) -> None:
    double = rules_double()
    extract(load_project(), OracleWarehouse(SETTINGS, double, batch_rows=3), tmp_path)

    assert double.fetchall_calls == 0
    assert set(double.fetchmany_sizes) == {3}
    assert len(double.fetchmany_sizes) >= 6  # 10 staff and 9 students, 3 at a time
    assert [(c.arraysize, c.prefetchrows, c.closed) for c in double.cursors] == [(3, 3, True)] * 2
    assert [c.closed for c in double.connections] == [True]
    assert double.connects == [
        {
            "user": "patron_ro",
            "dsn": "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=dw.example.edu)(PORT=1521))"
            "(CONNECT_DATA=(SID=DWPROD)))",
            "tcp_connect_timeout": 20.0,
        }
    ]


def test_oracle_keeps_leading_zeros_of_text_ids(tmp_path: Path) -> None:
    result = extract(load_project(), OracleWarehouse(SETTINGS, rules_double()), tmp_path)
    with duckdb.connect(str(result.snapshot), read_only=True) as con:
        ids = {r[0] for r in con.execute("SELECT MIT_ID FROM staff").fetchall()}
    assert {"012345678", "000000002"} <= ids


def test_oracle_fetches_number_as_text_and_clob_as_str(
    tmp_path: Path, things: tuple[Project, Path]
) -> None:
    project, warehouse = things
    double = OracleDouble(duckdb.connect(str(warehouse), read_only=True), clobs={"NOTES"})
    from_oracle = extract(project, OracleWarehouse(SETTINGS, double, batch_rows=2), tmp_path / "o")
    local = extract(project, warehouse, tmp_path / "local")

    assert [c.fetched_as for c in double.cursors] == [
        {
            "ID": DB_TYPE_VARCHAR,
            "BIG": DB_TYPE_VARCHAR,
            "PRICE": DB_TYPE_VARCHAR,
            "SEEN": double.DB_TYPE_DATE,
            "NOTES": DB_TYPE_LONG,
        }
    ]
    assert tables(from_oracle.snapshot) == tables(local.snapshot)
    with duckdb.connect(str(from_oracle.snapshot), read_only=True) as con:
        rows = con.execute("SELECT ID, BIG::VARCHAR, PRICE::VARCHAR FROM things ORDER BY ID")
        assert rows.fetchall() == [
            ("000123", "123456789012345678901234567", "0.10"),  # a float would round these
            ("0042", "9007199254740993", "12345678.99"),
            ("1e5", None, "-0.50"),
        ]


def test_oracle_without_number_handler_would_lose_digits(things: tuple[Project, Path]) -> None:
    """The double is honest: without the handler NUMBER(38) comes back as int or float."""
    _, warehouse = things
    double = OracleDouble(duckdb.connect(str(warehouse), read_only=True))
    cursor = double.connect(user="u", password=double.password).cursor()
    cursor.execute("SELECT BIG, PRICE FROM THING WHERE ID = '0042'")
    assert cursor.fetchmany(5) == [(9007199254740993, 12345678.99)]


def test_oracle_columns_other_than_expected_name_the_file(
    tmp_path: Path, things: tuple[Project, Path]
) -> None:
    project, warehouse = things
    (query,) = load_extracts(project)
    renamed = ExtractQuery(
        query.name,
        query.path,
        query.sql,
        query.source_tables,
        ("ID", "BIG", "COST", "SEEN", "NOTES"),
    )
    source = OracleWarehouse(SETTINGS, OracleDouble(duckdb.connect(str(warehouse), read_only=True)))
    with duckdb.connect() as con:
        source.attach(con, list(load_sources(project).values()))
        with pytest.raises(SourceError) as caught:
            source.copy(con, renamed, "things")
    assert str(caught.value) == (
        f"{query.path}: Oracle returned the columns ID, BIG, PRICE, SEEN, NOTES, "
        "expected ID, BIG, COST, SEEN, NOTES"
    )


def test_oracle_thick_mode_initialises_client_once_with_lib_dir() -> None:
    double = rules_double()
    thick = OracleSettings(**{**vars(SETTINGS), "lib_dir": "/opt/oracle/instantclient_23_5"})
    connect(thick, double).close()
    connect(thick, double).close()
    assert double.init_calls == ["/opt/oracle/instantclient_23_5"]


def test_oracle_thin_mode_does_not_initialise_client() -> None:
    double = rules_double()
    connect(SETTINGS, double).close()
    assert double.init_calls == []
    assert len(double.connections) == 1


@pytest.mark.parametrize("echo", [False, True])
def test_oracle_wrong_password_is_one_line_without_password(
    caplog: pytest.LogCaptureFixture, echo: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = OracleSettings(**{**vars(SETTINGS), "password": "not-the-Pw"})
    with pytest.raises(SourceError) as caught:
        server_version(wrong, rules_double(echo_password=echo))
    message = str(caught.value)
    expected = (
        "cannot connect to Oracle at dw.example.edu:1521 (SID DWPROD): "
        "ORA-01017: invalid credential or not authorized; logon denied"
    )
    assert message == (expected + " (password ***)" if echo else expected)
    assert "not-the-Pw" not in message + caplog.text + repr(wrong)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_oracle_unreachable_names_host_and_dpy_code() -> None:
    with pytest.raises(SourceError) as caught:
        OracleWarehouse(SETTINGS, rules_double(reachable=False)).attach(duckdb.connect(), [])
    assert str(caught.value) == (
        "cannot connect to Oracle at dw.example.edu:1521 (SID DWPROD): DPY-6005: cannot connect "
        "to database (CONNECTION_ID=double). [Errno 111] Connection refused"
    )


def test_oracle_failure_mid_fetch_leaves_no_snapshot(tmp_path: Path) -> None:
    warehouse = OracleWarehouse(SETTINGS, rules_double(fail_after_rows=5), batch_rows=2)
    snapshots = tmp_path / "snapshots"
    with pytest.raises(SourceError) as caught:
        extract(load_project(), warehouse, snapshots)
    staff_sql = load_project().extract_dir / "staff.sql"
    assert str(caught.value) == (
        f"{staff_sql}: Oracle failed after 4 rows: ORA-03113: end-of-file on communication channel"
    )
    assert list(snapshots.iterdir()) == []
    warehouse.close()  # already closed by extract; closing again is harmless


def test_oracle_server_version_closes_its_connection() -> None:
    double = rules_double()
    assert server_version(SETTINGS, double) == "19.3.0.0.0"
    assert [c.closed for c in double.connections] == [True]


def test_oracle_settings_repr_hides_password() -> None:
    assert PASSWORD not in repr(SETTINGS)
    assert SETTINGS.where == "dw.example.edu:1521/DWPROD"
    assert PASSWORD not in OracleWarehouse(SETTINGS, rules_double()).description


def test_oracle_real_driver_refused_port_fails_fast_with_dpy_code() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = OracleSettings("u", PASSWORD, "127.0.0.1", port, "ORCL", connect_timeout=3.0)
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        server_version(settings)
    message = str(caught.value)
    assert time.monotonic() - started < 10
    assert message.startswith(f"cannot connect to Oracle at 127.0.0.1:{port} (SID ORCL): DPY-")
    assert "\n" not in message and "Traceback" not in message and PASSWORD not in message
