"""Impact stage: what a change to the project does to the records, before it is committed.

The project as committed at a git revision (queries/, schemas/, patronload.toml) is
taken out with `git archive` into a temporary folder. It and the working tree are built
on the same snapshot and as-of date, and their final models are compared with the
classification of exporter.diff. Only the project comes from the revision: both builds
run this exporter's code, so files that are the same give the same records and are not
built twice.

Changes are named by element path (`contact.emails.email.address`): every leaf of
the record type is one path, where a leaf is a text element, an element holding only
text and attributes (a code with its description), or an attribute of an element with
children (`@preferred`). A list adds no name: its element repeats. Records of two
different types (an element added, removed or restructured) are compared path by path.
Everything is written under a temporary folder that is removed afterwards; nothing is
delivered.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from exporter.build import BuildResult, build
from exporter.diff import KINDS, Counts, attach_builds, check_snapshot, classify, record_column
from exporter.duck import literal, quote
from exporter.errors import ExporterError, StageError, UsageError
from exporter.export import GROUP_COLUMN, KEY_COLUMN
from exporter.project import Project
from exporter.xmlwrite import reference_xml

log = logging.getLogger(__name__)

#: What a project is made of; all of it is taken from the revision.
PROJECT_PARTS = ("queries", "schemas", "patronload.toml")

#: How wide a value may be in `ImpactResult.lines`; JSON has it whole.
SHOWN_WIDTH = 60

#: A step into a list: every item (a list adds no name to the path).
EACH = None

# The first examples of one selection of `delta`, taking patron types in turn so each
# type is shown, then listed by type and key; the joins back to the models touch only
# those rows.
_EXAMPLES = """
SELECT p.patron_type, p.record_key, {before} AS before, {after} AS after
FROM (
    SELECT * FROM (
        SELECT patron_type, record_key,
               row_number() OVER (PARTITION BY patron_type ORDER BY record_key) AS nth
        FROM delta WHERE {where}
    )
    ORDER BY nth, patron_type LIMIT ?
) AS p
LEFT JOIN old_build.main.{model} AS o ON o.{group} = p.patron_type AND o.{key} = p.record_key
LEFT JOIN new_build.main.{model} AS n ON n.{group} = p.patron_type AND n.{key} = p.record_key
ORDER BY p.patron_type, p.record_key
"""

# Why a record was not exported on the side where it is missing: its rejection reasons.
_REASONS = """
(SELECT list(DISTINCT l.reason ORDER BY l.reason) FILTER (WHERE l.reason IS NOT NULL)
 FROM {build}.main.{lookup} AS l
 WHERE l.{group} = p.patron_type AND l.{key} = p.record_key)
"""

_ELEMENT_COUNTS = """
SELECT element, patron_type, count(*) AS n
FROM (SELECT patron_type, unnest(fields) AS element FROM delta WHERE kind = 'changed')
GROUP BY ALL
"""


@dataclass(frozen=True)
class Example:
    """One changed record: an element's value at the base revision and now.

    Values are as in the record: text, a dict for an element with attributes or
    children, a list per list crossed on the way to the element; None when absent.
    """

    patron_type: str
    record_key: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Moved:
    """A record added or removed, and why the other side did not export it.

    Attributes:
        patron_type: The record's patron type.
        record_key: The record's key.
        reasons: The rejection reasons of the rows with this key on the other side
            (at the base revision for an added record, now for a removed one); empty
            when no row there formed this key.
    """

    patron_type: str
    record_key: str
    reasons: list[str]


@dataclass(frozen=True)
class Rejections:
    """Rows rejected for one reason, at the base revision and now."""

    patron_type: str
    reason: str
    base: int
    now: int


@dataclass(frozen=True)
class ImpactResult:
    """What the working tree's project changes in the records, against a revision.

    Attributes:
        base: The revision as given (`HEAD`, a branch, a commit).
        commit: The commit it names.
        snapshot: The snapshot both sides were built on.
        as_of: The as-of date both were built with.
        files: Project files that differ, relative to the project: added, removed or
            modified in the working tree.
        counts: Per patron type, records added, removed, changed and unchanged.
        elements: Per element path, per patron type, the records whose element changed.
        new_elements: Element paths only the working tree's records have.
        dropped_elements: Element paths only the base revision's records have.
        examples: Per element path, the first changed records with the element's
            value before and after.
        added: The first records added, with their rejection reasons at the base.
        removed: The first records removed, with their rejection reasons now.
        rejections: Rejected rows per patron type and reason, base and now.
    """

    base: str
    commit: str
    snapshot: Path
    as_of: date
    files: dict[str, str]
    counts: Counts
    elements: dict[str, dict[str, int]]
    new_elements: list[str]
    dropped_elements: list[str]
    examples: dict[str, list[Example]]
    added: list[Moved]
    removed: list[Moved]
    rejections: list[Rejections]

    def to_json(self) -> str:
        """The result as one JSON object with sorted keys, values in full."""
        data = asdict(self)
        data.update(snapshot=str(self.snapshot), as_of=self.as_of.isoformat())
        return json.dumps(data, sort_keys=True, default=str)

    def lines(self) -> list[str]:
        """Plain-text lines: counts per patron type, elements changed, then examples."""
        out = [
            f"impact of the working tree against {self.base} ({self.commit[:12]})",
            f"snapshot {self.snapshot}, as of {self.as_of}",
        ]
        if not self.files:
            out.append(
                "no change to the SQL: queries/, schemas/ and patronload.toml "
                f"are as at {self.base}"
            )
        for path, how in self.files.items():
            out.append(f"{how:<9}{path}")
        if any(p.startswith("queries/extract/") for p in self.files):
            out.append(
                "note: both sides use the same snapshot, so changes to "
                "queries/extract/ show only in a new snapshot"
            )
        out += ["", *_counts_table(self.counts)]
        out += _elements_table(self.elements, sorted(self.counts))
        out += [f"new element (working tree only): {p}" for p in self.new_elements]
        out += [f"dropped element (at {self.base} only): {p}" for p in self.dropped_elements]
        for path, examples in self.examples.items():
            name = path.rsplit(".", 1)[-1]
            shown = [f"{_shown(name, e.before)} → {_shown(name, e.after)}" for e in examples]
            total = sum(self.elements[path].values())
            out += [
                "",
                f"{path}: {self.base} → working tree ({len(examples)} of {total:,} shown)",
                *_example_lines(examples, shown),
            ]
        for kind, moved, side in (
            ("added", self.added, f"at {self.base}"),
            ("removed", self.removed, "now"),
        ):
            shown = [
                f"rejected {side}: {', '.join(m.reasons)}" if m.reasons else f"no row {side}"
                for m in moved
            ]
            if moved:
                total = sum(n[kind] for n in self.counts.values())
                out += [
                    "",
                    f"{kind} ({len(moved)} of {total:,} shown)",
                    *_example_lines(moved, shown),
                ]
        out += ["", *_rejections_table(self.rejections, self.base)]
        return out


def impact(project: Project, snapshot: Path, base: str, as_of: date, limit: int) -> ImpactResult:
    """Build the project at `base` and as it is now on one snapshot, and compare them.

    Args:
        project: The project in the working tree; it must be inside a git repository.
        snapshot: The snapshot both sides are built on.
        base: A git revision (default of the CLI: HEAD).
        as_of: The run date both sides are built for.
        limit: At most this many examples per element, and of added and of removed
            records; all are counted.

    Returns:
        Counts, elements changed, examples and rejection counts of both sides.

    Raises:
        UsageError: No git repository, an unknown revision, or no project at it.
        SnapshotError: The snapshot is missing or unreadable.
        StageError: A side failed to build; the message names the side.
    """
    started = time.perf_counter()
    repo = _Repo.of(project.root)
    commit = repo.commit(base)
    check_snapshot(snapshot)
    with tempfile.TemporaryDirectory(prefix="patronload-impact-") as work:
        base_project = repo.materialise(commit, base, Path(work) / "base")
        files = changed_files(base_project.root, project.root)
        base_side = _Side(base_project, f"the models as at {base}", f"{base}:{repo.prefix}")
        now_side = _Side(project, "the models in the working tree", "")
        now = now_side.build(snapshot, Path(work) / "now.duckdb", as_of)
        if not files:  # same files, same exporter: the same records
            result = _unchanged(base, commit, snapshot, as_of, now)
        else:
            old = base_side.build(snapshot, Path(work) / "base.duckdb", as_of)
            result = _compare(base, commit, files, (base_side, old), (now_side, now), limit)
    log.info("impact against %s computed in %.2fs", base, time.perf_counter() - started)
    return result


@dataclass(frozen=True)
class _Repo:
    """The git repository holding a project, and the project's folder in it."""

    top: Path
    prefix: str  # "" or "sub/dir/", as git prints it

    @classmethod
    def of(cls, root: Path) -> _Repo:
        found = _git(root, "rev-parse", "--show-toplevel", "--show-prefix")
        if found.returncode:
            raise UsageError(
                f"{root} is not in a git repository, so there is no revision to compare "
                f"with ({_first_line(found.stderr)})"
            )
        top, _, prefix = found.stdout.decode().partition("\n")
        return cls(Path(top), prefix.strip())

    def commit(self, rev: str) -> str:
        found = _git(
            self.top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
        if found.returncode:
            raise UsageError(f"--base: unknown revision {rev!r} in {self.top}")
        return found.stdout.decode().strip()

    def materialise(self, commit: str, rev: str, dest: Path) -> Project:
        """Write the project's files as committed into `dest`; return it as a project."""
        paths = [self.prefix + part for part in PROJECT_PARTS]
        listed = _git(self.top, "ls-tree", "--name-only", commit, "--", *paths)
        present = set(listed.stdout.decode().splitlines())
        if not {self.prefix + "queries", self.prefix + "patronload.toml"} <= present:
            raise UsageError(
                f"the project {self.prefix or './'} did not exist at {rev}: it has no "
                f"queries/ folder and patronload.toml there"
            )
        archive = _git(self.top, "archive", "--format=tar", commit, "--", *sorted(present))
        if archive.returncode:
            raise UsageError(f"git archive of {rev} failed: {_first_line(archive.stderr)}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(dest, filter="data")
        return Project(dest / self.prefix)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise UsageError("impact needs git, and no git command was found") from None


def _first_line(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip()
    return text.splitlines()[0] if text else "no message"


def changed_files(base: Path, now: Path) -> dict[str, str]:
    """Project files that differ between two project folders: added, removed, modified."""
    old, new = dict(_project_files(base)), dict(_project_files(now))
    changes = {p: "added" for p in new.keys() - old.keys()}
    changes |= {p: "removed" for p in old.keys() - new.keys()}
    changes |= {p: "modified" for p in old.keys() & new.keys() if old[p] != new[p]}
    return dict(sorted(changes.items()))


def _project_files(root: Path) -> Iterator[tuple[str, bytes]]:
    for part in PROJECT_PARTS:
        top = root / part
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            if path.is_file():
                yield path.relative_to(root).as_posix(), path.read_bytes()


@dataclass(frozen=True)
class _Side:
    """One side of the comparison: a project, what to call it, where its files are."""

    project: Project
    name: str
    shown_root: str  # replaces the project folder in messages ("" keeps it)

    def build(self, snapshot: Path, database: Path, as_of: date) -> BuildResult:
        try:
            built = build(self.project, snapshot, database, as_of)
        except ExporterError as exc:
            raise self.failure(exc) from None
        log.info("built %s in %.2fs", self.name, built.seconds)
        return built

    def failure(
        self, exc: ExporterError, stage: str = "building", build: Path | None = None
    ) -> StageError:
        """The error said of this side, with the temporary folder's name hidden."""
        text = str(exc)
        if self.shown_root:
            text = text.replace(f"{self.project.root}{os.sep}", self.shown_root)
        if build:
            text = text.replace(f"{build}: ", "")
        cause = ExporterError(text)
        cause.exit_code = exc.exit_code
        return StageError(f"{stage} {self.name}", cause)


def _unchanged(
    base: str, commit: str, snapshot: Path, as_of: date, now: BuildResult
) -> ImpactResult:
    counts = {
        a.patron_type: {**dict.fromkeys(KINDS, 0), "unchanged": a.exported} for a in now.accounting
    }
    rejections = [Rejections(t, r, n, n) for (t, r), n in sorted(now.rejections.items())]
    return ImpactResult(
        base, commit, snapshot, as_of, {}, counts, {}, [], [], {}, [], [], rejections
    )


def _compare(
    base: str,
    commit: str,
    files: dict[str, str],
    old: tuple[_Side, BuildResult],
    new: tuple[_Side, BuildResult],
    limit: int,
) -> ImpactResult:
    """Compare the final models of the two builds, element by element."""
    (old_side, old_built), (new_side, new_built) = old, new
    old_settings, new_settings = old_side.project.settings(), new_side.project.settings()
    model = new_settings.final_model
    if old_settings.final_model != model:
        raise UsageError(
            f"the final model is {old_settings.final_model} at {base} but {model} in the "
            "working tree; impact compares records of one model"
        )
    with attach_builds(old_built.database, new_built.database) as con:
        try:
            old_record, old_type = record_column(con, "old_build", old_built.database, model)
        except ExporterError as exc:
            raise old_side.failure(exc, "comparing", old_built.database) from None
        try:
            new_record, new_type = record_column(con, "new_build", new_built.database, model)
        except ExporterError as exc:
            raise new_side.failure(exc, "comparing", new_built.database) from None
        old_leaves, new_leaves = dict(_leaves(old_type)), dict(_leaves(new_type))
        checks = _checks(old_leaves, new_leaves)
        changed = (
            "old_record IS DISTINCT FROM new_record"
            if str(old_type) == str(new_type)
            else " OR ".join(f"({cond})" for _, cond in checks)
        )
        counts = classify(con, model, (old_record, new_record), changed, checks)
        elements = _element_counts(con, [path for path, _ in checks])
        query = _Query(con, model, f"o.{quote(old_record)}", f"n.{quote(new_record)}", limit)
        examples = {
            path: query.values(path, old_leaves.get(path), new_leaves.get(path))
            for path in elements
        }
        added = query.reasons("added", "old_build", old_settings.lookup_model)
        removed = query.reasons("removed", "new_build", new_settings.lookup_model)
    return ImpactResult(
        base=base,
        commit=commit,
        snapshot=new_built.snapshot,
        as_of=new_built.as_of,
        files=files,
        counts=counts,
        elements=elements,
        new_elements=[p for p in new_leaves if p not in old_leaves],
        dropped_elements=[p for p in old_leaves if p not in new_leaves],
        examples=examples,
        added=added,
        removed=removed,
        rejections=_rejections(old_built.rejections, new_built.rejections),
    )


@dataclass(frozen=True)
class _Leaf:
    """A leaf of a record type: the steps from the record to it, and its type."""

    steps: tuple[str | None, ...]
    type: str

    def value(self, record: str) -> str:
        """SQL for the leaf's value in `record`: a list per list crossed on the way."""
        return _value(record, self.steps, 0)

    def absent(self, record: str) -> str:
        """SQL that holds when the leaf has no value at all in `record` (no element)."""
        expr, lists = self.value(record), self.steps.count(EACH)
        if not lists:
            return f"({expr} IS NULL)"
        for _ in range(lists - 1):
            expr = f"flatten({expr})"
        return f"(coalesce(len(list_filter({expr}, lambda v: v IS NOT NULL)), 0) = 0)"


def _value(expr: str, steps: tuple[str | None, ...], depth: int) -> str:
    for i, step in enumerate(steps):
        if step is EACH:
            if i == len(steps) - 1:
                return expr
            item = f"item{depth}"
            return (
                f"list_transform({expr}, lambda {item}: {_value(item, steps[i + 1 :], depth + 1)})"
            )
        expr = f"{expr}[{literal(step)}]"
    return expr


def _leaves(duck_type: Any, steps: tuple[str | None, ...] = ()) -> Iterator[tuple[str, _Leaf]]:
    """Every leaf of a record type, by element path, in record order."""
    if duck_type.id == "list":
        yield from _leaves(duck_type.child, (*steps, EACH))
        return
    fields = duck_type.children if duck_type.id == "struct" else []
    simple = all(name.startswith(("@", "#")) for name, _ in fields)  # a code element
    if not fields or (simple and steps):
        yield ".".join(s for s in steps if s is not EACH), _Leaf(steps, str(duck_type))
        return
    for name, child in fields:
        yield from _leaves(child, (*steps, name))


def _checks(old: dict[str, _Leaf], new: dict[str, _Leaf]) -> list[tuple[str, str]]:
    """Per element path, SQL that holds when the element differs between the records."""
    checks = []
    for path in [*new, *(p for p in old if p not in new)]:
        before, after = old.get(path), new.get(path)
        if before and after and before == after:
            cond = f"{before.value('old_record')} IS DISTINCT FROM {after.value('new_record')}"
        elif before and after:  # the element changed type: compare what it holds
            cond = (
                f"to_json({before.value('old_record')})::VARCHAR IS DISTINCT FROM "
                f"to_json({after.value('new_record')})::VARCHAR"
            )
        elif after:
            cond = f"NOT {after.absent('new_record')}"
        else:
            assert before is not None
            cond = f"NOT {before.absent('old_record')}"
        checks.append((path, cond))
    return checks


def _element_counts(con: duckdb.DuckDBPyConnection, order: list[str]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for element, patron_type, n in con.execute(_ELEMENT_COUNTS).fetchall():
        found.setdefault(element, {})[patron_type] = int(n)
    return {path: dict(sorted(found[path].items())) for path in order if path in found}


@dataclass(frozen=True)
class _Query:
    """Example queries on `delta` and the two attached builds."""

    con: duckdb.DuckDBPyConnection
    model: str
    old_record: str
    new_record: str
    limit: int

    def values(self, path: str, old: _Leaf | None, new: _Leaf | None) -> list[Example]:
        """The first records whose element at `path` changed, with its two values."""
        where = f"kind = 'changed' AND list_contains(fields, {literal(path)})"
        before = old.value(self.old_record) if old else "NULL"
        after = new.value(self.new_record) if new else "NULL"
        return [Example(**row) for row in self._examples(where, before, after)]

    def reasons(self, kind: str, build: str, lookup: str) -> list[Moved]:
        """The first records added or removed, with why the other side rejected them."""
        reasons = _REASONS.format(
            build=build, lookup=quote(lookup), group=quote(GROUP_COLUMN), key=quote(KEY_COLUMN)
        )
        rows = self._examples(f"kind = {literal(kind)}", reasons, "NULL")
        return [Moved(r["patron_type"], r["record_key"], r["before"] or []) for r in rows]

    def _examples(self, where: str, before: str, after: str) -> list[dict[str, Any]]:
        if self.limit <= 0:
            return []
        sql = _EXAMPLES.format(
            where=where,
            before=before,
            after=after,
            model=quote(self.model),
            group=quote(GROUP_COLUMN),
            key=quote(KEY_COLUMN),
        )
        cur = self.con.execute(sql, [self.limit])
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _rejections(
    old: dict[tuple[str, str], int], new: dict[tuple[str, str], int]
) -> list[Rejections]:
    return [Rejections(t, r, old.get((t, r), 0), new.get((t, r), 0)) for t, r in sorted(old | new)]


def _counts_table(counts: Counts) -> list[str]:
    width = max([len("patron type"), *(len(t) for t in counts)]) + 2
    out = [f"{'patron type':<{width}}" + "".join(f"{k:>11}" for k in KINDS)]
    for patron_type, n in sorted(counts.items()):
        out.append(f"{patron_type:<{width}}" + "".join(f"{n[k]:>11,}" for k in KINDS))
    return out


def _elements_table(elements: dict[str, dict[str, int]], types: list[str]) -> list[str]:
    if not elements:
        return []
    width = max([len("element changed"), *map(len, elements)]) + 2
    out = ["", f"{'element changed':<{width}}" + "".join(f"{t:>11}" for t in types)]
    for path, per_type in elements.items():
        out.append(f"{path:<{width}}" + "".join(f"{per_type.get(t, 0):>11,}" for t in types))
    return out


def _rejections_table(rejections: list[Rejections], base: str) -> list[str]:
    if not rejections:
        return ["rejections: none on either side"]
    type_width = max([len("patron type"), *(len(r.patron_type) for r in rejections)]) + 2
    reason_width = max([len("rejected for"), *(len(r.reason) for r in rejections)]) + 2
    base_width = max(len(base), 9) + 2
    out = [
        f"{'patron type':<{type_width}}{'rejected for':<{reason_width}}{base:>{base_width}}"
        f"{'now':>11}"
    ]
    for r in rejections:
        moved = f"  ({r.now - r.base:+,})" if r.now != r.base else ""
        out.append(
            f"{r.patron_type:<{type_width}}{r.reason:<{reason_width}}{r.base:>{base_width},}"
            f"{r.now:>11,}{moved}"
        )
    return out


def _example_lines(records: Sequence[Example | Moved], shown: list[str]) -> list[str]:
    """One line per record: patron type and key aligned, then what is shown of it."""
    type_width = max(len(r.patron_type) for r in records)
    key_width = max(len(r.record_key) for r in records)
    return [
        f"  {r.patron_type:<{type_width}}  {r.record_key:<{key_width}}  {text}"
        for r, text in zip(records, shown, strict=True)
    ]


def _shown(name: str, value: Any) -> str:
    """An element's value on one line: its text, or its XML when it has structure."""
    if value is None:
        return "(absent)"
    if isinstance(value, list):
        items = [_shown(name, v) for v in _flat(value) if v is not None]
        text = " | ".join(items) if items else "(absent)"
    elif isinstance(value, dict):
        text = reference_xml(name, value)
    else:
        text = str(value) if value != "" else '""'
    return text if len(text) <= SHOWN_WIDTH else text[: SHOWN_WIDTH - 1] + "…"


def _flat(values: list[Any]) -> Iterator[Any]:
    for v in values:
        if isinstance(v, list):
            yield from _flat(v)
        else:
            yield v
