"""Lineage of an XML element: the source columns, SQL files, seeds and macros that feed it.

The final model builds each record as a STRUCT literal whose keys are the element names,
so an element is found by walking that literal (and, where a value is a macro call or a
column of an upstream model that is itself a struct or list, by following it there).
Each value is then traced through the models' scopes (CTEs, unions, joins) to the tables
they read: extract tables are traced into the Oracle extract SQL with `sqlglot.lineage`,
seeds and the build's run context end the chain.

`sqlglot.lineage` traces whole columns, so the models are traced with sqlglot's scopes
directly: an element is often one field of a struct column (`p.col.field`) or a key
of a macro's struct, and `UNION ALL BY NAME` must match columns by name, not position.
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage as column_lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from exporter.errors import SqlError, UsageError
from exporter.models import RUN_CONTEXT, load_models, load_seeds
from exporter.project import Project
from exporter.sources import ExtractQuery, load_extracts, load_sources, parse_file

log = logging.getLogger(__name__)

#: Meta key of a node of an expanded macro: "macro" (written in macros.sql) or "model".
_ORIGIN = "lineage_origin"

#: Kinds of a source, in the order they are listed.
KINDS = ("column", "seed", "run context", "unresolved", "constant")

#: Roles of a source, strongest first: it gives the value, decides whether the element
#: is there (a CASE around it), or is the key a lookup table (a seed) is joined on.
ROLES = ("value", "condition", "lookup key")


@dataclass(frozen=True)
class Source:
    """One thing an element's value comes from.

    Attributes:
        kind: `column` (a source table's column), `seed`, `run context` (a table the
            build creates), `constant`, or `unresolved` (a column the tracer lost).
        name: `TABLE.COLUMN`, `seed.column`, `run_context.column` or the constant's SQL.
        files: The files it passes through, relative to the project, final model first.
        parts: Where it lands inside the element: dotted keys below it, '' = itself.
        role: One of ROLES.
    """

    kind: str
    name: str
    files: tuple[str, ...]
    parts: tuple[str, ...]
    role: str

    def line(self) -> str:
        parts = " ".join(p for p in self.parts if p)
        prefix = f"[{parts}] " if parts else ""
        suffix = "" if self.role == "value" else f"  ({self.role})"
        if self.kind == "run context":
            suffix += "  (created by the build)"
        if self.kind in ("constant", "unresolved"):
            return f"{prefix}{self.kind}: {self.name}  ({' <- '.join(self.files)}){suffix}"
        chain = [*self.files, self.name]
        if self.kind == "seed":
            chain = [*self.files[:-1], f"{self.files[-1]}: {self.name.partition('.')[2]}"]
        return f"{prefix}{' <- '.join(chain)}{suffix}"


@dataclass(frozen=True)
class ElementLineage:
    """Everything that feeds one element of the record, found at `path`."""

    path: str
    sources: tuple[Source, ...]
    macros: tuple[str, ...]


@dataclass(frozen=True)
class LineageResult:
    """The lineage of every element that matches what was asked for."""

    element: str
    final_model_file: str
    macros_file: str
    elements: tuple[ElementLineage, ...]

    def lines(self) -> list[str]:
        """One block per element: its path, then one line per source, then its macros."""
        out: list[str] = []
        if len(self.elements) > 1:
            out.append(
                f"{len(self.elements)} elements of {self.final_model_file} match {self.element}:"
            )
        for element in self.elements:
            if out:
                out.append("")
            out.append(element.path)
            out.extend(f"  {s.line()}" for s in element.sources)
            if element.macros:
                out.append(f"  macros: {', '.join(element.macros)}  ({self.macros_file})")
        return out

    def to_json(self) -> str:
        """The result as one JSON object: element, final_model_file, macros_file, and
        elements (each with path, sources and macros; a source has kind, name, files,
        parts and role)."""
        return json.dumps(asdict(self), sort_keys=True)


def lineage(project: Project, element: str) -> LineageResult:
    """Trace an element (a name or a dotted path in the record) back to its sources.

    Raises:
        UsageError: No element of the record matches; the message lists close matches.
        SqlError: A model or the extract SQL cannot be traced.
    """
    tracer = _Tracer(project)
    paths = tracer.element_paths()
    query = element.strip().replace("/", ".").removeprefix(f"{tracer.record_name}.")
    found = [p for p in paths if p == query or p.endswith(f".{query}")]
    if not found:
        raise UsageError(_unknown(query, list(paths), tracer.rel(tracer.final_path)))
    return LineageResult(
        element=element,
        final_model_file=tracer.rel(tracer.final_path),
        macros_file=tracer.rel(project.macros_file),
        elements=tuple(tracer.element(p, paths[p]) for p in found),
    )


def _unknown(query: str, paths: list[str], where: str) -> str:
    names = list(dict.fromkeys([p.rsplit(".", 1)[-1] for p in paths] + paths))
    close = difflib.get_close_matches(query, names, n=5, cutoff=0.6)
    if close:
        return f"unknown element {query} ({where}). Did you mean {', '.join(close)}?"
    top = ", ".join(p for p in paths if "." not in p and not p.startswith(("@", "#")))
    return f"unknown element {query} ({where}). Elements of the record: {top}"


@dataclass(frozen=True)
class _At:
    """An expression where it is written: the scope its columns resolve in, the files
    passed to reach it, the CASE conditions it sits under, and the macros expanded."""

    expr: exp.Expr
    scope: Scope
    files: tuple[Path, ...]
    guards: tuple[_At, ...] = ()
    macros: tuple[str, ...] = ()

    def to(self, expr: exp.Expr, *, guards: tuple[_At, ...] = (), macro: str = "") -> _At:
        """The same place, another expression (a part of this one)."""
        macros = (*self.macros, macro) if macro else self.macros
        return replace(self, expr=expr, guards=self.guards + guards, macros=macros)

    def bare(self, expr: exp.Expr) -> _At:
        """Another expression of the same scope, outside any CASE."""
        return _At(expr, self.scope, self.files)


@dataclass(frozen=True)
class _Table:
    """A column of a table no model defines: an extract, a seed or the run context."""

    table: str
    column: str
    files: tuple[Path, ...]


@dataclass
class _Findings:
    """What tracing one element found, in the order found."""

    sources: dict[tuple[str, str, tuple[str, ...]], Source] = field(default_factory=dict)
    macros: dict[str, None] = field(default_factory=dict)

    def add(self, source: Source) -> None:
        """Record a source; one met again keeps its strongest role and that role's parts."""
        key = (source.kind, source.name, source.files)
        old = self.sources.get(key)
        if old is None or ROLES.index(source.role) < ROLES.index(old.role):
            self.sources[key] = source
        elif source.role == old.role:
            parts = tuple(dict.fromkeys(old.parts + source.parts))
            self.sources[key] = replace(old, parts=parts)


class _Tracer:
    """The parsed project: models qualified and scoped, extracts, seeds and macros."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.final = project.settings().final_model.lower()
        models = {m.name: m for m in load_models(project)}
        if self.final not in models:
            raise SqlError(f"final model {self.final} not found in {project.models_dir}")
        self.final_path = models[self.final].path
        self.extracts = {q.name.lower(): q for q in load_extracts(project)}
        self.seeds = {s.name.lower(): s.path for s in load_seeds(project)}
        self.source_schema = {t.name: dict(t.columns) for t in load_sources(project).values()}
        self.macros = _load_macros(project.macros_file)
        schema: dict[str, object] = {
            name: dict.fromkeys(q.columns, "UNKNOWN") for name, q in self.extracts.items()
        }
        for name, path in self.seeds.items():
            schema[name] = dict.fromkeys(_csv_header(path), "UNKNOWN")
        needed = _upstream_models(self.final, {n: m.reads for n, m in models.items()})
        self.scopes: dict[str, tuple[Path, Scope]] = {}
        for model in models.values():  # dependency order: upstream schemas are known
            if model.name not in needed:
                continue
            tree = _qualified(model.path, model.sql, schema)
            schema[model.name] = dict.fromkeys(tree.named_selects, "UNKNOWN")
            root = build_scope(tree)
            if root is None:
                raise SqlError(f"{model.path}: cannot trace lineage: not a query")
            self.scopes[model.name] = (model.path, root)
        self.record_name, self.record = self._record()

    def rel(self, path: Path) -> str:
        """A file's path relative to the project, as shown to the user."""
        try:
            return path.relative_to(self.project.root).as_posix()
        except ValueError:
            return str(path)

    # -- the record's elements ------------------------------------------------------

    def _record(self) -> tuple[str, list[_At]]:
        path, root = self.scopes[self.final]
        query = root.expression
        for name in query.named_selects if isinstance(query, exp.Query) else []:
            ats = self._selects(root, name, (path,))
            if any(isinstance(a.expr, exp.Struct) for at in ats for a in self._expand(at)):
                return name, ats
        raise SqlError(f"{path}: cannot trace lineage: the final model has no STRUCT column")

    def element_paths(self) -> dict[str, list[_At]]:
        """Every element path of the record (dotted struct keys), with its definitions."""
        paths: dict[str, list[_At]] = {}
        todo: list[tuple[str, list[_At]]] = [("", self.record)]
        while todo:
            prefix, ats = todo.pop(0)
            for key, values in self._children(ats).items():
                path = f"{prefix}.{key}" if prefix else key
                paths.setdefault(path, []).extend(values)
                todo.append((path, values))
        return paths

    def _children(self, ats: list[_At]) -> dict[str, list[_At]]:
        children: dict[str, list[_At]] = {}
        for at in ats:
            for alt in self._expand(at):
                if isinstance(alt.expr, exp.Struct):
                    for key, value in _struct_items(alt.expr):
                        children.setdefault(key, []).append(alt.to(value))
        return children

    def _expand(self, at: _At) -> list[_At]:
        """The shapes a value can take: struct literals, or scalar leaves.

        A list stands for its items (it repeats its element), a CASE for its branches,
        a macro for its body, a column for its definition upstream. A CASE or macro
        that yields no struct stays one leaf, so its SQL is traced and shown as written.
        """
        e = at.expr
        if isinstance(e, exp.Paren):
            return self._expand(at.to(e.this))
        if isinstance(e, exp.Array):
            return [alt for item in e.expressions for alt in self._expand(at.to(item))]
        if isinstance(e, exp.ArrayConcat) or _call_name(e) in ("list_concat", "array_concat"):
            return [alt for arg in _args(e) for alt in self._expand(at.to(arg))]
        alts: list[_At] | None = None
        if isinstance(e, exp.Case):
            guards = tuple(at.bare(cond.this) for cond in e.args.get("ifs") or [])
            branches = [cond.args["true"] for cond in e.args.get("ifs") or []]
            branches.append(e.args.get("default") or exp.Null())
            alts = [a for b in branches for a in self._expand(at.to(b, guards=guards))]
            if not any(isinstance(b, exp.Array) for b in branches):
                alts = alts if any(isinstance(a.expr, exp.Struct) for a in alts) else None
        elif _call_name(e) in self.macros:
            name = _call_name(e)
            alts = self._expand(at.to(self._substitute(name, e), macro=name))
            alts = alts if any(isinstance(a.expr, exp.Struct) for a in alts) else None
        elif (ref := _field_ref(e)) is not None:
            ups = self._resolve(*ref, at)
            if ups and all(isinstance(u, _At) for u in ups):
                alts = [
                    replace(a, guards=at.guards + a.guards, macros=at.macros + a.macros)
                    for u in ups
                    if isinstance(u, _At)
                    for a in self._expand(u)
                ]
        return [at] if alts is None else alts

    def _substitute(self, name: str, call: exp.Expr) -> exp.Expr:
        """A macro's body with its parameters replaced by the call's arguments.

        Each node remembers whether it was written in macros.sql or in the model, so a
        constant is shown in the file that holds it.
        """
        params, body = self.macros[name]
        args = dict(zip(params, _args(call), strict=False))

        def put(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and not node.table and node.name.lower() in args:
                arg = args[node.name.lower()]
                copy = arg.copy()
                copy.meta[_ORIGIN] = _origin(arg) or "model"
                return copy
            return node

        expanded = body.copy()
        expanded.meta[_ORIGIN] = "macro"
        return expanded.transform(put)

    # -- resolving columns ----------------------------------------------------------

    def _resolve(self, column: exp.Column, keys: list[str], at: _At) -> list[_At | _Table]:
        """What a column (and a field path into it) is defined as, one level upstream."""
        source = _source(at.scope, column.table)
        ups: list[_At | _Table]
        if isinstance(source, Scope):
            ups = list(self._selects(source, column.name, at.files))
        elif isinstance(source, exp.Table) and source.name.lower() in self.scopes:
            path, root = self.scopes[source.name.lower()]
            files = at.files if at.files[-1] == path else (*at.files, path)
            ups = list(self._selects(root, column.name, files))
        elif isinstance(source, exp.Table):
            return [_Table(source.name.lower(), column.name, at.files)]
        else:
            return []
        for key in keys:
            ups = [v for u in ups for v in self._field(u, key)]
        return ups

    def _field(self, up: _At | _Table, key: str) -> list[_At | _Table]:
        """A struct field of an upstream value; the whole value when it is no literal."""
        if isinstance(up, _Table):
            return [up]
        return list(self._children([up]).get(key, [up]))

    def _selects(self, scope: Scope, name: str, files: tuple[Path, ...]) -> list[_At]:
        """The expressions a query scope selects as `name` (every branch of a union)."""
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            left, right = scope.set_operation_scopes
            if query.args.get("by_name"):
                return self._selects(left, name, files) + self._selects(right, name, files)
            names = [n.lower() for n in query.named_selects]
            if name.lower() not in names:
                return []
            index = names.index(name.lower())
            return self._nth(left, index, files) + self._nth(right, index, files)
        if isinstance(query, exp.Subquery):
            return [a for s in scope.subquery_scopes for a in self._selects(s, name, files)]
        return [
            _At(s.unalias(), scope, files)
            for s in getattr(query, "selects", [])
            if s.alias_or_name.lower() == name.lower()
        ]

    def _nth(self, scope: Scope, index: int, files: tuple[Path, ...]) -> list[_At]:
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            left, right = scope.set_operation_scopes
            return self._nth(left, index, files) + self._nth(right, index, files)
        if not isinstance(query, exp.Query) or index >= len(query.selects):
            return []
        return [_At(query.selects[index].unalias(), scope, files)]

    # -- tracing an element ---------------------------------------------------------

    def element(self, path: str, ats: list[_At]) -> ElementLineage:
        """Trace every leaf under the element at `path` to where its value comes from."""
        found = _Findings()
        for at in ats:
            # CASEs above the element decide whether it is there at all.
            for guard in at.guards:
                self._trace(guard, "", "condition", found)
            for part, leaf, role in self._leaves(at, "", at.guards):
                found.macros.update(dict.fromkeys(leaf.macros))
                self._trace(leaf, part, role, found)
        sources = sorted(found.sources.values(), key=lambda s: KINDS.index(s.kind))
        return ElementLineage(path, tuple(sources), tuple(found.macros))

    def _leaves(self, at: _At, part: str, known: tuple[_At, ...]) -> Iterator[tuple[str, _At, str]]:
        """Scalar values under an element with their part, and the CASE conditions met on
        the way, each at the part it decides."""
        seen = {id(g) for g in known}
        for alt in self._expand(at):
            for guard in alt.guards:
                if id(guard) not in seen:
                    yield part, guard, "condition"
            if isinstance(alt.expr, exp.Struct):
                for key, value in _struct_items(alt.expr):
                    child = f"{part}.{key}" if part else key
                    yield from self._leaves(alt.to(value), child, alt.guards)
            else:
                yield part, alt, "value"

    def _trace(self, at: _At, part: str, role: str, found: _Findings) -> None:
        found.macros.update(dict.fromkeys(self._macros_in(at.expr)))
        refs = list(_refs(at.expr))
        if not refs:
            files = self._rels(at.files)
            if _origin(at.expr) == "macro":
                files = (*files, self.rel(self.project.macros_file))
            const = at.expr.sql("duckdb")
            found.add(Source("constant", const, files, (part,), role))
        for ref in refs:
            if not isinstance(ref, tuple):
                self._trace_subquery(ref, at, part, role, found)
                continue
            column, keys = ref
            ups = self._resolve(column, keys, at)
            if not ups:
                name = column.sql("duckdb")
                found.add(Source("unresolved", name, self._rels(at.files), (part,), role))
            for up in ups:
                if isinstance(up, _Table):
                    self._trace_table(up, part, role, found)
                else:
                    self._trace(up, part, role, found)
            if role == "value":
                for key in _join_keys(at.scope, column.table):
                    self._trace(at.bare(key), part, "lookup key", found)

    def _trace_subquery(
        self, query: exp.Expr, at: _At, part: str, role: str, found: _Findings
    ) -> None:
        scope = next((s for s in at.scope.subquery_scopes if s.expression is query), None)
        if scope is None:
            log.debug("lineage: no scope for subquery %s", query.sql("duckdb"))
            return
        for select in getattr(scope.expression, "selects", []):
            self._trace(_At(select.unalias(), scope, at.files), part, role, found)

    def _trace_table(self, up: _Table, part: str, role: str, found: _Findings) -> None:
        files = self._rels(up.files)
        if up.table in self.extracts:
            query = self.extracts[up.table]
            files = (*files, self.rel(query.path))
            for kind, name in self._extract_sources(query, up.column):
                found.add(Source(kind, name, files, (part,), role))
        elif up.table in self.seeds:
            files = (*files, self.rel(self.seeds[up.table]))
            found.add(Source("seed", f"{up.table}.{up.column}", files, (part,), role))
        else:
            kind = "run context" if up.table == RUN_CONTEXT else "unresolved"
            found.add(Source(kind, f"{up.table}.{up.column}", files, (part,), role))

    def _extract_sources(self, query: ExtractQuery, column: str) -> list[tuple[str, str]]:
        """Source columns (or constants) of one column of an extract: sqlglot.lineage."""
        try:
            node = column_lineage(column, query.sql, schema=self.source_schema, dialect="oracle")
        except (SqlglotError, ValueError) as exc:
            raise SqlError(f"{query.path}: cannot trace column {column}: {exc}") from None
        found: list[tuple[str, str]] = []
        for leaf in node.walk():
            if leaf.downstream:
                continue
            if isinstance(leaf.source, exp.Table):
                name = f"{leaf.source.name.upper()}.{leaf.name.rsplit('.', 1)[-1].upper()}"
                found.append(("column", name))
            else:
                found.append(("constant", leaf.expression.unalias().sql("oracle")))
        return list(dict.fromkeys(found))

    def _macros_in(self, expr: exp.Expr) -> list[str]:
        """Macros called in an expression, with the macros their bodies call."""
        names: list[str] = []
        todo = [expr]
        while todo:
            for node in todo.pop().find_all(exp.Anonymous):
                name = _call_name(node)
                if name in self.macros and name not in names:
                    names.append(name)
                    todo.append(self.macros[name][1])
        return names

    def _rels(self, files: tuple[Path, ...]) -> tuple[str, ...]:
        return tuple(self.rel(f) for f in files)


# -- parsing helpers ----------------------------------------------------------------


def _qualified(path: Path, sql: str, schema: dict[str, object]) -> exp.Query:
    """A model with every column qualified by its table and every star expanded."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        # Struct keys are element names: quoted, so qualify keeps their case.
        for struct in tree.find_all(exp.Struct):
            for item in struct.expressions:
                if isinstance(item, exp.PropertyEQ) and isinstance(item.this, exp.Identifier):
                    item.this.set("quoted", True)
        tree = qualify(tree, schema=schema, dialect="duckdb", validate_qualify_columns=False)
    except SqlglotError as exc:
        raise SqlError(f"{path}: cannot trace lineage: {exc}") from None
    if not isinstance(tree, exp.Query):
        raise SqlError(f"{path}: cannot trace lineage: not a query")
    return tree


def _load_macros(path: Path) -> dict[str, tuple[list[str], exp.Expr]]:
    """`CREATE MACRO name(params) AS body` of macros.sql, by lower-case name."""
    macros: dict[str, tuple[list[str], exp.Expr]] = {}
    if not path.exists():
        return macros
    for stmt in parse_file(path, "duckdb"):
        udf = stmt.this
        if isinstance(stmt, exp.Create) and isinstance(udf, exp.UserDefinedFunction):
            params = [p.name.lower() for p in udf.expressions]
            macros[udf.this.name.lower()] = (params, stmt.expression)
    return macros


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def _upstream_models(final: str, reads: dict[str, tuple[str, ...]]) -> set[str]:
    needed: set[str] = set()
    todo = [final]
    while todo:
        name = todo.pop()
        if name in reads and name not in needed:
            needed.add(name)
            todo.extend(reads[name])
    return needed


def _struct_items(struct: exp.Struct) -> Iterator[tuple[str, exp.Expr]]:
    for item in struct.expressions:
        if isinstance(item, exp.PropertyEQ):
            yield item.name, item.expression


def _call_name(node: exp.Expr) -> str:
    return node.name.lower() if isinstance(node, exp.Anonymous) else ""


def _args(call: exp.Expr) -> list[exp.Expr]:
    if isinstance(call, exp.Anonymous):
        return list(call.expressions)
    return [call.this, *call.expressions]


def _field_ref(node: exp.Expr) -> tuple[exp.Column, list[str]] | None:
    """A column and the struct fields read from it (`p.col.field`), or None."""
    keys: list[str] = []
    while True:
        if isinstance(node, exp.Column):
            return node, keys[::-1]
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
            keys.append(node.expression.name)
        elif isinstance(node, exp.Bracket):
            key = node.expressions[0] if len(node.expressions) == 1 else None
            if isinstance(key, exp.Literal) and key.is_string:
                keys.append(key.name)
        else:
            return None
        node = node.this


def _refs(expr: exp.Expr) -> Iterator[tuple[exp.Column, list[str]] | exp.Expr]:
    """Column references (with their field paths) and subqueries of an expression."""
    todo = [expr]
    while todo:
        node = todo.pop()
        ref = _field_ref(node)
        if ref is not None:
            yield ref
        elif node is not expr and isinstance(node, exp.Select | exp.SetOperation):
            yield node
        else:
            todo.extend(reversed(list(node.iter_expressions())))


def _origin(node: exp.Expr | None) -> str:
    """Where a node of an expanded macro was written; '' for a model's own nodes."""
    while node is not None:
        if _ORIGIN in node.meta:
            return str(node.meta[_ORIGIN])
        node = node.parent
    return ""


def _source(scope: Scope | None, alias: str) -> Scope | exp.Table | None:
    """The table or query an alias names, looking outwards for correlated columns."""
    while scope is not None:
        if alias in scope.sources:
            return scope.sources[alias]
        scope = scope.parent
    return None


def _join_keys(scope: Scope, alias: str) -> list[exp.Expr]:
    """Columns of other tables in the ON condition a table is joined on (a lookup)."""
    joins = scope.expression.args.get("joins") or []
    for join in joins:
        if join.alias_or_name == alias and join.args.get("on") is not None:
            on = join.args["on"]
            return [c for c in on.find_all(exp.Column) if c.table != alias]
    return []
