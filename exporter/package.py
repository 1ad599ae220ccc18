"""Package stage: stream XML records into deflated zips within Alma's limits.

Each patron type gets `<type>_<stamp>.zip` holding `<type>_<stamp>.xml`. When a
type's XML would pass the configured size it continues in `<type>_<stamp>_2.xml`,
and so on; a zip holds at most 50 XML files and stays under 4 GB (further zips are
`<type>_<stamp>_2.zip`); a run writes at most 20 zips. Members are deflated by
zlib-ng, about twice as fast as zlib. Every zip is written under a
temporary name; `publish` renames them all once everything is complete.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from pathlib import Path

from zlib_ng import zlib_ng

from exporter.errors import ExportError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Alma's limits for one import, and our split size."""

    max_xml_bytes: int = 1 << 30
    max_xml_per_zip: int = 50
    max_zip_bytes: int = 4 * 10**9
    max_zips: int = 20
    compresslevel: int = 6


@dataclass(frozen=True)
class Chunk:
    """Consecutive records as UTF-8 bytes; record i is data[ends[i-1]:ends[i]]."""

    data: bytes | memoryview
    ends: Sequence[int]

    @property
    def count(self) -> int:
        return len(self.ends)

    def records(self) -> Iterator[bytes | memoryview]:
        start = 0
        view = memoryview(self.data)
        for end in self.ends:
            yield view[start:end]
            start = end

    @classmethod
    def of(cls, records: Iterable[str]) -> Chunk:
        """A chunk of records given as text (each ending with a newline)."""
        encoded = [r.encode() for r in records]
        return cls(b"".join(encoded), list(accumulate(len(e) for e in encoded)))


@dataclass
class ZipFile:
    """A finished (or, before `publish`, temporary) zip and what it holds."""

    path: Path
    patron_type: str = ""
    members: list[str] = field(default_factory=list)
    member_users: list[int] = field(default_factory=list)
    users: int = 0
    xml_bytes: int = 0
    zip_bytes: int = 0

    @property
    def temporary(self) -> Path:
        return self.path.with_name(f".{self.path.name}.tmp")


def _use_fast_deflate(member: object, level: int) -> None:
    """Deflate a zip member with zlib-ng at `level`: the same format as zlib, about
    twice as fast (its output is a few percent larger at the same level).

    zipfile has no hook for its compressor, so the one it just made, before any byte
    went through it, is replaced. zipfile computes the CRC and sizes itself.
    """
    if getattr(member, "_compressor", None) is None:
        raise ExportError("this Python's zipfile has no deflate compressor to replace")
    member._compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15)  # type: ignore[attr-defined]


def _zip_overhead(members: int) -> int:
    # Local and central headers with zip64 extras, generously: names are short.
    return 512 * (members + 1)


class PackageWriter:
    """Writes the zips of one run; counts zips across patron types against Alma's limit."""

    def __init__(self, outbox: Path, stamp: str, as_of: date, root: str, limits: Limits) -> None:
        self.outbox = outbox
        self.stamp = stamp
        self.root = root
        self.limits = limits
        self.date_time = (as_of.year, as_of.month, as_of.day, 0, 0, 0)
        self.zips: list[ZipFile] = []

    def _name(self, patron_type: str, n: int, suffix: str) -> str:
        part = "" if n == 1 else f"_{n}"
        return f"{patron_type}_{self.stamp}{part}.{suffix}"

    def write_type(self, patron_type: str, chunks: Iterable[Chunk]) -> list[ZipFile]:
        """Write every record of one patron type, given as chunks of XML lines."""
        header = f'<?xml version="1.0" encoding="UTF-8"?>\n<{self.root}>\n'.encode()
        footer = f"</{self.root}>\n".encode()
        limit = self.limits.max_xml_bytes
        if len(header) + len(footer) >= limit:
            raise ExportError(
                f"the XML size limit {limit} bytes is too small for even an empty file"
            )
        made: list[ZipFile] = []
        xml_count = 0
        archive: zipfile.ZipFile | None = None
        member = None
        size = 0
        current: ZipFile | None = None

        def start_member() -> None:
            nonlocal archive, member, size, current, xml_count
            needs_new_zip = (
                current is None
                or len(current.members) >= self.limits.max_xml_per_zip
                or os.path.getsize(current.temporary)
                + limit
                + limit // 1000
                + _zip_overhead(len(current.members) + 1)
                > self.limits.max_zip_bytes
            )
            if needs_new_zip:
                if archive is not None:
                    archive.close()
                if len(self.zips) >= self.limits.max_zips:
                    raise ExportError(
                        f"more than {self.limits.max_zips} zips would be needed; Alma loads "
                        f"at most {self.limits.max_zips} per import (raise the XML size limit)"
                    )
                current = ZipFile(
                    self.outbox / self._name(patron_type, len(made) + 1, "zip"), patron_type
                )
                self.zips.append(current)
                made.append(current)
                archive = zipfile.ZipFile(
                    current.temporary,
                    "w",
                    zipfile.ZIP_DEFLATED,
                    compresslevel=self.limits.compresslevel,
                )
            assert archive is not None and current is not None
            xml_count += 1
            info = zipfile.ZipInfo(self._name(patron_type, xml_count, "xml"), self.date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            member = archive.open(info, "w", force_zip64=True)
            _use_fast_deflate(member, self.limits.compresslevel)
            member.write(header)
            size = len(header)
            current.members.append(info.filename)
            current.member_users.append(0)

        def end_member() -> None:
            assert member is not None and current is not None
            member.write(footer)
            member.close()
            current.xml_bytes += size + len(footer)

        try:
            start_member()
            for chunk in chunks:
                if size + len(chunk.data) + len(footer) <= limit:
                    assert member is not None and current is not None
                    member.write(chunk.data)
                    size += len(chunk.data)
                    current.users += chunk.count
                    current.member_users[-1] += chunk.count
                    continue
                for record in chunk.records():  # it crosses the limit: place record by record
                    if len(header) + len(record) + len(footer) > limit:
                        raise ExportError(
                            f"one {patron_type} record is {len(record)} bytes, more than the XML "
                            f"size limit of {limit} bytes"
                        )
                    if size + len(record) + len(footer) > limit:
                        end_member()
                        start_member()
                    assert member is not None and current is not None
                    member.write(record)
                    size += len(record)
                    current.users += 1
                    current.member_users[-1] += 1
            end_member()
        finally:
            if member is not None and not member.closed:
                member.close()
            if archive is not None:
                archive.close()
        for z in made:
            os.chmod(z.temporary, 0o600)  # personal data: owner only, like snapshots
            z.zip_bytes = os.path.getsize(z.temporary)
            log.info("wrote %s: %s users in %s", z.path.name, z.users, ", ".join(z.members))
        return made

    def publish(self) -> None:
        """Rename every temporary zip to its final name, all or nothing."""
        done: list[ZipFile] = []
        try:
            for z in self.zips:
                os.replace(z.temporary, z.path)
                done.append(z)
        except OSError as exc:
            for z in done:
                z.path.unlink(missing_ok=True)
            self.discard()
            raise ExportError(f"cannot publish {z.path}: {exc.strerror}") from None

    def discard(self) -> None:
        """Remove every temporary zip (after a failure)."""
        for z in self.zips:
            z.temporary.unlink(missing_ok=True)
