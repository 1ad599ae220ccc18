"""The run report: data first, then rendered for a terminal or as JSON.

`exported` is always the full count of patrons in the final model per type (the feed
guard compares it); `written` is what this run's files hold, which for an incremental
run (`changes_since`) is only the records new or changed since that snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from exporter.build import BuildResult
from exporter.export import ExportResult

#: Room for a patron type's name in the tables.
TYPE_WIDTH = 16


@dataclass
class RunReport:
    """What a run did: counts, rejections, files and time per stage.

    Attributes:
        exported: Patrons in the final model per type, whether or not all are written.
        written: Records in this run's files per type.
        changes_since: The snapshot an incremental run compared with; "" for a full run.
        changes: Incremental runs: per type, records added, removed, changed and
            unchanged since `changes_since`.
    """

    snapshot: str = ""
    as_of: str = ""
    extracted: dict[str, int] = field(default_factory=dict)
    exported: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    changes_since: str = ""
    changes: dict[str, dict[str, int]] = field(default_factory=dict)
    rejections: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    removed_chars: int = 0
    truncated_values: int = 0
    validation: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    destinations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report_sent_to: str = ""

    def add_build(self, built: BuildResult) -> None:
        self.snapshot = str(built.snapshot)
        self.as_of = built.as_of.isoformat()
        self.extracted = {a.patron_type: a.extracted for a in built.accounting}
        self.exported = {a.patron_type: a.exported for a in built.accounting}
        for (patron_type, reason), n in built.rejections.items():
            self.rejections.setdefault(patron_type, {})[reason] = n
        self.seconds["build"] = built.seconds

    def add_export(self, result: ExportResult) -> None:
        self.files = [
            {
                "zip": str(z.path.resolve()),
                "patron_type": z.patron_type,
                "xml_files": z.members,
                "xml_users": z.member_users,
                "users": z.users,
                "xml_bytes": z.xml_bytes,
                "zip_bytes": z.zip_bytes,
            }
            for z in result.zips
        ]
        self.written = dict(result.users)
        if result.changes is not None:
            self.changes = result.changes
            self.seconds["changes"] = self.seconds.get("changes", 0.0) + result.compare_seconds
        self.removed_chars = result.removed_chars
        self.truncated_values = result.truncated_values
        self.seconds["write"] = result.write_seconds
        self.seconds["validate"] = result.validate_seconds
        self.validation = {
            "records_by_lxml": result.validated_records,
            "signatures": result.signatures,
            "every_record": result.validated_every_record,
        }

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    def warnings(self) -> list[str]:
        found = []
        if self.removed_chars:
            found.append(f"{self.removed_chars} character(s) not allowed in XML 1.0 were removed")
        if self.truncated_values:
            found.append(f"{self.truncated_values} value(s) longer than Alma allows were cut")
        return found + self.notes

    def lines(self) -> list[str]:
        """The report as aligned plain-text lines."""
        out = [f"snapshot {self.snapshot}  as of {self.as_of}"]
        if self.changes_since:
            out.append(
                f"incremental since {self.changes_since}: only records new or changed since "
                "then are written"
            )
        out.append("")
        # an incremental run writes fewer records than its model holds: say which is which
        exported = "in model" if self.changes_since else "exported"
        out.append(f"{'patron type':<{TYPE_WIDTH}}{'extracted':>10}{exported:>10}{'rejected':>10}")
        for t in sorted(self.extracted):
            rejected = sum(self.rejections.get(t, {}).values())
            counts = f"{self.extracted[t]:>10,}{self.exported.get(t, 0):>10,}{rejected:>10,}"
            out.append(f"{t:<{TYPE_WIDTH}}{counts}")
        out += self._changes_lines()
        if self.rejections:
            out += ["", "rejections by reason"]
            tw = max(len(t) for t in self.rejections) + 2
            rw = max(len(r) for per in self.rejections.values() for r in per) + 2
            for t in sorted(self.rejections):
                for reason, n in sorted(self.rejections[t].items()):
                    out.append(f"  {t:<{tw}}{reason:<{rw}}{n:>8,}")
        if self.files:
            out += ["", "files written"]
            for f in self.files:
                out.append(
                    f"  {f['zip']}  {f['users']:,} users, {f['zip_bytes']:,} bytes "
                    f"({f['xml_bytes']:,} XML in {len(f['xml_files'])} file(s))"
                )
        if self.validation:
            out += ["", self._validation_line()]
        local = {f["zip"] for f in self.files}
        if self.destinations and set(self.destinations) != local:
            out += ["", "delivered to"] + [f"  {d}" for d in self.destinations]
        if self.report_sent_to:
            out += ["", f"report sent to {self.report_sent_to}"]
        warnings = self.warnings()
        if warnings:
            out += ["", "warnings"] + [f"  {w}" for w in warnings]
        if self.seconds:
            out += ["", "seconds  " + "  ".join(f"{k} {v:.2f}" for k, v in self.seconds.items())]
        return out

    def _validation_line(self) -> str:
        v = self.validation
        if v["every_record"]:
            return f"schema: all {v['records_by_lxml']:,} records validated by lxml"
        return (
            f"schema: {v['records_by_lxml']:,} records validated by lxml (the first of each "
            f"of {v['signatures']:,} structures, and any value SQL could not prove); every "
            "other value proven by its type in SQL"
        )

    def _changes_lines(self) -> list[str]:
        """Per type: records new, changed, unchanged and removed since the base; written."""
        if not self.changes:
            return []
        kinds = (("new", "added"), ("changed", "changed"), ("unchanged", "unchanged"))
        out = ["", f"changes since {self.changes_since}"]
        out.append(
            f"{'patron type':<{TYPE_WIDTH}}"
            + "".join(f"{label:>10}" for label, _ in kinds)
            + f"{'removed':>10}{'written':>10}"
        )
        for t in sorted(set(self.changes) | set(self.written)):
            n = self.changes.get(t, {})
            out.append(
                f"{t:<{TYPE_WIDTH}}"
                + "".join(f"{n.get(kind, 0):>10,}" for _, kind in kinds)
                + f"{n.get('removed', 0):>10,}{self.written.get(t, 0):>10,}"
            )
        out.append(
            "removed people are not in an incremental file: it only adds and updates "
            "(Alma's SIS sync does not delete by absence)"
        )
        return out
