"""Oracle source: the data warehouse read with python-oracledb, streamed into a snapshot.

Kept thin: connect, run each extract file's Oracle SQL as written, and copy its rows
batch by batch into the snapshot, typed as the same SQL is typed on a local warehouse.

What is exercised: the tests run this module against `tests/oracle_double.py` (DuckDB
behind oracledb's interface: NUMBER/VARCHAR2/DATE/CLOB values, batches, logon and
mid-fetch errors) and the real driver in thin mode against a closed port. What is not:
no Oracle server runs here, so a real logon, Oracle's own type conversions, network
behaviour past a refused connection and thick mode (Oracle Client libraries) are not.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

import duckdb
import oracledb
import pyarrow as pa

from exporter import duck
from exporter.duck import first_line, quote
from exporter.errors import SourceError
from exporter.sources import ExtractQuery, SourceTable

log = logging.getLogger(__name__)

#: Drivers (the oracledb module, or a test double) already switched to thick mode.
_THICK: weakref.WeakSet[Any] = weakref.WeakSet()

_BATCH = "_patronload_oracle_batch"


@dataclass(frozen=True)
class OracleSettings:
    """How to reach the warehouse. The password never appears in the repr."""

    user: str
    password: str = field(repr=False)
    host: str
    port: int
    sid: str
    lib_dir: str | None = None
    connect_timeout: float = 20.0

    @property
    def where(self) -> str:
        """`host:port/sid`, for messages."""
        return f"{self.host}:{self.port}/{self.sid}"


def _reason(exc: BaseException, password: str) -> str:
    """`<code>: <message>` of a driver error on one line, with the password scrubbed out.

    oracledb's messages start with their own code and may end with `Help:` lines; a
    refused connection gives its cause ("Connection refused") on a second line.
    """
    error = exc.args[0] if exc.args else None
    code = str(getattr(error, "full_code", "") or type(exc).__name__)
    message = str(getattr(error, "message", None) or exc)
    lines = [s.strip() for s in message.splitlines() if s.strip()]
    text = " ".join(s for s in lines if not s.startswith("Help:"))
    text = text.removeprefix(f"{code}:").strip()
    if password:
        text = text.replace(password, "***")
    return f"{code}: {text}" if text else code


def connect(settings: OracleSettings, driver: Any = None) -> Any:
    """Open a connection: thin mode, or thick mode (Oracle Client) when `lib_dir` is set.

    Args:
        settings: where and who.
        driver: the `oracledb` module (default) or an object with the same interface.

    Raises:
        SourceError: one line naming host, port, SID and the driver's error code.
    """
    driver = oracledb if driver is None else driver
    try:
        if settings.lib_dir and driver not in _THICK:
            driver.init_oracle_client(lib_dir=settings.lib_dir)  # once per process
            _THICK.add(driver)
        dsn = driver.makedsn(settings.host, settings.port, sid=settings.sid)
        log.debug("connecting to Oracle at %s as %s", settings.where, settings.user)
        return driver.connect(
            user=settings.user,
            password=settings.password,
            dsn=dsn,
            tcp_connect_timeout=settings.connect_timeout,
        )
    except driver.Error as exc:
        raise SourceError(
            f"cannot connect to Oracle at {settings.host}:{settings.port} "
            f"(SID {settings.sid}): {_reason(exc, settings.password)}"
        ) from None


def server_version(settings: OracleSettings, driver: Any = None) -> str:
    """The Oracle server's version, e.g. "19.3.0.0.0"; proves the settings work."""
    connection = connect(settings, driver)
    try:
        return str(connection.version)
    finally:
        connection.close()


def _output_types(query: ExtractQuery, tables: dict[str, SourceTable]) -> list[str]:
    """DuckDB types of the query's columns, as a local warehouse would give them."""
    scratch = duck.connect()
    try:
        for name in query.source_tables:
            scratch.execute(tables[name].ddl())
        relation = scratch.sql(f"SELECT * FROM ({query.to_duckdb()}) AS q LIMIT 0")
        return [str(t) for t in relation.types]
    finally:
        scratch.close()


class OracleWarehouse:
    """The data warehouse on Oracle, read with python-oracledb (see the module docstring)."""

    def __init__(
        self, settings: OracleSettings, driver: Any = None, batch_rows: int = 50_000
    ) -> None:
        self.settings = settings
        self.driver = oracledb if driver is None else driver
        self.batch_rows = batch_rows
        self.description = (
            f"oracle://{settings.user}@{settings.host}:{settings.port}/{settings.sid}"
        )
        self._connection: Any = None
        self._tables: dict[str, SourceTable] = {}

    def attach(self, con: duckdb.DuckDBPyConnection, tables: list[SourceTable]) -> None:
        """Connect before any row is copied, and remember the declared source tables."""
        self._tables = {t.name: t for t in tables}
        if self._connection is None:
            self._connection = connect(self.settings, self.driver)

    def _as_text(self, cursor: Any, metadata: Any) -> Any:
        """Fetch NUMBER as text (no float rounding, DuckDB casts it) and CLOB as str."""
        if metadata.type_code is self.driver.DB_TYPE_NUMBER:
            return cursor.var(self.driver.DB_TYPE_VARCHAR, arraysize=cursor.arraysize)
        if metadata.type_code is self.driver.DB_TYPE_CLOB:
            return cursor.var(self.driver.DB_TYPE_LONG, arraysize=cursor.arraysize)
        return None

    def copy(self, con: duckdb.DuckDBPyConnection, query: ExtractQuery, target: str) -> None:
        """Run the query's Oracle SQL and stream its rows into `main.<target>`."""
        if self._connection is None:
            raise SourceError(f"{query.path}: not connected to Oracle (attach first)")
        types = dict(zip(query.columns, _output_types(query, self._tables), strict=True))
        columns = ", ".join(f"{quote(c)} {t}" for c, t in types.items())
        con.execute(f"CREATE TABLE main.{quote(target)} ({columns})")
        casts = ", ".join(f"CAST({quote(c)} AS {t})" for c, t in types.items())
        insert = f"INSERT INTO main.{quote(target)} SELECT {casts} FROM {_BATCH}"

        cursor = self._connection.cursor()
        rows = 0
        try:
            cursor.arraysize = cursor.prefetchrows = self.batch_rows
            cursor.outputtypehandler = self._as_text
            try:
                cursor.execute(query.sql)
                names = [d[0].upper() for d in cursor.description]
                if names != list(query.columns):
                    raise SourceError(
                        f"{query.path}: Oracle returned the columns {', '.join(names)}, "
                        f"expected {', '.join(query.columns)}"
                    )
                while batch := cursor.fetchmany(self.batch_rows):
                    self._insert(con, query, insert, names, batch)
                    rows += len(batch)
                    log.debug("%s: %s rows from Oracle", query.name, rows)
            except self.driver.Error as exc:
                raise SourceError(
                    f"{query.path}: Oracle failed after {rows} rows: "
                    f"{_reason(exc, self.settings.password)}"
                ) from None
        finally:
            cursor.close()

    @staticmethod
    def _insert(
        con: duckdb.DuckDBPyConnection,
        query: ExtractQuery,
        insert: str,
        names: list[str],
        batch: list[tuple[Any, ...]],
    ) -> None:
        try:
            columns = [pa.array(values) for values in zip(*batch, strict=True)]
            table = pa.Table.from_arrays(columns, names=names)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise SourceError(f"{query.path}: cannot hold Oracle's values: {exc}") from None
        con.register(_BATCH, table)
        try:
            con.execute(insert)
        except duckdb.Error as exc:
            raise SourceError(
                f"{query.path}: Oracle's values do not fit the types: {first_line(exc)}"
            ) from None
        finally:
            con.unregister(_BATCH)

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except self.driver.Error as exc:  # the rows are already in the snapshot
                log.debug("closing the Oracle connection: %s", _reason(exc, self.settings.password))
