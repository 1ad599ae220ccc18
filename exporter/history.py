"""The run history: one JSON line per finished export, for `history` and `explain`."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.errors import ExportError, UsageError
from exporter.report import RunReport

#: Where runs are recorded unless PATRONLOAD_HISTORY or --history says otherwise.
DEFAULT_HISTORY = Path("history/runs.jsonl")


def record_run(
    path: Path,
    report: RunReport,
    build: Path,
    target: str,
    *,
    delivered: bool = True,
    keys: list[str] | None = None,
    workspace: str = "dev",
    project: str = "",
) -> dict[str, Any]:
    """Append one run to the history, written and flushed as a single line.

    `delivered` is false for a dry run: the guard compares with delivered runs only.
    `keys` are where the files went (S3 URLs or local paths). An incremental run has
    `changes_since` (the snapshot it compared with; None for a full run), `changes` per
    type, and `written` per type; its `exported` still holds the full counts per type,
    so the guard compares like with like whichever kind of run came last.
    """
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "snapshot": report.snapshot,
        "build": str(build),
        "as_of": report.as_of,
        "exported": report.exported,
        "written": report.written,
        "changes_since": report.changes_since or None,
        "changes": report.changes,
        "extracted": report.extracted,
        "rejections": report.rejections,
        "files": report.files,
        "target": target,
        "delivered": delivered,
        "keys": keys or [],
        "project": project,
        "workspace": workspace,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise ExportError(
            f"the zips went to {target}, but the run could not be recorded in "
            f"{path}: {exc.strerror}"
        ) from None
    return entry


def read_runs(path: Path) -> list[dict[str, Any]]:
    """Every recorded run, oldest first; a damaged line is an error naming its number."""
    if not path.is_file():
        return []
    runs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not a run record: {exc.msg}") from None
    return runs


def history_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One line per run: when, counts per type, rejections, incremental or not, where."""
    lines = []
    for run in runs:
        counts = "  ".join(f"{t} {n:,}" for t, n in sorted(run["exported"].items()))
        rejected = "; ".join(
            f"{t}: " + ", ".join(f"{reason} {n:,}" for reason, n in sorted(per_type.items()))
            for t, per_type in sorted(run["rejections"].items())
        )
        status = "delivered" if run.get("delivered") else "not delivered"
        kind = ""
        if run.get("changes_since"):
            written = sum(f["users"] for f in run["files"])
            kind = f"  changes since {Path(run['changes_since']).name}: {written:,} written"
        lines.append(
            f"{run['time']}  as of {run['as_of']}  {counts}  rejected: {rejected or 'none'}"
            f"{kind}  {status} to {run['target']}"
        )
    return lines
