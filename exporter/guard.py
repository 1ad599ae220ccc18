"""The guard against bad feeds: no delivery when a patron type is empty or shrank too much.

A broken warehouse job upstream typically shows as a table that is empty or half
loaded. Alma would then expire everyone missing, so such a feed is refused unless
the operator says `--force`; the comparison is with the last delivered run.
"""

from __future__ import annotations

from typing import Any


def last_delivered(runs: list[dict[str, Any]], project: str = "") -> dict[str, Any] | None:
    """The newest delivered run of this project (dry runs and other projects do not count).

    Runs recorded before projects were recorded count for any project.
    """
    for run in reversed(runs):
        if run.get("delivered") and run.get("project", project) in ("", project):
            return dict(run)
    return None


def feed_problems(
    exported: dict[str, int],
    previous: dict[str, Any] | None,
    max_drop: float,
    ignore: tuple[str, ...] = (),
) -> list[str]:
    """Why this feed must not be delivered; empty when it may be.

    Types in `ignore` are counted but never delivered, so they are not judged.
    """
    exported = {t: n for t, n in exported.items() if t not in ignore}
    earlier: dict[str, int] = previous["exported"] if previous else {}
    before = {t: n for t, n in earlier.items() if t not in ignore}
    problems = []
    for patron_type in sorted(set(exported) | set(before)):
        now, then = exported.get(patron_type, 0), before.get(patron_type, 0)
        if now == 0:
            since = f" (the run of {previous['time']} had {then:,})" if previous and then else ""
            problems.append(f"{patron_type}: no patrons to export{since}")
        elif then and (then - now) / then > max_drop:
            change = (now - then) / then
            when = previous["time"] if previous else "?"
            problems.append(
                f"{patron_type}: {then:,} -> {now:,} patrons ({change:+.1%}) since the run of "
                f"{when}, more than the {max_drop:.0%} drop allowed"
            )
    return problems
