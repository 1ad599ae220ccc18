"""The SQL models of a project: parsed with sqlglot, ordered by what each one reads."""

from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from exporter.errors import SqlError
from exporter.project import Project
from exporter.sources import load_extracts, parse_file, where

#: Tables the build creates itself before any model runs.
RUN_CONTEXT = "run_context"


#: A model whose file has this line is built as a view: computed where it is read,
#: never stored (for steps read by one model only, where storing costs time).
VIEW_DIRECTIVE = re.compile(r"^\s*--\s*materialized:\s*view\b", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Model:
    """One file of queries/models/: a SELECT whose result becomes the table `name`."""

    name: str
    path: Path
    sql: str
    reads: tuple[str, ...]

    @property
    def is_view(self) -> bool:
        return bool(VIEW_DIRECTIVE.search(self.sql))


@dataclass(frozen=True)
class Seed:
    """One CSV of queries/seeds/, loaded as text so codes keep their leading zeros."""

    name: str
    path: Path


def load_seeds(project: Project) -> list[Seed]:
    """Every seed CSV of the project, by name."""
    return [Seed(p.stem, p) for p in sorted(project.seeds_dir.glob("*.csv"))]


def _reads(path: Path, tree: exp.Expression, known: set[str]) -> tuple[str, ...]:
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    reads: list[str] = []
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name in ctes:
            continue
        if name not in known:
            raise SqlError(f"{where(path, table)}: unknown table {table.name}")
        reads.append(name)
    return tuple(dict.fromkeys(reads))


def load_models(project: Project) -> list[Model]:
    """Parse every model and return them in dependency order (graphlib)."""
    files = sorted(project.models_dir.glob("*.sql"))
    if not files:
        raise SqlError(f"no models in {project.models_dir}")
    extracts = {q.name.lower() for q in load_extracts(project)}
    seeds = {s.name.lower() for s in load_seeds(project)}
    names = {p.stem.lower() for p in files}
    clash = sorted(names & (extracts | seeds | {RUN_CONTEXT}))
    if clash:
        raise SqlError(f"{project.models_dir}: model {clash[0]} has the name of an extract or seed")
    known = names | extracts | seeds | {RUN_CONTEXT}
    models: dict[str, Model] = {}
    for path in files:
        statements = parse_file(path, "duckdb")
        if len(statements) != 1 or not isinstance(statements[0], exp.Query):
            raise SqlError(f"{path}: a model must be exactly one SELECT statement")
        tree = statements[0]
        models[path.stem.lower()] = Model(
            path.stem.lower(), path, path.read_text(encoding="utf-8"), _reads(path, tree, known)
        )
    graph = {name: {r for r in m.reads if r in models} for name, m in models.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise SqlError(
            f"{project.models_dir}: models read each other in a cycle: {cycle}"
        ) from None
    return [models[name] for name in order]
