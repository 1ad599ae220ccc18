"""Source table definitions (schemas/sources.sql) and the extract SQL checked against them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

from exporter.duck import quote
from exporter.errors import SqlError
from exporter.project import Project

#: sqlglot types that are stored as text; everything the warehouse calls text stays text.
_TEXT_TYPES = exp.DataType.TEXT_TYPES


@dataclass(frozen=True)
class SourceTable:
    """A warehouse table: its name and its columns with DuckDB types, in order."""

    name: str
    columns: dict[str, str]

    def ddl(self) -> str:
        """CREATE TABLE for an empty copy of this table in DuckDB."""
        cols = ", ".join(f"{quote(c)} {t}" for c, t in self.columns.items())
        return f"CREATE TABLE {quote(self.name)} ({cols})"


@dataclass(frozen=True)
class ExtractQuery:
    """One file of queries/extract/: the snapshot table it fills and its SQL."""

    name: str
    path: Path
    sql: str
    source_tables: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    def to_duckdb(self) -> str:
        """The same query in DuckDB's dialect; constructs DuckDB lacks are errors."""
        try:
            return sqlglot.transpile(
                self.sql, read="oracle", write="duckdb", unsupported_level=ErrorLevel.RAISE
            )[0]
        except UnsupportedError as exc:
            raise SqlError(f"{self.path}: cannot run on a local warehouse: {exc}") from None


def _duckdb_type(kind: exp.DataType) -> str:
    if kind.this in _TEXT_TYPES:
        return "VARCHAR"
    if kind.this == exp.DataType.Type.DATE:
        # Oracle DATE carries a time of day; the loader only uses the date.
        return "DATE"
    return kind.sql("duckdb")


def parse_file(path: Path, dialect: str) -> list[exp.Expression]:
    """Parse a SQL file, turning a syntax error into `file:line:col: message`."""
    text = path.read_text(encoding="utf-8")
    try:
        return [e for e in sqlglot.parse(text, read=dialect) if isinstance(e, exp.Expression)]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f"{path}:{first.get('line', '?')}:{first.get('col', '?')}"
        raise SqlError(f"{where}: {first.get('description', exc)}") from None


def where(path: Path, node: exp.Expr) -> str:
    """`file:line:col` of the first character of a parsed node's name."""
    ident = node.this if isinstance(node.this, exp.Expression) else node
    meta = ident.meta or {}
    if "start" not in meta:
        return f"{path}:{meta.get('line', '?')}:{meta.get('col', '?')}"
    text = path.read_text(encoding="utf-8")[: meta["start"]]
    return f"{path}:{text.count(chr(10)) + 1}:{meta['start'] - text.rfind(chr(10))}"


def load_sources(project: Project) -> dict[str, SourceTable]:
    """Read `schemas/sources.sql` (Oracle CREATE TABLE statements)."""
    tables: dict[str, SourceTable] = {}
    for stmt in parse_file(project.sources_file, "oracle"):
        if not isinstance(stmt, exp.Create) or not isinstance(stmt.this, exp.Schema):
            raise SqlError(f"{where(project.sources_file, stmt)}: only CREATE TABLE is allowed")
        name = stmt.this.this.name.upper()
        columns = {
            col.name.upper(): _duckdb_type(col.args["kind"])
            for col in stmt.this.expressions
            if isinstance(col, exp.ColumnDef)
        }
        tables[name] = SourceTable(name, columns)
    return tables


def extract_problems(
    tree: exp.Expr, sources: dict[str, SourceTable]
) -> Iterator[tuple[exp.Expr, str]]:
    """Each name in an extract query that schemas/sources.sql does not declare, with its node.

    `load_extracts` stops at the first; `patronload lint` reports them all.
    """
    if not isinstance(tree, exp.Select):
        yield tree, "an extract file must be a single SELECT"
        return
    ctes = {cte.alias_or_name.upper() for cte in tree.find_all(exp.CTE)}
    aliases: dict[str, str | None] = {}  # None: an unknown table, already reported
    for table in tree.find_all(exp.Table):
        name = table.name.upper()
        if name in ctes:
            continue
        if name not in sources:
            yield table, f"unknown table {table.name} (known: {', '.join(sorted(sources))})"
        aliases[(table.alias or table.name).upper()] = name if name in sources else None
    for column in tree.find_all(exp.Column):
        qualifier = column.table.upper()
        if qualifier and qualifier not in aliases:
            yield column.args["table"], f"unknown table or alias {column.table}"
            continue
        candidates = [aliases[qualifier]] if qualifier else list(aliases.values())
        if None in candidates:
            continue  # it may belong to the unknown table, reported already
        tables = [t for t in dict.fromkeys(candidates) if t is not None]
        if not any(column.name.upper() in sources[t].columns for t in tables):
            yield column, f"unknown column {column.name} in {', '.join(tables)}"
    for star in tree.expressions:
        if isinstance(star, exp.Star):
            yield star, "name the columns; SELECT * hides what the extract reads"


def _check_select(
    path: Path, tree: exp.Expression, sources: dict[str, SourceTable]
) -> ExtractQuery:
    for node, message in extract_problems(tree, sources):
        raise SqlError(f"{where(path, node)}: {message}")
    used = [t.name.upper() for t in tree.find_all(exp.Table) if t.name.upper() in sources]
    return ExtractQuery(
        name=path.stem,
        path=path,
        sql=path.read_text(encoding="utf-8"),
        source_tables=tuple(dict.fromkeys(used)),
        columns=tuple(e.alias_or_name.upper() for e in tree.expressions),
    )


def load_extracts(project: Project) -> list[ExtractQuery]:
    """Parse and check every extract file before any source is touched."""
    sources = load_sources(project)
    files = sorted(project.extract_dir.glob("*.sql"))
    if not files:
        raise SqlError(f"no extract queries in {project.extract_dir}")
    queries = []
    for path in files:
        statements = parse_file(path, "oracle")
        if len(statements) != 1:
            raise SqlError(f"{path}: expected one SELECT, found {len(statements)} statements")
        queries.append(_check_select(path, statements[0], sources))
    return queries
