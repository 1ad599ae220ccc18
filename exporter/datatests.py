"""Data tests: SQL that returns offending rows, run on a build before anything is exported.

Each file of `queries/tests/` is one SELECT; a row it returns is a problem. A header
line sets how much that matters:

    -- severity: warn        rows are reported, never block
    -- warn_up_to: 25        up to 25 rows warn, more fail

Two checks come with every project, because they follow from the final model's
contract rather than from any rule: the record key is unique, and no text value is
longer than `max_value_length` (a warning: the exporter cuts such values and counts
them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from exporter.duck import capped, first_line, literal, quote
from exporter.errors import BuildError, SqlError
from exporter.project import Project
from exporter.sources import parse_file
from exporter.text import table
from exporter.xmlwrite import Shape, shape_of

SEVERITY = re.compile(r"^\s*--\s*severity:\s*(\w+)\s*$", re.MULTILINE | re.IGNORECASE)
COUNT = "__patronload_rows"
WARN_UP_TO = re.compile(r"^\s*--\s*warn_up_to:\s*(\d+)\s*$", re.MULTILINE | re.IGNORECASE)


class DataTestError(BuildError):
    """A data test failed: the build is not fit to export."""


@dataclass(frozen=True)
class DataTest:
    """One check: a query whose rows are problems."""

    name: str
    where: str  # the file, or "built-in"
    sql: str
    warn_always: bool = False
    warn_up_to: int = 0

    def status(self, rows: int) -> str:
        if rows == 0:
            return "pass"
        if self.warn_always or rows <= self.warn_up_to:
            return "warn"
        return "fail"


@dataclass
class Outcome:
    """What one test found."""

    test: DataTest
    rows: int
    columns: list[str] = field(default_factory=list)
    first: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.test.status(self.rows)

    def summary(self) -> str:
        return f"{self.test.name} ({self.test.where}): {self.rows:,} row(s)"

    def lines(self) -> list[str]:
        """The result and, when it found rows, the first of them as an aligned table."""
        out = [f"{self.status.upper():<5} {self.summary()}"]
        if not self.first:
            return out
        cells = [[("" if v is None else str(v))[:60] for v in row] for row in self.first]
        out += ["      " + line for line in table(self.columns, cells)]
        if self.rows > len(self.first):
            out.append(f"      ... and {self.rows - len(self.first):,} more")
        return [line.rstrip() for line in out]


def _leaf_lengths(expr: str, shape: Shape, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(element path, SQL for the longest text at that path in one record)."""
    kind = shape[0]
    if kind == "varchar":
        yield path, f"length({expr})"
    elif kind == "struct":
        for name, child in shape[1]:
            step = f"{path}.{name}" if path else name
            yield from _leaf_lengths(f"struct_extract({expr}, {literal(name)})", child, step, depth)
    else:  # a list: the longest over its items
        var = f"x{depth}"
        for step, inner in _leaf_lengths(var, shape[1], path, depth + 1):
            yield step, f"list_max(list_transform({expr}, lambda {var}: {inner}))"


def built_in_tests(project: Project, con: duckdb.DuckDBPyConnection) -> list[DataTest]:
    """The checks every final model gets, compiled from its record type."""
    from exporter.export import GROUP_COLUMN, KEY_COLUMN, record_column

    settings = project.settings()
    final = quote(settings.final_model)
    column, duck_type = record_column(con, settings.final_model)
    limit = settings.max_value_length
    checks = ", ".join(
        f"{{'element': {literal(path)}, 'length': {sql}}}"
        for path, sql in _leaf_lengths(quote(column), shape_of(duck_type), "")
    )
    return [
        DataTest(
            "unique_record_key",
            "built-in",
            f"SELECT {KEY_COLUMN}, count(*) AS records, list({GROUP_COLUMN}) AS patron_types "
            f"FROM {final} GROUP BY {KEY_COLUMN} HAVING count(*) > 1 ORDER BY {KEY_COLUMN}",
        ),
        DataTest(
            f"values_within_{limit}_characters",
            "built-in",
            f"SELECT {KEY_COLUMN}, v.element, v.length FROM (SELECT {KEY_COLUMN}, "
            f"unnest(list_filter([{checks}], lambda c: c.length > {limit})) AS v FROM {final}) "
            f"ORDER BY {KEY_COLUMN}, v.element",
            warn_always=True,
        ),
    ]


def project_tests(project: Project) -> list[DataTest]:
    """Every `queries/tests/*.sql`, checked to be one SELECT."""
    tests = []
    folder = project.root / "queries" / "tests"
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        statements = parse_file(path, "duckdb")
        if len(statements) != 1:
            raise SqlError(f"{path}: a data test must be exactly one SELECT statement")
        sql = path.read_text(encoding="utf-8")
        severity = SEVERITY.search(sql)
        if severity and severity.group(1).lower() not in ("warn", "error"):
            raise SqlError(f"{path}: severity must be warn or error, not {severity.group(1)!r}")
        up_to = WARN_UP_TO.search(sql)
        tests.append(
            DataTest(
                path.stem,
                str(path.relative_to(project.root)),
                sql.strip().rstrip(";"),
                warn_always=bool(severity and severity.group(1).lower() == "warn"),
                warn_up_to=int(up_to.group(1)) if up_to else 0,
            )
        )
    return tests


def run_tests(project: Project, database: Path, first: int = 5) -> list[Outcome]:
    """Run every data test on a build; each returns how many rows it found and the first."""
    tests = project_tests(project)
    outcomes = []
    with capped(database) as con:
        for test in built_in_tests(project, con) + tests:
            try:  # one pass: the total rides along with the first rows
                cur = con.execute(
                    f"SELECT *, count(*) OVER () AS {COUNT} FROM ({test.sql}) LIMIT {first}"
                )
                sample = cur.fetchall()
            except duckdb.Error as exc:
                raise SqlError(f"{test.where}: the test does not run: {first_line(exc)}") from None
            columns = [d[0] for d in cur.description or []][:-1]
            rows = sample[0][-1] if sample else 0
            outcomes.append(Outcome(test, int(rows), columns, [r[:-1] for r in sample]))
    return outcomes


def check(outcomes: list[Outcome]) -> None:
    """Raise on the first failed test (all of them are in the outcomes already)."""
    failed = [o for o in outcomes if o.status == "fail"]
    if failed:
        more = f" (and {len(failed) - 1} more failed test(s))" if len(failed) > 1 else ""
        raise DataTestError(f"data test failed: {failed[0].summary()}{more}; nothing exported")
