"""The benchmark: the whole pipeline on a demo warehouse, against the physics of zlib.

Each size runs in a fresh process (`python -m exporter.bench SIZE DIR`) so that its
peak memory is its own. The baseline is a plain zlib compression, at the level the
zips use, of the very XML bytes the run produced (read back from its zips; only
the compression is timed). A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from datetime import date
from pathlib import Path
from typing import Any

from exporter.package import Limits

AS_OF = date(2026, 3, 1)


def zlib_seconds(zips: list[Path], level: int) -> float:
    """Seconds zlib takes to deflate the XML inside `zips` at `level`, streaming."""
    spent = 0.0
    for path in zips:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
                with archive.open(name) as member:
                    while block := member.read(8 << 20):
                        started = time.perf_counter()
                        deflate.compress(block)
                        spent += time.perf_counter() - started
                started = time.perf_counter()
                deflate.flush()
                spent += time.perf_counter() - started
    return spent


def measure(patrons: int, folder: Path) -> dict[str, Any]:
    """Run demo warehouse, extract, build and export once; return the figures."""
    from exporter.build import build
    from exporter.datatests import check, run_tests
    from exporter.demo import write_demo_warehouse
    from exporter.export import export
    from exporter.extract import extract
    from exporter.project import load_project
    from exporter.sources import load_sources

    project = load_project()
    warehouse = folder / "warehouse.duckdb"
    started = time.perf_counter()
    # The warehouse stands in for Oracle: made in its own process, so that the peak
    # memory measured below is the pipeline's alone.
    maker = multiprocessing.get_context("spawn").Process(
        target=write_demo_warehouse, args=(warehouse, load_sources(project), patrons, 1)
    )
    maker.start()
    maker.join()
    if maker.exitcode != 0:
        raise RuntimeError(f"the demo warehouse of {patrons} patrons failed")
    demo = time.perf_counter() - started
    extracted = extract(project, warehouse, folder / "snapshots")
    built = build(project, extracted.snapshot, folder / "build" / "b.duckdb", AS_OF)
    started = time.perf_counter()
    check(run_tests(project, built.database))  # the data tests every run does
    tests_seconds = time.perf_counter() - started
    started = time.perf_counter()
    limits = Limits()
    exported = export(project, built, folder / "outbox", "bench", limits)
    export_seconds = time.perf_counter() - started
    zips = [z.path for z in exported.zips]
    baseline = zlib_seconds(zips, limits.compresslevel)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pipeline = extracted.seconds + built.seconds + tests_seconds + export_seconds
    return {
        "patrons": patrons,
        "users_exported": sum(exported.users.values()),
        "seconds": {
            "demo_warehouse": round(demo, 3),
            "extract": round(extracted.seconds, 3),
            "build": round(built.seconds, 3),
            "data_tests": round(tests_seconds, 3),
            "export": round(export_seconds, 3),
            "pipeline": round(pipeline, 3),
            "zlib_baseline": round(baseline, 3),
        },
        "patrons_per_second": round(patrons / pipeline),
        "export_over_zlib": round(export_seconds / baseline, 2),
        "xml_bytes": sum(z.xml_bytes for z in exported.zips),
        "zip_bytes": sum(z.zip_bytes for z in exported.zips),
        "peak_rss_bytes": own,
        "peak_rss_validation_worker_bytes": exported.validation_peak_rss,
        "records_validated_by_lxml": exported.validated_records,
        "record_signatures": exported.signatures,
    }


def run(sizes: list[int], folder: Path | None = None) -> list[dict[str, Any]]:
    """Measure each size in its own process, in a scratch folder removed afterwards."""
    results = []
    with tempfile.TemporaryDirectory(prefix="patronload-bench-", dir=folder) as scratch:
        for n in sizes:
            work = Path(scratch) / str(n)
            work.mkdir()
            proc = subprocess.run(
                [sys.executable, "-m", "exporter.bench", str(n), str(work)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark of {n} patrons failed: {proc.stderr.strip()}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def table(results: list[dict[str, Any]]) -> list[str]:
    """The results as aligned lines, one column per size."""
    mib = 1 << 20
    rows: list[tuple[str, Any]] = [
        ("patrons", lambda r: f"{r['patrons']:,}"),
        ("users exported", lambda r: f"{r['users_exported']:,}"),
        ("extract s", lambda r: f"{r['seconds']['extract']:.2f}"),
        ("build s", lambda r: f"{r['seconds']['build']:.2f}"),
        ("data tests s", lambda r: f"{r['seconds'].get('data_tests', 0):.2f}"),
        ("export s (write+validate)", lambda r: f"{r['seconds']['export']:.2f}"),
        ("records validated by lxml", lambda r: f"{r.get('records_validated_by_lxml', 0):,}"),
        ("pipeline s", lambda r: f"{r['seconds']['pipeline']:.2f}"),
        ("zlib baseline s", lambda r: f"{r['seconds']['zlib_baseline']:.2f}"),
        ("export / zlib", lambda r: f"{r['export_over_zlib']:.2f}x"),
        ("patrons per second", lambda r: f"{r['patrons_per_second']:,}"),
        ("XML MiB", lambda r: f"{r['xml_bytes'] / mib:,.0f}"),
        ("zip MiB", lambda r: f"{r['zip_bytes'] / mib:,.1f}"),
        ("peak RSS MiB", lambda r: f"{r['peak_rss_bytes'] / mib:,.0f}"),
        (
            "validation worker RSS MiB",
            lambda r: f"{r['peak_rss_validation_worker_bytes'] / mib:,.0f}",
        ),
    ]
    return [f"{label:<28}" + "".join(f"{fmt(r):>16}" for r in results) for label, fmt in rows]


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), Path(sys.argv[2]))))
