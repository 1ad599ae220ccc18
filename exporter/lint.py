"""Lint: every SQL file of a project checked without a warehouse, each problem at file:line:col.

Two passes; neither stops at the first problem.

1. What the SQL says, read by sqlglot in each folder's dialect: syntax, that every table
   read is known, extract columns against `schemas/sources.sql`, Oracle that does not
   transpile, names that clash, models that read each other in a cycle, the final
   model's select list, settings that name no model.
2. What DuckDB makes of it, in memory: empty source tables, the extracts, seeds,
   `run_context` and macros, then every model in dependency order and every data test,
   each bound on empty tables. DuckDB's binder judges columns, functions and types; the
   caret under its `LINE n:` gives the position.

A file that fails does not drown its dependants in errors. When its select list names
its columns, an empty stand-in with those names (of DuckDB's NULL type, which fits most
uses) takes its place, so the dependants that bind on it are known to be fine. A
dependant that does not, or that reads a file with no stand-in, is not reported: it is
named in the first failure's problem as not checked.
"""

from __future__ import annotations

import difflib
import graphlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError
from sqlglot.tokenizer_core import TokenType

from exporter.build import EXPORT_ORDER
from exporter.duck import connect, first_line, quote
from exporter.models import RUN_CONTEXT, VIEW_DIRECTIVE
from exporter.project import Project
from exporter.sources import SourceTable, extract_problems, load_sources

#: Where DuckDB shows an error: `LINE n: <text>` and, below it, a caret.
_CARET = re.compile(r"\nLINE (\d+): (.*)\n( *)\^")
#: DuckDB's suggestions, on the lines after its message.
_HINTS = ("Did you mean", "Candidate bindings:")
#: Blanks and comments before a statement's first token.
_LEADING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
#: A `;` with nothing but blanks and comments after it.
_TRAILING_SEMICOLON = re.compile(r";(?=(?:\s+|--[^\n]*|/\*.*?\*/)*\Z)", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One finding: the file, the line and column (both from 1) and what is wrong."""

    path: Path
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{_shown(self.path)}:{self.line}:{self.col}: {self.message}"


@dataclass
class LintResult:
    """Every problem found, in file order, and how many files were checked."""

    problems: list[Problem] = field(default_factory=list)
    files: int = 0


@dataclass
class _SqlFile:
    """A SQL file on its way through the lint."""

    path: Path
    name: str  # the table it fills, lower case; a data test's file stem
    kind: str  # "extract", "model" or "test"
    text: str
    tree: exp.Expr | None = None
    reads: tuple[str, ...] = ()
    problem: int | None = None  # index of its first problem
    duckdb_sql: str = ""  # an extract, transpiled

    @property
    def label(self) -> str:
        return f"{self.name} (test)" if self.kind == "test" else self.name


def lint_project(project: Project) -> LintResult:
    """Check every SQL file of `project` and report all problems found, in file order."""
    lint = _Lint(project)
    sources = lint.sources()
    extracts = lint.extracts(sources)
    seeds = lint.seeds(extracts)
    models, order = lint.models(extracts, seeds)
    tests = lint.tests(set(extracts) | set(seeds) | set(models) | {RUN_CONTEXT})
    lint.settings(models, seeds)
    con = connect()
    try:
        lint.bind_inputs(con, sources, extracts, seeds)
        for name in order:
            lint.bind(con, models[name])
        for test in tests:
            lint.bind(con, test)
    finally:
        con.close()
    return lint.result()


class _Lint:
    """The problems found so far, and which tables could not be built because of which."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.final = project.settings().final_model.lower()
        self.problems: list[Problem] = []
        self.files = 0
        self.failed: dict[str, list[int]] = {}  # table -> the problems that stop it
        self.failed_macros: dict[str, list[int]] = {}
        self.tentative: dict[str, list[int]] = {}  # table read through a stand-in
        self.skipped: dict[int, list[str]] = defaultdict(list)
        self.sources_problem: list[int] = []  # schemas/sources.sql's first, if any

    # Recording

    def add(self, path: Path, line: int, col: int, message: str) -> int:
        self.problems.append(Problem(path, line, col, message))
        return len(self.problems) - 1

    def add_at(
        self,
        f: _SqlFile,
        node: exp.Expr | None,
        message: str,
        blocks: bool = True,
        whole: bool = False,
    ) -> int:
        """A problem at a parsed node (or the file's first token); `blocks`: not buildable."""
        line, col = _node_position(f.text, node, whole) if node else _start(f.text)
        index = self.add(f.path, line, col, message)
        if blocks and f.problem is None:
            f.problem = index
        return index

    def result(self) -> LintResult:
        """The problems in file order, each naming what it kept from being checked."""
        problems = list(self.problems)
        for index, labels in self.skipped.items():
            note = ", ".join(sorted(dict.fromkeys(labels)))
            problems[index] = replace(
                problems[index],
                message=f"{problems[index].message}; not checked until fixed: {note}",
            )
        problems.sort(key=lambda p: (str(p.path), p.line, p.col))
        return LintResult(problems, self.files)

    # Pass 1: what sqlglot sees

    def load(self, path: Path, kind: str) -> _SqlFile | None:
        """A file's text; None, and a problem, if it cannot be read."""
        self.files += 1
        try:
            return _SqlFile(path, path.stem.lower(), kind, path.read_text(encoding="utf-8"))
        except (OSError, UnicodeError) as exc:
            self.add(path, 1, 1, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}")
            return None

    def parse(self, f: _SqlFile, dialect: str) -> list[exp.Expr] | None:
        """The statements of a file; a syntax error is its problem, and gives None."""
        try:
            return [s for s in sqlglot.parse(f.text, read=dialect) if s is not None]
        except ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            line, col = int(first.get("line") or 1), int(first.get("col") or 1)
            token = str(first.get("highlight") or "")
            if token and "\n" not in token:
                col = max(1, col - len(token) + 1)  # sqlglot points at the token's last character
            f.problem = self.add(f.path, line, col, str(first.get("description") or exc))
        except SqlglotError as exc:
            self.add_at(f, None, f"cannot read the SQL: {exc}")
        return None

    def read(self, path: Path, kind: str, dialect: str) -> _SqlFile | None:
        """Read and parse a file that must hold one query; None if it cannot be read."""
        f = self.load(path, kind)
        statements = self.parse(f, dialect) if f else None
        if f is None or statements is None:
            return f
        if kind == "model":  # a closing ; is a problem of its own (check_model)
            statements = [s for s in statements if not isinstance(s, exp.Semicolon)]
        if len(statements) == 1 and isinstance(statements[0], exp.Query):
            f.tree = statements[0]
            return f
        what = {"extract": "an extract", "model": "a model", "test": "a data test"}[kind]
        # At the second statement, or at the ; before a comment sqlglot counts as one.
        spans = _statements(f.text)
        if len(spans) > 1:
            line, col = _start(f.text, spans[1][0])
        elif spans and f.text[spans[0][1] - 1] == ";":
            line, col = _position(f.text, spans[0][1] - 1)
        else:
            line, col = _start(f.text)
        f.problem = self.add(f.path, line, col, f"{what} must be exactly one SELECT statement")
        return f

    def sources(self) -> dict[str, SourceTable] | None:
        """schemas/sources.sql, or None when it has problems (then extracts go unchecked)."""
        before = len(self.problems)
        f = self.load(self.project.sources_file, "sources")
        statements = self.parse(f, "oracle") if f else None
        if f is not None and statements is not None:
            spans = _statements(f.text)
            for stmt, (start, _) in zip(statements, spans, strict=False):
                if not (isinstance(stmt, exp.Create) and isinstance(stmt.this, exp.Schema)):
                    message = "only CREATE TABLE is allowed"
                    self.add(f.path, *_start(f.text, start), message)
        if len(self.problems) > before:
            self.sources_problem = [before]
            return None
        return load_sources(self.project)

    def extracts(self, sources: dict[str, SourceTable] | None) -> dict[str, _SqlFile]:
        """queries/extract/: syntax (Oracle), names against the schemas, transpiling."""
        extracts: dict[str, _SqlFile] = {}
        for path in sorted(self.project.extract_dir.glob("*.sql")):
            f = self.read(path, "extract", "oracle")
            if f is None:
                continue
            extracts[f.name] = f
            if f.tree is None:
                continue
            if sources is not None:
                self.check_extract_names(f, f.tree, sources)
            self.check_transpiles(f, f.tree)
        return extracts

    def check_extract_names(
        self, f: _SqlFile, tree: exp.Expr, sources: dict[str, SourceTable]
    ) -> None:
        """Tables and columns against schemas/sources.sql, as `load_extracts` checks them."""
        for node, message in extract_problems(tree, sources):
            self.add_at(f, node, message, whole=isinstance(node, exp.Star))

    def check_transpiles(self, f: _SqlFile, tree: exp.Expr) -> None:
        """Each Oracle construct DuckDB lacks, at its own position (`ExtractQuery.to_duckdb`)."""
        try:
            f.duckdb_sql = tree.sql("duckdb", unsupported_level=ErrorLevel.RAISE)
        except UnsupportedError as exc:
            found: list[tuple[exp.Expr | None, str]] = [*_unsupported(tree)]
            for node, message in found or [(None, str(exc))]:
                self.add_at(f, node, f"cannot run on a local warehouse: {message}", whole=True)

    def seeds(self, extracts: dict[str, _SqlFile]) -> dict[str, Path]:
        """queries/seeds/, by table name; one with a name already taken is a problem."""
        seeds: dict[str, Path] = {}
        for path in sorted(self.project.seeds_dir.glob("*.csv")):
            self.files += 1
            name = path.stem.lower()
            other = extracts[name].path if name in extracts else seeds.get(name)
            if other or name == RUN_CONTEXT:
                taken = _shown(other) if other else "the table the build creates"
                self.add(path, 1, 1, f"seed {name} has the name of {taken}")
                continue
            seeds[name] = path
        return seeds

    def models(
        self, extracts: dict[str, _SqlFile], seeds: dict[str, Path]
    ) -> tuple[dict[str, _SqlFile], list[str]]:
        """Every model, parsed and checked, and the order to build them in."""
        taken = {n: f.path for n, f in extracts.items()} | seeds
        models: dict[str, _SqlFile] = {}
        for path in sorted(self.project.models_dir.glob("*.sql")):
            f = self.read(path, "model", "duckdb")
            if f is None:
                continue
            other = taken.get(f.name) or (models[f.name].path if f.name in models else None)
            if other or f.name == RUN_CONTEXT:
                where = _shown(other) if other else "the table the build creates"
                self.add(path, 1, 1, f"model {f.name} has the name of {where}")
                continue
            models[f.name] = f
        known = set(models) | set(taken) | {RUN_CONTEXT}
        for f in models.values():
            if f.tree is not None:
                self.check_reads(f, f.tree, known)
                self.check_model(f, f.tree)
        return models, self.order(models)

    def check_reads(self, f: _SqlFile, tree: exp.Expr, known: set[str]) -> None:
        """Every table read (CTEs aside) is known; `f.reads` is set to them, in order."""
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        reads: list[str] = []
        for table in tree.find_all(exp.Table):
            name = table.name.lower()
            if not name or name in ctes:
                continue  # a table function, or a CTE
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.add_at(f, table, f"unknown table {table.name}{hint}")
            reads.append(name)
        f.reads = tuple(dict.fromkeys(reads))

    def check_model(self, f: _SqlFile, tree: exp.Expr) -> None:
        """What the build requires of a model's text, and of the final model's."""
        semicolon = _TRAILING_SEMICOLON.search(f.text)
        if semicolon:  # not blocking: bind() leaves it out
            self.add(
                f.path,
                *_position(f.text, semicolon.start()),
                "remove the ; at the end: the build wraps each model in CREATE TABLE ... AS",
            )
        if f.name != self.final:
            return
        view = VIEW_DIRECTIVE.search(f.text)
        if view:
            offset = view.start() + len(view.group(0)) - len(view.group(0).lstrip())
            self.add(
                f.path, *_position(f.text, offset), "the final model must be stored, not a view"
            )
        for star in _stars(tree):
            message = "name the columns; SELECT * in the final model hides the record"
            self.add_at(f, star, message, blocks=False, whole=True)

    def order(self, models: dict[str, _SqlFile]) -> list[str]:
        """Dependency order; each cycle is a problem, and its models are not built."""
        graph = {n: sorted(r for r in f.reads if r in models) for n, f in sorted(models.items())}
        while True:
            try:
                return list(graphlib.TopologicalSorter(graph).static_order())
            except graphlib.CycleError as exc:
                cycle: list[str] = exc.args[1]
            # The cycle lists each model before the one that reads it.
            reader, read = models[cycle[1]], cycle[0]
            tables = reader.tree.find_all(exp.Table) if reader.tree else iter(())
            table = next((t for t in tables if t.name.lower() == read), None)
            path = " -> ".join(reversed(cycle))
            index = self.add_at(reader, table, f"models read each other in a cycle: {path}")
            for name in cycle:
                self.failed[name] = [index]
                graph.pop(name, None)
            graph = {n: [r for r in reads if r in graph] for n, reads in graph.items()}

    def tests(self, known: set[str]) -> list[_SqlFile]:
        """queries/tests/, if there is one: syntax and the tables read."""
        folder = self.project.root / "queries" / "tests"
        tests = []
        for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
            f = self.read(path, "test", "duckdb")
            if f is not None:
                if f.tree is not None:
                    self.check_reads(f, f.tree, known)
                tests.append(f)
        return tests

    def settings(self, models: dict[str, _SqlFile], seeds: dict[str, Path]) -> None:
        """The names patronload.toml gives must be models (or, for reasons, a seed)."""
        path = self.project.root / "patronload.toml"
        text = path.read_text(encoding="utf-8")
        self.files += 1
        settings = self.project.settings()
        in_models, in_seeds = (set(models), "queries/models"), (set(seeds), "queries/seeds")
        wanted = [
            ("final_model", settings.final_model, in_models),
            ("rejections_model", settings.rejections_model, in_models),
            ("accounting_model", settings.accounting_model, in_models),
            ("lookup_model", settings.lookup_model, in_models),
            ("reasons_seed", settings.reasons_seed, in_seeds),
        ]
        for key, name, (names, folder) in wanted:
            if name.lower() not in names:
                found = re.search(rf"^\s*{key}\s*=\s*", text, re.MULTILINE)
                line, col = _position(text, found.end()) if found else (1, 1)
                self.add(path, line, col, f"{key}: there is no {name} in {folder}")

    # Pass 2: what DuckDB's binder sees

    def bind_inputs(
        self,
        con: duckdb.DuckDBPyConnection,
        sources: dict[str, SourceTable] | None,
        extracts: dict[str, _SqlFile],
        seeds: dict[str, Path],
    ) -> None:
        """Empty source tables, the extracts run on them, seeds, run_context and macros."""
        for table in (sources or {}).values():
            con.execute(table.ddl())
        for f in extracts.values():
            if f.problem is not None or sources is None:
                self.give_up(con, f, [f.problem] if f.problem is not None else self.sources_problem)
                continue
            try:
                con.execute(f"CREATE TABLE {quote(f.name)} AS {f.duckdb_sql}")
            except duckdb.Error as exc:
                self.give_up(con, f, [self.add_at(f, None, first_line(exc))])
        for name, path in seeds.items():
            try:
                con.execute(
                    f"CREATE TABLE {quote(name)} AS SELECT * FROM "
                    "read_csv(?, header=true, all_varchar=true)",
                    [str(path)],
                )
            except duckdb.Error as exc:
                self.failed[name] = [self.add(path, 1, 1, first_line(exc))]
        con.execute(f"CREATE TABLE {RUN_CONTEXT} AS SELECT ?::DATE AS as_of", [date.today()])
        self.bind_macros(con)

    def bind_macros(self, con: duckdb.DuckDBPyConnection) -> None:
        """Each statement of macros.sql on its own, so one broken macro stops only itself."""
        path = self.project.macros_file
        if not path.is_file():
            return
        self.files += 1
        text = path.read_text(encoding="utf-8")
        for start, end in _statements(text):
            chunk = text[start:end]
            names = _macro_names(chunk)
            blocked = [r for m, rs in self.failed_macros.items() if _calls(chunk, m) for r in rs]
            if blocked:
                for root in blocked:
                    self.skipped[root] += [f"{name} (macro)" for name in names]
                self.failed_macros |= dict.fromkeys(names, blocked)
                continue
            # Blank out what precedes the statement, so DuckDB's lines are the file's.
            sent = re.sub(r"[^\n]", " ", text[:start]) + chunk
            try:
                con.execute(sent)
            except duckdb.Error as exc:
                line, col = duckdb_error_position(str(exc), sent) or _start(text, start)
                index = self.add(path, line, col, _message(exc))
                self.failed_macros |= dict.fromkeys(names, [index])

    def bind(self, con: duckdb.DuckDBPyConnection, f: _SqlFile) -> None:
        """Build a model (or run a data test) on the empty tables, in DuckDB."""
        if f.problem is not None:
            self.give_up(con, f, [f.problem])
            return
        blocked = [r for t in f.reads for r in self.failed.get(t, [])]
        blocked += [r for m, rs in self.failed_macros.items() if _calls(f.text, m) for r in rs]
        if blocked:
            self.skip(con, f, blocked)
            return
        tentative = sorted({r for t in f.reads for r in self.tentative.get(t, [])})
        # As the build runs them; a model's closing ; is a problem of its own already.
        prefix = f"CREATE TABLE {quote(f.name)} AS " if f.kind == "model" else ""
        prefix += "SELECT * FROM ("
        sent = f"{prefix}{_TRAILING_SEMICOLON.sub(' ', f.text)}\n) LIMIT 0"
        try:
            con.execute(sent)
        except duckdb.Error as exc:
            if tentative:  # it may be the stand-in's fault
                self.skip(con, f, tentative)
                return
            position = duckdb_error_position(str(exc), sent)
            line, col = _in_file(position, prefix, f.text)
            self.give_up(con, f, [self.add(f.path, line, col, _message(exc))])
            return
        if tentative:
            self.tentative[f.name] = tentative
        if f.name == self.final and f.kind == "model":
            try:
                con.execute(f"SELECT {EXPORT_ORDER} FROM {quote(f.name)} LIMIT 0")
            except duckdb.Error as exc:
                why = f"the final model needs the columns {EXPORT_ORDER} (its export order)"
                self.add_at(f, None, f"{why}: {first_line(exc)}")

    def skip(self, con: duckdb.DuckDBPyConnection, f: _SqlFile, roots: list[int]) -> None:
        """`f` is not checked because of `roots`, whose problems will name it."""
        for root in dict.fromkeys(roots):
            self.skipped[root].append(f.label)
        self.give_up(con, f, roots)

    def give_up(self, con: duckdb.DuckDBPyConnection, f: _SqlFile, roots: list[int]) -> None:
        """`f` is not built: put a stand-in in its place if its columns are known."""
        if f.kind != "test":
            if _stand_in(con, f):
                self.tentative[f.name] = roots
            else:
                self.failed[f.name] = roots


def _message(exc: duckdb.Error) -> str:
    """DuckDB's message, with its suggestion if it has one, on one line."""
    lines = str(exc).splitlines()
    hints = [h.replace(": : ", ": ") for h in lines[1:] if h.startswith(_HINTS)]
    return "; ".join([first_line(exc), *hints[:1]])


def _stand_in(con: duckdb.DuckDBPyConnection, f: _SqlFile) -> bool:
    """A table with the columns `f` names in its select list, of DuckDB's NULL type."""
    if not isinstance(f.tree, exp.Select) or _stars(f.tree):
        return False
    names = [e.alias_or_name for e in f.tree.expressions]
    if not all(names):
        return False
    stand_in = exp.select(*(exp.alias_(exp.null(), n, quoted=True) for n in dict.fromkeys(names)))
    try:
        con.execute(f"CREATE TABLE {quote(f.name)} AS {stand_in.sql('duckdb')}")
    except duckdb.Error:
        return False
    return True


def _stars(tree: exp.Expr) -> list[exp.Expr]:
    """Each `*` or `alias.*` in the outermost select list(s) of a query."""
    if isinstance(tree, exp.SetOperation):
        return _stars(tree.left) + _stars(tree.right)
    if isinstance(tree, exp.Subquery):
        return _stars(tree.this)
    if not isinstance(tree, exp.Select):
        return []
    return [
        e
        for e in tree.expressions
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
    ]


def _unsupported(tree: exp.Expr) -> list[tuple[exp.Expr, str]]:
    """The innermost nodes DuckDB's generator refuses, with its message for each."""
    found: list[tuple[exp.Expr, str]] = []

    def visit(node: exp.Expr) -> bool:
        try:
            node.sql("duckdb", unsupported_level=ErrorLevel.RAISE)
            return False
        except UnsupportedError as exc:
            message = str(exc)
        except SqlglotError:
            return False  # not a construct that stands alone
        if not any([visit(child) for child in node.iter_expressions()]):
            found.append((node, message))
        return True

    visit(tree)
    return found


def _statements(text: str) -> list[tuple[int, int]]:
    """(start, end) of each statement of a file, split at the `;` between them."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(text)
    except SqlglotError:  # an unterminated string, say: split where a line ends in ;
        ends = [m.end() for m in re.finditer(r";[ \t]*$", text, re.MULTILINE)]
        return [
            (a, b) for a, b in zip([0, *ends], [*ends, len(text)], strict=True) if text[a:b].strip()
        ]
    spans: list[tuple[int, int]] = []
    start, has_tokens = 0, False
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if has_tokens:
                spans.append((start, token.end + 1))
            start, has_tokens = token.end + 1, False
        else:
            has_tokens = True
    if has_tokens:
        spans.append((start, len(text)))
    return spans


def _macro_names(statement: str) -> list[str]:
    """The macros a statement creates (one, unless the statements could not be split)."""
    found = re.findall(r"\b(?:MACRO|FUNCTION)\s+(?:\w+\.)*(\w+)", statement, re.IGNORECASE)
    return [name.lower() for name in found]


def _calls(text: str, function: str) -> bool:
    return bool(re.search(rf"(?<![\w.]){re.escape(function)}\s*\(", text, re.IGNORECASE))


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def _position(text: str, offset: int) -> tuple[int, int]:
    """Line and column, both from 1, of a character offset."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _start(text: str, offset: int = 0) -> tuple[int, int]:
    """Where the first token at or after `offset` is: blanks and comments skipped."""
    found = _LEADING.match(text, offset)
    return _position(text, found.end() if found else offset)


def _node_position(text: str, node: exp.Expr, whole: bool = False) -> tuple[int, int]:
    """Where a node's name starts (or, if `whole`, the first token sqlglot placed in it)."""
    name = node.this if isinstance(node.this, exp.Expr) else node
    if not whole and "start" in (name.meta or {}):
        return _position(text, name.meta["start"])
    starts = [n.meta["start"] for n in node.walk() if "start" in (n.meta or {})]
    return _position(text, min(starts)) if starts else _start(text)


def _in_file(position: tuple[int, int] | None, prefix: str, text: str) -> tuple[int, int]:
    """A position in `prefix + text + ...` as a position in `text`."""
    if position is None:
        return _start(text)
    line, col = position
    if line == 1:
        col -= len(prefix)
        if col < 1:
            return _start(text)
    lines = text.split("\n")
    if line > len(lines) or (line == len(lines) and not lines[-1].strip()):
        # Past the file: the error is at its end.
        last = max((i for i, ln in enumerate(lines) if ln.strip()), default=0)
        return last + 1, len(lines[last]) + 1
    return line, col


def duckdb_error_position(message: str, sql: str) -> tuple[int, int] | None:
    """Line and column (from 1, in characters) in `sql` of a DuckDB error about it.

    DuckDB gives no offset, only `LINE n:` with the line (or about 80 columns of it)
    and a caret under the place, indented by rendered width.
    """
    found = _CARET.search(message)
    if not found:
        return None
    line_no = int(found.group(1))
    lines = sql.split("\n")
    if not 1 <= line_no <= len(lines):
        return None
    line, shown = lines[line_no - 1], found.group(2)
    width = len(found.group(3)) - len(f"LINE {line_no}: ")
    # DuckDB shows at most about 80 columns of a long line, marking what it cut with "...".
    if line.startswith(shown) or (shown.endswith("...") and line.startswith(shown[:-3])):
        begin = 0
    elif shown.startswith("..."):
        core = shown[3:]
        if core.endswith("...") and core not in line:
            core = core[:-3]
        begin = line.find(core)
        if begin < 0:
            return None
        width -= 3
    else:
        return None
    # The caret is indented by the width the excerpt renders in: wide characters count
    # two columns, tabs and combining marks none.
    used = 0
    for index in range(begin, len(line)):
        char = line[index]
        if used >= width and not char.isspace() and not unicodedata.combining(char):
            return line_no, index + 1
        used += _render_width(char)
    return line_no, len(line) + 1


def _render_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Cc", "Cf", "Me", "Mn"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
