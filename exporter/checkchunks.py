"""Schema validation of records while they are written, in worker processes.

Export hands chunks of finished records to a pool of processes that parse them
inside the root element and validate the tree against the project's XSD. A problem
names the patron type and the record's position in its file.

Which records: all of them with `--validate-every-record`; otherwise those that
`Sampler` picks: the first of each signature and every record whose values the
SQL checks of exporter.xsdsql could not prove valid.
"""

from __future__ import annotations

import bisect
import multiprocessing
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import accumulate
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from exporter.errors import ValidationError
from exporter.validate import load_schema

#: Records validated per task: small enough that a worker's tree stays small.
RECORDS_PER_TASK = 2000
_MAX_PROBLEMS = 5

_schema: Any = None


class Sampler:
    """Picks the records lxml must see, from Arrow batches carrying exporter.xsdsql's
    columns: `proven`, `removed` (characters the writer removed) and the signature
    words. Signatures are remembered across batches; each patron type has its own
    sampler, because each chooses its own signature bits."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.seen: set[tuple[int, ...]] = set()

    def select(self, batch: pa.RecordBatch) -> list[int]:
        """Ascending positions in `batch` of the records to validate."""
        clean = pc.and_(batch.column("proven"), pc.equal(batch.column("removed"), 0))
        picked = set(pc.indices_nonzero(pc.invert(clean)).to_pylist())
        table = pa.table(
            {w: batch.column(w) for w in self.words}
            | {"i": pa.array(range(batch.num_rows), pa.int64())}
        )
        firsts = table.group_by(self.words, use_threads=False).aggregate([("i", "min")])
        for row in firsts.to_pylist():
            signature = tuple(row[w] for w in self.words)
            if signature not in self.seen:
                self.seen.add(signature)
                picked.add(row["i_min"])
        return sorted(picked)


def _start_worker(xsd: str) -> None:
    global _schema
    _schema = etree.XMLSchema(etree.parse(xsd))


def _peak_rss() -> int:
    """This process's own high-water resident memory, in bytes (Linux)."""
    time.sleep(0.05)  # long enough that each worker takes one of these tasks
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def check_fragment(root: str, data: bytes) -> list[tuple[int, str]]:
    """Problems of records `data` inside `<root>`: (line within data, message)."""
    document = b"<" + root.encode() + b">\n" + data + b"</" + root.encode() + b">"
    parser = etree.XMLParser(huge_tree=True, resolve_entities=False)
    try:
        tree = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        return [(max((exc.lineno or 2) - 1, 1), str(exc.msg))]
    if _schema.validate(tree):
        return []
    return [(max(e.line - 1, 1), e.message) for e in list(_schema.error_log)[:_MAX_PROBLEMS]]


def _record_of_line(data: bytes, ends: list[int], line: int) -> int:
    """0-based record holding `line` (1-based) of `data`."""
    newline = -1
    for _ in range(line - 1):
        newline = data.find(b"\n", newline + 1)
        if newline < 0:
            break
    start = newline + 1  # where the line begins
    return min(bisect.bisect_right(ends, start), len(ends) - 1)


class ChunkChecker:
    """Validates chunks of one export in a process pool; `finish` raises on problems."""

    def __init__(self, xsd: Path, root: str, workers: int = 2, in_flight: int = 4) -> None:
        load_schema(xsd)  # a broken schema is one clear error here, not a dead worker later
        self.root = root
        self.workers = workers
        self.peak_rss = 0
        self.in_flight = in_flight
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),  # never fork DuckDB's threads
            initializer=_start_worker,
            initargs=(str(xsd),),
        )
        self.pending: deque[
            tuple[Future[list[tuple[int, str]]], str, Sequence[int], bytes, list[int]]
        ] = deque()
        self.validated = 0  # records handed to lxml
        self.problems: list[str] = []
        self.records: dict[str, int] = {}

    def submit(
        self,
        patron_type: str,
        data: bytes | memoryview,
        ends: Sequence[int],
        selected: Sequence[int] | None = None,
    ) -> None:
        """Queue records (`ends` are their end offsets in `data`) of one patron type:
        all of them, or only those at the `selected` positions (ascending)."""
        first = self.records.get(patron_type, 0)
        self.records[patron_type] = first + len(ends)
        if selected is None:
            start = 0
            for i in range(0, len(ends), RECORDS_PER_TASK):
                part_ends = ends[i : i + RECORDS_PER_TASK]
                piece = bytes(data[start : part_ends[-1]])
                numbers = range(first + i, first + i + len(part_ends))
                self._send(patron_type, piece, [e - start for e in part_ends], numbers)
                start = part_ends[-1]
            return
        view = memoryview(data)
        for i in range(0, len(selected), RECORDS_PER_TASK):
            part = selected[i : i + RECORDS_PER_TASK]
            records = [view[ends[j - 1] if j else 0 : ends[j]] for j in part]
            self._send(
                patron_type,
                b"".join(records),
                list(accumulate(len(r) for r in records)),
                [first + j for j in part],
            )

    def _send(
        self, patron_type: str, piece: bytes, ends: list[int], numbers: Sequence[int]
    ) -> None:
        """Validate records `piece` (ending at `ends`), numbered 0-based in their type."""
        while len(self.pending) >= self.in_flight:
            self._collect_oldest()
        future = self.pool.submit(check_fragment, self.root, piece)
        self.pending.append((future, patron_type, numbers, piece, ends))
        self.validated += len(ends)

    def _collect_oldest(self) -> None:
        future, patron_type, numbers, piece, ends = self.pending.popleft()
        try:
            problems = future.result()
        except BrokenProcessPool as exc:
            raise ValidationError(f"the validation workers stopped: {exc}") from None
        for line, message in problems:
            if len(self.problems) < 20:
                record = numbers[_record_of_line(piece, ends, line)] + 1
                self.problems.append(f"{patron_type} record {record}: {message}")

    def finish(self) -> None:
        """Wait for every chunk; raise ValidationError naming the first problems."""
        try:
            while self.pending:
                self._collect_oldest()
            peaks = [self.pool.submit(_peak_rss) for _ in range(self.workers)]
            self.peak_rss = max(f.result() for f in peaks)
        finally:
            self.close()
        if self.problems:
            shown = "; ".join(self.problems[:3])
            raise ValidationError(
                f"{len(self.problems)} problem(s) in the produced XML, nothing published: {shown}"
            )

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
