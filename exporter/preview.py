"""Preview: the XML records that would be sent, straight from a build of the models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.duck import connect, quote
from exporter.explain import matching_keys
from exporter.export import GROUP_COLUMN, KEY_COLUMN, record_column
from exporter.findzip import pretty
from exporter.project import Project
from exporter.xmlwrite import Sanitizer, reference_xml


@dataclass(frozen=True)
class PreviewRecord:
    patron_type: str
    record_key: str
    xml: str


def preview(
    project: Project,
    database: Path,
    queries: list[str],
    patron_type: str | None,
    limit: int,
) -> list[PreviewRecord]:
    """Up to `limit` records (of one type, or matching the queries), as they would be sent."""
    settings = project.settings()
    final = quote(settings.final_model)
    with connect(database, read_only=True) as con:
        column, _ = record_column(con, settings.final_model)
        keys: list[str] | None = None
        if queries:
            keys = sorted({k for q in queries for k in matching_keys(con, settings, q)})
        rows = con.execute(
            f"SELECT {GROUP_COLUMN}, {KEY_COLUMN}, {quote(column)} FROM {final} "
            f"WHERE (CAST(? AS VARCHAR) IS NULL OR {GROUP_COLUMN} = ?) "
            f"AND (CAST(? AS VARCHAR[]) IS NULL OR list_contains(?, {KEY_COLUMN})) "
            f"ORDER BY {GROUP_COLUMN}, {KEY_COLUMN} LIMIT {int(limit)}",
            [patron_type, patron_type, keys, keys],
        ).fetchall()
    sanitizer = Sanitizer(settings.max_value_length)
    return [
        PreviewRecord(t, k, pretty(reference_xml(column, sanitizer.sanitize(record))))
        for t, k, record in rows
    ]
