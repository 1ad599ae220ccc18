"""Explain stage: why a person was or was not exported, from one snapshot's build.

Everything comes from the models: the lookup model lists every extracted row with
its verdict and search keys, the reasons seed holds the sentences, the final model
holds the record, and the run history says which file carried it. History across
snapshots reads each snapshot's build, where one exists.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from exporter.duck import connect, quote
from exporter.export import GROUP_COLUMN, KEY_COLUMN, record_column
from exporter.models import RUN_CONTEXT
from exporter.project import ExportSettings, Project
from exporter.xmlwrite import Sanitizer, reference_xml

log = logging.getLogger(__name__)

#: How many rows a name search may return before it asks for a closer query.
MAX_MATCHES = 50


@dataclass
class Source:
    """One extracted row of the person."""

    patron_type: str
    source: str
    reason: str | None
    explanation: str | None
    raw: dict[str, Any]


@dataclass
class Change:
    """What differed for the person from one snapshot to the next."""

    snapshot: str
    what: str


@dataclass
class Person:
    """Everything known about one person in the chosen snapshot."""

    key: str | None
    name: str
    exported_as: str | None
    sources: list[Source]
    record_xml: str | None = None
    location: dict[str, Any] | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    changes: list[Change] = field(default_factory=list)
    unbuilt_snapshots: int = 0

    def verdict(self) -> list[str]:
        """Sentences a librarian understands, the outcome first."""
        said = [f"Exported as {self.exported_as}."] if self.exported_as else []
        for s in self.sources:
            if s.reason:
                said.append(f"{s.patron_type} row: {s.explanation or s.reason} [{s.reason}]")
        return said or ["Not exported, and no reason was recorded."]


@dataclass
class Explanation:
    """The answer to one query."""

    query: str
    snapshot: str
    people: list[Person]
    suggestions: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    def lines(self) -> list[str]:
        if not self.people:
            hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
            return [f"No one in {self.snapshot} matches {self.query!r}.{hint}"]
        out: list[str] = []
        if len(self.people) > 1:
            out.append(f"{len(self.people)} people match {self.query!r}:")
        for p in self.people:
            out += ["", f"{p.key or '(no primary id)'}  {p.name}"]
            out += [
                f"  verdict   {line}" if i == 0 else f"            {line}"
                for i, line in enumerate(p.verdict())
            ]
            for s in p.sources:
                fields = ", ".join(f"{k}={v!r}" for k, v in s.raw.items() if v is not None)
                out.append(f"  source    {s.source}: {fields}")
            if p.location:
                loc = p.location
                out.append(
                    f"  file      {loc['zip']} > {loc['xml_file']}, record {loc['record']:,}"
                    f" (run of {loc['run_time']})"
                )
            elif p.exported_as:
                out.append("  file      no recorded run exported this snapshot")
            if p.first_seen:
                out.append(f"  history   first seen {p.first_seen}, last seen {p.last_seen}")
                out += [f"            {c.snapshot}: {c.what}" for c in p.changes]
                if p.unbuilt_snapshots:
                    out.append(
                        f"            ({p.unbuilt_snapshots} snapshot(s) not built, not read)"
                    )
            if p.record_xml:
                out.append("  record")
                out += ["    " + line for line in _pretty(p.record_xml).splitlines()]
        return out


def _pretty(xml: str) -> str:
    element = etree.fromstring(xml.encode())
    etree.indent(element, space="  ")
    return str(etree.tostring(element, encoding="unicode"))


def _matches(con: Any, settings: ExportSettings, query: str) -> list[dict[str, Any]]:
    lookup, reasons = quote(settings.lookup_model), quote(settings.reasons_seed)
    select = (
        f"SELECT l.patron_type, l.source, l.record_key, l.reason, l.display_name, l.raw, "
        f"r.explanation FROM {lookup} l LEFT JOIN {reasons} r ON r.reason = l.reason "
    )
    q = query.strip().lower()
    cur = con.execute(select + "WHERE list_contains(l.search_keys, ?) ORDER BY ALL", [q])
    rows = cur.fetchall()
    if not rows and len(q) >= 3:
        cur = con.execute(
            select + "WHERE len(list_filter(l.search_keys, lambda k: contains(k, ?))) > 0 "
            f"ORDER BY ALL LIMIT {MAX_MATCHES}",
            [q],
        )
        rows = cur.fetchall()
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in rows]


def matching_keys(con: Any, settings: ExportSettings, query: str) -> list[str]:
    """The record keys of the exported people a query finds (as explain finds them)."""
    return sorted({r["record_key"] for r in _matches(con, settings, query) if r["record_key"]})


def _suggestions(con: Any, settings: ExportSettings, query: str) -> list[str]:
    q = query.strip().lower()
    if not q:
        return []
    rows = con.execute(
        f"SELECT k FROM (SELECT DISTINCT unnest(search_keys) AS k FROM "
        f"{quote(settings.lookup_model)}) WHERE k[1] = ? "
        "ORDER BY jaro_winkler_similarity(k, ?) DESC, k LIMIT 5",
        [q[0], q],
    ).fetchall()
    return [r[0] for r in rows]


def _people(rows: list[dict[str, Any]]) -> list[Person]:
    grouped: dict[str, Person] = {}
    for i, row in enumerate(rows):
        key = row["record_key"] or f"row {i}"
        person = grouped.setdefault(
            key, Person(row["record_key"], row["display_name"] or "", None, [])
        )
        raw = json.loads(row["raw"])
        raw.pop("rejection_reason", None)
        person.sources.append(
            Source(row["patron_type"], row["source"], row["reason"], row["explanation"], raw)
        )
        if row["reason"] is None:
            person.exported_as = row["patron_type"]
    return list(grouped.values())


def _record(con: Any, settings: ExportSettings, person: Person) -> tuple[str, int] | None:
    """The person's record as sent, and its position in its patron type's file order."""
    final = quote(settings.final_model)
    column, _ = record_column(con, settings.final_model)
    where = f"WHERE {GROUP_COLUMN} = ? AND {KEY_COLUMN}"
    params = [person.exported_as, person.key]
    row = con.execute(f"SELECT {quote(column)} FROM {final} {where} = ?", params).fetchone()
    if row is None:
        return None
    (position,) = con.execute(f"SELECT count(*) FROM {final} {where} <= ?", params).fetchone()
    value = Sanitizer(settings.max_value_length).sanitize(row[0])
    return reference_xml(column, value), int(position)


def _location(
    runs: list[dict[str, Any]], build: Path, patron_type: str, position: int
) -> dict[str, Any] | None:
    """Which zip and XML file of the latest full run of this build holds record `position`.

    An incremental run (--changes-since) holds a subset, so positions do not apply.
    """
    for run in reversed(runs):
        if run.get("changes_since") or Path(run["build"]).resolve() != build.resolve():
            continue
        seen = 0
        for f in run["files"]:
            if f.get("patron_type") != patron_type:
                continue
            for member, users in zip(f["xml_files"], f["xml_users"], strict=True):
                if position <= seen + users:
                    return {
                        "zip": f["zip"],
                        "xml_file": member,
                        "record": position - seen,
                        "run_time": run["time"],
                    }
                seen += users
    return None


def _state(con: Any, settings: ExportSettings, key: str) -> dict[str, Any] | None:
    """The person's source rows (with reasons), record and as-of date in one build."""
    rows = con.execute(
        f"SELECT source, reason, raw FROM {quote(settings.lookup_model)} "
        "WHERE record_key = ? ORDER BY ALL",
        [key],
    ).fetchall()
    if not rows:
        return None
    column, _ = record_column(con, settings.final_model)
    record = con.execute(
        f"SELECT {quote(column)} FROM {quote(settings.final_model)} WHERE {KEY_COLUMN} = ?",
        [key],
    ).fetchone()
    (as_of,) = con.execute(f"SELECT as_of FROM {RUN_CONTEXT}").fetchone()
    return {
        "sources": {src: {"reason": reason, **json.loads(raw)} for src, reason, raw in rows},
        "record": record[0] if record else None,
        "as_of": str(as_of),
    }


def _compare(label: str, before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    changes = []
    for src in sorted(set(before["sources"]) | set(after["sources"])):
        old, new = before["sources"].get(src), after["sources"].get(src)
        if old is None or new is None:
            where = "now in" if new else "no longer in"
            changes.append(Change(label, f"{src}: {where} the source"))
            continue
        changes += [
            Change(label, f"{src}: {k} {old.get(k)!r} -> {new.get(k)!r}")
            for k in new
            if old.get(k) != new.get(k)
        ]
    old_record, new_record = before["record"] or {}, after["record"] or {}
    fields = [k for k in new_record or old_record if old_record.get(k) != new_record.get(k)]
    if fields:
        note = ""
        if before["as_of"] != after["as_of"]:
            note = f" (built as of {before['as_of']} and {after['as_of']}: dates follow)"
        changes.append(Change(label, f"record sent: {', '.join(fields)} changed{note}"))
    return changes


def _history(
    person: Person, settings: ExportSettings, snapshots: list[Path], build_dir: Path
) -> None:
    """First and last snapshot holding the person, and each change of verdict, source
    field or field of the record sent, from the builds that exist."""
    if not person.key:
        return
    previous: dict[str, Any] | None = None
    for snap in snapshots:
        build = build_dir / snap.name
        if not build.is_file():
            person.unbuilt_snapshots += 1
            continue
        with connect(build, read_only=True) as con:
            state = _state(con, settings, person.key)
        label = snap.stem
        if state is None:
            if previous is not None:
                person.changes.append(Change(label, "no longer in the source"))
            previous = None
            continue
        if previous is None and person.first_seen is not None:
            person.changes.append(Change(label, "back in the source"))
        elif previous is not None:
            person.changes += _compare(label, previous, state)
        person.first_seen = person.first_seen or label
        person.last_seen = label
        previous = state


def explain(
    project: Project,
    snapshot: Path,
    build: Path,
    query: str,
    runs: list[dict[str, Any]],
    snapshots: list[Path],
    build_dir: Path,
) -> Explanation:
    """Answer `query` (an identifier or a name) for the snapshot whose build is `build`."""
    settings = project.settings()
    with connect(build, read_only=True) as con:
        people = _people(_matches(con, settings, query))
        suggestions = [] if people else _suggestions(con, settings, query)
        for person in people:
            if person.exported_as and person.key:
                found = _record(con, settings, person)
                if found:
                    person.record_xml, position = found
                    person.location = _location(runs, build, person.exported_as, position)
    for person in people:
        _history(person, settings, snapshots, build_dir)
    return Explanation(query, snapshot.stem, people, suggestions)
