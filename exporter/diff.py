"""Diff stage: who was added, removed or changed between two snapshots, per patron type.

Both snapshots are built with the same project and the same as-of date into a
temporary folder (expiry and purge dates follow the as-of date, so two builds on
different dates would differ in every record). The comparison itself is one DuckDB
join of the two final models on (patron type, record key); the top-level record
fields that differ are found in SQL from the record's STRUCT type, so no element
name is known here. Only the first `limit` changes are fetched into Python.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from exporter.build import build, open_snapshot
from exporter.duck import capped, connect, first_line, literal, quote
from exporter.errors import BuildError
from exporter.export import GROUP_COLUMN, KEY_COLUMN
from exporter.project import Project

log = logging.getLogger(__name__)

#: The kinds of difference, in the order counts are shown; "unchanged" is only counted.
KINDS = ("added", "removed", "changed", "unchanged")

#: How each kind is marked in `DiffResult.lines`.
MARKS = {"added": "+", "removed": "-", "changed": "~"}

#: Counts per patron type, then per kind.
Counts = dict[str, dict[str, int]]

# Every row of either build, classified. The FULL OUTER JOIN reads each model once;
# `{changed}` decides whether a record present in both builds changed, and `{fields}`
# (the differing fields) is only computed for changed rows. Both see the two records
# as `old_record` and `new_record`.
_CLASSIFY = """
CREATE TEMP TABLE delta AS
SELECT
    patron_type, record_key, kind,
    CASE WHEN kind = 'changed' THEN {fields} END AS fields
FROM (
    SELECT
        patron_type, record_key, old_record, new_record,
        CASE
            WHEN NOT in_old THEN 'added'
            WHEN NOT in_new THEN 'removed'
            WHEN {changed} THEN 'changed'
            ELSE 'unchanged'
        END AS kind
    FROM (
        SELECT
            coalesce(n.{group}, o.{group}) AS patron_type,
            coalesce(n.{key}, o.{key}) AS record_key,
            o.{key} IS NOT NULL AS in_old,
            n.{key} IS NOT NULL AS in_new,
            o.{old_record} AS old_record,
            n.{new_record} AS new_record
        FROM old_build.main.{model} AS o
        FULL OUTER JOIN new_build.main.{model} AS n
            ON o.{group} = n.{group} AND o.{key} = n.{key}
    )
)
"""

#: A record present in both builds changed when it differs in any way.
RECORD_DIFFERS = "old_record IS DISTINCT FROM new_record"

_COUNTS = "SELECT patron_type, kind, count(*) AS n FROM delta GROUP BY ALL ORDER BY ALL"

# The first `limit` changes, with both records of the changed ones; the joins back to
# the models touch only those few rows.
_CHANGES = """
SELECT d.patron_type, d.record_key, d.kind, d.fields,
       o.{record} AS old_record, n.{record} AS new_record
FROM (
    SELECT * FROM delta WHERE kind <> 'unchanged'
    ORDER BY patron_type, kind, record_key LIMIT ?
) AS d
LEFT JOIN old_build.main.{model} AS o
    ON d.kind = 'changed' AND o.{group} = d.patron_type AND o.{key} = d.record_key
LEFT JOIN new_build.main.{model} AS n
    ON d.kind = 'changed' AND n.{group} = d.patron_type AND n.{key} = d.record_key
ORDER BY d.patron_type, d.kind, d.record_key
"""


@dataclass(frozen=True)
class Change:
    """One patron added, removed or changed.

    Attributes:
        patron_type: The patron type (file group) the record belongs to.
        record_key: The record's key, unique within its patron type.
        kind: "added", "removed" or "changed".
        fields: Top-level record fields that differ, in record order (changed only).
        old: The differing fields' old values (changed only, else None).
        new: The differing fields' new values (changed only, else None).
    """

    patron_type: str
    record_key: str
    kind: str
    fields: tuple[str, ...]
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass(frozen=True)
class DiffResult:
    """The difference between two snapshots, built on the same as-of date.

    Attributes:
        old_snapshot: The earlier snapshot.
        new_snapshot: The later snapshot.
        as_of: The as-of date both were built with.
        counts: Per patron type, the number of records added, removed, changed and
            unchanged (every kind present, zero when none).
        changes: The first changes, ordered by patron type, kind and record key.
    """

    old_snapshot: Path
    new_snapshot: Path
    as_of: date
    counts: Counts
    changes: list[Change]

    @property
    def omitted(self) -> int:
        """Changes counted but not listed (beyond the limit)."""
        total = sum(c[k] for c in self.counts.values() for k in MARKS)
        return total - len(self.changes)

    def to_json(self) -> str:
        """The result as one JSON line with sorted keys.

        Keys: `old_snapshot`, `new_snapshot` (paths), `as_of` (YYYY-MM-DD), `counts`
        ({patron_type: {added, removed, changed, unchanged}}), `changes` (a list of
        {patron_type, record_key, kind, fields, old, new}) and `omitted` (changes
        counted but not listed).
        """
        return json.dumps(
            {
                "old_snapshot": str(self.old_snapshot),
                "new_snapshot": str(self.new_snapshot),
                "as_of": self.as_of.isoformat(),
                "counts": self.counts,
                "changes": [
                    {
                        "patron_type": c.patron_type,
                        "record_key": c.record_key,
                        "kind": c.kind,
                        "fields": list(c.fields),
                        "old": c.old,
                        "new": c.new,
                    }
                    for c in self.changes
                ],
                "omitted": self.omitted,
            },
            sort_keys=True,
        )

    def lines(self) -> list[str]:
        """The result as aligned plain-text lines: counts first, then one line per change."""
        out = [f"old {self.old_snapshot}", f"new {self.new_snapshot}", f"as of {self.as_of}", ""]
        width = max([len("patron type"), *(len(t) for t in self.counts)]) + 2
        out.append(f"{'patron type':<{width}}" + "".join(f"{k:>11}" for k in KINDS))
        for patron_type, n in sorted(self.counts.items()):
            out.append(f"{patron_type:<{width}}" + "".join(f"{n[k]:>11,}" for k in KINDS))
        if not self.changes:
            return out
        out.append("")
        type_width = max(len(c.patron_type) for c in self.changes)
        key_width = max(len(c.record_key) for c in self.changes)
        for c in self.changes:
            line = f"{MARKS[c.kind]} {c.patron_type:<{type_width}} {c.record_key:<{key_width}}"
            if c.fields:
                line += "  " + ", ".join(c.fields)
            out.append(line.rstrip())
        if self.omitted:
            out.append(f"... and {self.omitted:,} more")
        return out


def check_snapshot(snapshot: Path) -> None:
    """Raise SnapshotError unless `snapshot` opens as a snapshot (the build's own check)."""
    con = connect()
    try:
        open_snapshot(con, snapshot)
    finally:
        con.close()


def diff_snapshots(
    project: Project, old: Path, new: Path, as_of: date, limit: int = 50
) -> DiffResult:
    """Build two snapshots on the same as-of date and compare their final models.

    The builds go to a temporary folder (under TMPDIR) that is removed afterwards;
    existing builds are neither used nor touched.

    Args:
        project: The project whose models both snapshots are built with.
        old: The earlier snapshot.
        new: The later snapshot.
        as_of: The run date both are built for.
        limit: At most this many changes are listed; all are counted.

    Returns:
        The counts per patron type and the first `limit` changes.

    Raises:
        SnapshotError: A snapshot is missing or is not a readable snapshot.
        BuildError: A model failed to build on either snapshot.
    """
    for snapshot in (old, new):  # both, before the first (long) build
        check_snapshot(snapshot)
    final_model = project.settings().final_model
    with tempfile.TemporaryDirectory(prefix="patronload-diff-") as work:
        old_db, new_db = Path(work) / "old.duckdb", Path(work) / "new.duckdb"
        for snapshot, database in ((old, old_db), (new, new_db)):
            built = build(project, snapshot, database, as_of)
            log.info("built %s for the diff in %.2fs", snapshot, built.seconds)
        counts, changes = diff_builds(old_db, new_db, final_model, limit)
    return DiffResult(old, new, as_of, counts, changes)


def diff_builds(
    old_db: Path, new_db: Path, final_model: str, limit: int = 50
) -> tuple[Counts, list[Change]]:
    """Compare the final model of two existing builds.

    Args:
        old_db: The earlier build database.
        new_db: The later build database.
        final_model: The name of the final model (`patronload.toml`).
        limit: At most this many changes are returned; all are counted.

    Returns:
        Counts per patron type and kind, and the first `limit` changes ordered by
        patron type, kind and record key.

    Raises:
        BuildError: A build is missing, unreadable, lacks the final model, or the two
            final models' records differ in type.
    """
    started = time.perf_counter()
    with attach_builds(old_db, new_db) as con:
        record, names = _record_struct(con, old_db, new_db, final_model)
        checks = [
            (name, f"old_record[{literal(name)}] IS DISTINCT FROM new_record[{literal(name)}]")
            for name in names
        ]
        counts = classify(con, final_model, (record, record), RECORD_DIFFERS, checks)
        parts = {
            "group": quote(GROUP_COLUMN),
            "key": quote(KEY_COLUMN),
            "record": quote(record),
            "model": quote(final_model),
        }
        changes = _changes(con, _CHANGES.format(**parts), limit) if limit > 0 else []
    log.info("compared %s and %s in %.2fs", old_db.name, new_db.name, time.perf_counter() - started)
    return counts, changes


def classify(
    con: duckdb.DuckDBPyConnection,
    final_model: str,
    records: tuple[str, str],
    changed: str,
    checks: list[tuple[str, str]],
) -> Counts:
    """Classify every record of two attached builds into the temporary table `delta`.

    `delta` holds patron_type, record_key, kind and, for changed records, `fields`: the
    labels of the `checks` that hold, in order.

    Args:
        con: A connection from `attach_builds`.
        final_model: The final model, in both builds.
        records: The record column in the old build and in the new one.
        changed: A SQL condition on `old_record` and `new_record`: the record changed.
        checks: (label, SQL condition on `old_record` and `new_record`) pairs.

    Returns:
        Counts per patron type and kind.
    """
    con.execute(
        _CLASSIFY.format(
            group=quote(GROUP_COLUMN),
            key=quote(KEY_COLUMN),
            model=quote(final_model),
            old_record=quote(records[0]),
            new_record=quote(records[1]),
            changed=changed,
            fields=_differing(checks),
        )
    )
    return _counts(con)


@contextmanager
def attach_builds(old_db: Path, new_db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory connection with both builds attached read-only, memory capped.

    The builds are `old_build` and `new_build`.
    """
    with capped() as con:
        for alias, path in (("old_build", old_db), ("new_build", new_db)):
            if not path.is_file():
                raise BuildError(f"build not found: {path}")
            try:
                con.execute(f"ATTACH {literal(str(path))} AS {alias} (READ_ONLY)")
            except duckdb.Error as exc:
                raise BuildError(f"{path}: not a readable build: {first_line(exc)}") from None
        yield con


def _record_struct(
    con: duckdb.DuckDBPyConnection, old_db: Path, new_db: Path, final_model: str
) -> tuple[str, list[str]]:
    """The record column of the final model and its top-level field names.

    Both builds must hold the final model with the same record type: records of
    different shapes cannot be compared field by field.
    """
    old_name, old_type = record_column(con, "old_build", old_db, final_model)
    new_name, new_type = record_column(con, "new_build", new_db, final_model)
    if old_name != new_name or str(old_type) != str(new_type):
        raise BuildError(
            f"{old_db} and {new_db}: the records of {final_model} differ in type; "
            "build both with the same project"
        )
    return old_name, [name for name, _ in old_type.children]


def record_column(
    con: duckdb.DuckDBPyConnection, alias: str, path: Path, final_model: str
) -> tuple[str, Any]:
    """The name and DuckDB type of the record column of an attached build's final model.

    Raises:
        BuildError: The build has no final model, or it is not patron_type, record_key
            and one STRUCT column.
    """
    try:
        rel = con.table(f"{alias}.main.{quote(final_model)}")
    except duckdb.Error:
        raise BuildError(f"{path}: has no final model {final_model}") from None
    columns = dict(zip(rel.columns, rel.types, strict=True))
    record = [c for c in columns if c not in (GROUP_COLUMN, KEY_COLUMN)]
    if len(columns) - len(record) != 2 or len(record) != 1 or columns[record[0]].id != "struct":
        raise BuildError(
            f"{path}: {final_model} must have {GROUP_COLUMN}, {KEY_COLUMN} and one STRUCT "
            f"column; it has {', '.join(columns)}"
        )
    return record[0], columns[record[0]]


def _differing(checks: list[tuple[str, str]]) -> str:
    """A SQL list of the labels of the checks that hold, in order."""
    cases = ", ".join(f"CASE WHEN {cond} THEN {literal(label)} END" for label, cond in checks)
    return f"list_filter([{cases}], lambda f: f IS NOT NULL)"


def _counts(con: duckdb.DuckDBPyConnection) -> Counts:
    counts: Counts = {}
    cur = con.execute(_COUNTS)
    names = [d[0] for d in cur.description or []]
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        per_type = counts.setdefault(row["patron_type"], dict.fromkeys(KINDS, 0))
        per_type[row["kind"]] = int(row["n"])
    return counts


def _changes(con: duckdb.DuckDBPyConnection, sql: str, limit: int) -> list[Change]:
    cur = con.execute(sql, [limit])
    names = [d[0] for d in cur.description or []]
    changes = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        fields = tuple(row["fields"] or ())
        changed = row["kind"] == "changed"
        changes.append(
            Change(
                patron_type=row["patron_type"],
                record_key=row["record_key"],
                kind=row["kind"],
                fields=fields,
                old={f: row["old_record"][f] for f in fields} if changed else None,
                new={f: row["new_record"][f] for f in fields} if changed else None,
            )
        )
    return changes
