"""A stand-in for python-oracledb: the parts exporter/oracle.py uses, backed by DuckDB.

Oracle SQL is transpiled with sqlglot (oracle -> duckdb) and run on a DuckDB database
holding the source tables. Values come back as oracledb returns them: VARCHAR2 as str,
DATE as datetime.datetime, NUMBER as int (integral) or float, CLOB as a LOB to `read()`;
an `outputtypehandler` returning a VARCHAR var gets NUMBER as str, a LONG var CLOB as str.
Faults on demand (wrong password, unreachable host, a dropped connection mid-fetch) raise
errors shaped like oracledb's, and every call the code under test makes is recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import sqlglot

from exporter.duck import literal, quote
from exporter.sources import SourceTable


@dataclass(frozen=True)
class DbType:
    """An Oracle column type, compared by identity as oracledb's DbType is."""

    name: str


DB_TYPE_NUMBER = DbType("DB_TYPE_NUMBER")
DB_TYPE_VARCHAR = DbType("DB_TYPE_VARCHAR")
DB_TYPE_CLOB = DbType("DB_TYPE_CLOB")
DB_TYPE_LONG = DbType("DB_TYPE_LONG")
DB_TYPE_DATE = DbType("DB_TYPE_DATE")


class ErrorInfo:
    """Like oracledb's `_Error`, the object in `exc.args[0]`."""

    def __init__(self, message: str, code: int = 0) -> None:
        self.message = message
        self.code = code
        self.full_code = message.split(":", 1)[0]
        self.context: str | None = None
        self.isrecoverable = False

    def __str__(self) -> str:
        return self.message


class Error(Exception):
    """oracledb.Error."""


class DatabaseError(Error):
    """oracledb.DatabaseError."""


class OperationalError(DatabaseError):
    """oracledb.OperationalError."""


class InterfaceError(Error):
    """oracledb.InterfaceError."""


LOGON_DENIED = "ORA-01017: invalid credential or not authorized; logon denied"
UNREACHABLE = (
    "DPY-6005: cannot connect to database (CONNECTION_ID=double).\n[Errno 111] Connection refused"
)
EOF_ON_CHANNEL = "ORA-03113: end-of-file on communication channel"


def _help(message: str, code: int) -> str:
    """oracledb (thin mode) appends a help link to ORA- messages."""
    return f"{message}\nHelp: https://docs.oracle.com/error-help/db/ora-{code:05}/"


@dataclass(frozen=True)
class Var:
    """What `cursor.var()` returns; the double only looks at its type."""

    type: DbType
    arraysize: int


@dataclass(frozen=True)
class FetchInfo:
    """Column metadata passed to an outputtypehandler, like oracledb's FetchInfo."""

    name: str
    type_code: DbType
    display_size: int | None = None
    internal_size: int | None = None
    precision: int | None = None
    scale: int | None = None
    null_ok: bool = True


class Lob:
    """A CLOB locator: the text comes with `read()`."""

    def __init__(self, text: str) -> None:
        self._text = text

    def read(self) -> str:
        return self._text


def _oracle_type(duck_type: str, name: str, clobs: set[str]) -> DbType:
    if name in clobs:
        return DB_TYPE_CLOB
    if duck_type == "VARCHAR":
        return DB_TYPE_VARCHAR
    if duck_type in ("DATE", "TIMESTAMP"):
        return DB_TYPE_DATE
    return DB_TYPE_NUMBER


def _number(value: Any, as_text: bool) -> Any:
    """A NUMBER as oracledb gives it: int or float, or Oracle's text for it."""
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if as_text:
        return format(number.normalize(), "f")
    return int(number) if number == number.to_integral_value() else float(number)


def _convert(value: Any, type_code: DbType, fetched_as: DbType) -> Any:
    if value is None:
        return None
    if type_code is DB_TYPE_NUMBER:
        return _number(value, fetched_as is DB_TYPE_VARCHAR)
    if type_code is DB_TYPE_DATE:  # Oracle DATE always has a time of day
        return value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    if type_code is DB_TYPE_CLOB:
        return str(value) if fetched_as is DB_TYPE_LONG else Lob(str(value))
    return str(value)


class Cursor:
    """A DB-API cursor over the double's DuckDB, with oracledb's conversions."""

    def __init__(self, driver: OracleDouble) -> None:
        self.driver = driver
        self.arraysize = 100
        self.prefetchrows = 2
        self.outputtypehandler: Any = None
        self.description: list[tuple[Any, ...]] | None = None
        #: what each column was fetched as, after the outputtypehandler had its say
        self.fetched_as: dict[str, DbType] = {}
        self.delivered = 0
        self.closed = False
        self._db = driver.db.cursor()
        self._types: list[DbType] = []

    def var(self, type_: DbType, arraysize: int = 1, **_: Any) -> Var:
        return Var(type_, arraysize)

    def execute(self, sql: str, parameters: Any = None) -> None:
        self.driver.executed.append(sql)
        self._db.execute(sqlglot.transpile(sql, read="oracle", write="duckdb")[0])
        columns = self._db.description or []
        self._types = [_oracle_type(str(c[1]), c[0].upper(), self.driver.clobs) for c in columns]
        self.description = [
            (c[0].upper(), t, None, None, None, None, True)
            for c, t in zip(columns, self._types, strict=True)
        ]
        self.fetched_as = {}
        for (name, *_), type_code in zip(self.description, self._types, strict=True):
            var = (
                self.outputtypehandler(self, FetchInfo(name, type_code))
                if self.outputtypehandler
                else None
            )
            self.fetched_as[name] = var.type if isinstance(var, Var) else type_code

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        size = self.arraysize if size is None else size
        self.driver.fetchmany_sizes.append(size)
        rows = self._db.fetchmany(size)
        fail_after = self.driver.fail_after_rows
        if fail_after is not None and self.delivered + len(rows) > fail_after:
            raise DatabaseError(ErrorInfo(_help(EOF_ON_CHANNEL, 3113), 3113))
        self.delivered += len(rows)
        fetched = list(self.fetched_as.values())
        return [
            tuple(_convert(v, t, f) for v, t, f in zip(row, self._types, fetched, strict=True))
            for row in rows
        ]

    def fetchall(self) -> list[tuple[Any, ...]]:
        self.driver.fetchall_calls += 1
        if self.driver.forbid_fetchall:
            raise AssertionError("fetchall() holds the whole result in memory; use fetchmany()")
        rows = []
        while batch := self.fetchmany(self.arraysize):
            rows.extend(batch)
        return rows

    def close(self) -> None:
        self.closed = True
        self._db.close()


class Connection:
    """An open logon."""

    def __init__(self, driver: OracleDouble) -> None:
        self.driver = driver
        self.version = driver.version
        self.closed = False

    def cursor(self) -> Cursor:
        if self.closed:
            raise InterfaceError(ErrorInfo("DPY-1001: not connected to database"))
        cursor = Cursor(self.driver)
        self.driver.cursors.append(cursor)
        return cursor

    def close(self) -> None:
        self.closed = True


@dataclass
class OracleDouble:
    """The `oracledb` module as far as exporter/oracle.py uses it.

    Args:
        db: DuckDB holding the source tables (see `from_csv_folder`).
        password: the one password the "server" accepts.
        reachable: False to refuse every connection (DPY-6005).
        fail_after_rows: drop the connection (ORA-03113) on the fetch that would pass it.
        echo_password: a careless driver that repeats the password in its logon error.
        clobs: column names the "server" declares CLOB.
        forbid_fetchall: fail the test if the code fetches everything at once.
    """

    db: duckdb.DuckDBPyConnection
    password: str = "s3cret-Pw!"
    version: str = "19.3.0.0.0"
    reachable: bool = True
    fail_after_rows: int | None = None
    echo_password: bool = False
    clobs: set[str] = field(default_factory=set)
    forbid_fetchall: bool = True
    # recorded calls
    init_calls: list[str | None] = field(default_factory=list)
    connects: list[dict[str, Any]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    cursors: list[Cursor] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    fetchmany_sizes: list[int] = field(default_factory=list)
    fetchall_calls: int = 0

    Error = Error
    DatabaseError = DatabaseError
    OperationalError = OperationalError
    InterfaceError = InterfaceError
    DB_TYPE_NUMBER = DB_TYPE_NUMBER
    DB_TYPE_VARCHAR = DB_TYPE_VARCHAR
    DB_TYPE_CLOB = DB_TYPE_CLOB
    DB_TYPE_LONG = DB_TYPE_LONG
    DB_TYPE_DATE = DB_TYPE_DATE

    __hash__ = object.__hash__  # one driver per test; exporter/oracle.py keeps a WeakSet

    @classmethod
    def from_csv_folder(
        cls, folder: Path, tables: Iterable[SourceTable], **options: Any
    ) -> OracleDouble:
        """A double whose tables are `<folder>/<TABLE>.csv`, typed as declared."""
        db = duckdb.connect()
        for table in tables:
            db.execute(table.ddl())
            casts = ", ".join(f"CAST({quote(c)} AS {t})" for c, t in table.columns.items())
            db.execute(
                f"INSERT INTO {quote(table.name)} SELECT {casts} FROM read_csv("
                f"{literal(str(folder / f'{table.name}.csv'))}, header=true, all_varchar=true, "
                "nullstr='', quote='\"', escape='\"')"
            )
        return cls(db, **options)

    @staticmethod
    def makedsn(host: str, port: int, sid: str | None = None, **_: Any) -> str:
        return (
            f"(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST={host})(PORT={port}))"
            f"(CONNECT_DATA=(SID={sid})))"
        )

    def init_oracle_client(self, lib_dir: str | None = None, **_: Any) -> None:
        self.init_calls.append(lib_dir)

    def connect(
        self,
        user: str | None = None,
        password: str | None = None,
        dsn: str | None = None,
        **params: Any,
    ) -> Connection:
        self.connects.append({"user": user, "dsn": dsn, **params})
        if not self.reachable:
            raise OperationalError(ErrorInfo(UNREACHABLE))
        if password != self.password:
            message = (
                f"{LOGON_DENIED} (password {password})" if self.echo_password else LOGON_DENIED
            )
            raise DatabaseError(ErrorInfo(_help(message, 1017), 1017))
        connection = Connection(self)
        self.connections.append(connection)
        return connection
