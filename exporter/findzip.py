"""Find the records of a produced zip that hold a piece of text, streaming.

A zip of a million records holds gigabytes of XML, so nothing here parses every
record. Each XML member is read `BLOCK_SIZE` bytes at a time; the buffer is cut
just before its last record start tag and the rest is carried into the next
buffer, so every record is searched whole and a match across a block boundary
is found like any other. Memory stays at a few blocks (one small block is also
the fastest: it stays in the CPU cache between the passes over it). Records are
numbered only when a member holds a match, by a second pass that counts record
start tags up to the last match: counting costs as much as searching.

The record element is not named here: it is the first element under the root,
read from the head of each member. Records are found by their tag, so one record
per line, text with line breaks and indented files are all read alike.

What matches: a record matches when the query, lower-cased, occurs in the
lower-cased text of one of its elements (text or tail) or of one of its
attribute values, as lxml reads them: entities resolved, never in a tag or
attribute name. Two passes get there fast:

1. one regular expression over the ASCII-lower-cased buffer finds the query's
   bytes, with each of ``& < > " '`` (and tab, CR, LF) in any of its written
   forms (``&amp;``, ``&#38;``, ``&#x26;``...) and each other letter in its
   lower, upper and title case. A hit must be followed by text up to the next
   ``<`` or by the rest of a quoted attribute value, which passes over hits in
   tag names without leaving C;
2. lxml parses only the record around a hit and applies the rule above.

Known gaps, in XML that neither this project's writer nor lxml produces: other
characters written as character references, a raw ``>`` in text after the hit,
case pairs of different lengths (``İ``), a record element nested in itself, and
record tags inside comments or CDATA sections.
"""

from __future__ import annotations

import logging
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

from lxml import etree

from exporter.errors import UsageError, ValidationError
from exporter.zips import READ_ERRORS, describe_read_error, xml_members

log = logging.getLogger(__name__)

#: Bytes of XML read and searched at a time.
BLOCK_SIZE = 1 << 20
#: A record still open after this many bytes means the member is not a record file.
MAX_RECORD_BYTES = 64 << 20
#: The root and the first record must start within this many bytes of a member.
HEAD_BYTES = 64 << 10

# Prolog, root start tag, and the name of the first element under the root.
_HEAD = re.compile(
    rb"""(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>)*
    (?P<root_tag><(?P<root>[^\s/>]+)(?:[^>"']|"[^"]*"|'[^']*')*>)
    (?:\s+|<\?.*?\?>|<!--.*?-->)*
    (?:<(?P<record>[^\s/>!?]+)[\s/>])?""",
    re.DOTALL | re.VERBOSE,
)
# After a hit: text up to the next tag, or the rest of a quoted attribute value.
_IN_VALUE = rb"""(?=[^<>]*<|[^"<]*"(?:\s|/?>)|[^'<]*'(?:\s|/?>))"""
# How the characters XML escapes are written, besides character references.
_ESCAPED = {
    "&": (b"&amp;",),
    "<": (b"&lt;",),
    ">": (b">", b"&gt;"),
    '"': (b'"', b"&quot;"),
    "'": (b"'", b"&apos;"),
    "\t": (b"\t",),
    "\n": (b"\n",),
    "\r": (b"\r",),
}
_REFERENCE = re.compile(rb"&#?[0-9a-zA-Z]+;")


@dataclass(frozen=True)
class Match:
    """One record that holds the query."""

    zip_path: Path
    member: str  # XML file inside the zip
    record: int  # 1-based position of the record in that member
    xml: str  # the record's XML text exactly as in the file


def find_in_zip(
    path: Path, query: str, limit: int = 50, *, block_size: int = BLOCK_SIZE
) -> list[Match]:
    """Return the first `limit` records of the zip's XML files that hold `query`.

    Members are searched in the zip's order, records in file order. What counts as
    holding the query, and the known gaps, are in the module docstring.

    Raises:
        UsageError: `query` is empty, or `limit` or `block_size` is below 1.
        ValidationError: the file is missing, is not a zip or holds no XML file; or
            an XML file cannot be read, has no root element or has an unclosed record.
    """
    if not query:
        raise UsageError("the search text is empty")
    if limit < 1 or block_size < 1:
        raise UsageError(f"limit and block_size must be at least 1, not {limit}, {block_size}")
    path = Path(path)
    wanted = _Query.of(query)
    started = time.perf_counter()
    with _open_zip(path) as archive:
        members = xml_members(archive)
        if not members:
            raise ValidationError(f"{path}: cannot search: the zip holds no XML file (*.xml)")
        matches: list[Match] = []
        for member in members:
            matches += _search_member(
                archive, path, member, wanted, limit - len(matches), block_size
            )
            if len(matches) == limit:
                break
    seconds = time.perf_counter() - started
    log.info("searched %s for %r: %d match(es) in %.1fs", path, query, len(matches), seconds)
    return matches


def pretty(xml: str) -> str:
    """Return one record re-indented by two spaces, for reading on a terminal.

    Text values are kept as they are. A record that does not parse on its own (a
    namespace prefix declared on the root, say) is returned unchanged.
    """
    try:
        record = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except (etree.XMLSyntaxError, ValueError):
        return xml
    etree.indent(record, space="  ")
    return str(etree.tostring(record, encoding="unicode"))


# ---------------------------------------------------------------- the query


@dataclass(frozen=True)
class _Query:
    """The text looked for, and the expression that finds its candidates in raw XML."""

    text: str  # lower-cased
    needle: re.Pattern[bytes]
    fold: bool  # whether the XML must be lower-cased first (the query has letters)

    @classmethod
    def of(cls, query: str) -> _Query:
        needle = re.compile(b"".join(_char_pattern(char) for char in query) + _IN_VALUE)
        fold = any(char.lower() != char.upper() for char in query)
        return cls(query.lower(), needle, fold)


def _char_pattern(char: str) -> bytes:
    """The regular expression for one query character in lower-cased XML."""
    if char in _ESCAPED:
        forms = [re.escape(form) for form in _ESCAPED[char]]
        forms += [b"&#0*%d;" % ord(char), b"&#x0*(?i:%x);" % ord(char)]
    else:
        cases = {char, char.lower(), char.upper(), char.title()}
        forms = sorted({re.escape(case.encode().lower()) for case in cases})
    return forms[0] if len(forms) == 1 else b"(?:" + b"|".join(forms) + b")"


def _tears_reference(xml: bytes, start: int, stop: int) -> bool:
    """Whether a hit starts or ends inside a reference such as ``&amp;``: text it lacks."""
    for ref in _REFERENCE.finditer(xml, max(0, start - 16), stop + 16):
        if ref.start() < start < ref.end() or ref.start() < stop < ref.end():
            return True
    return False


# ---------------------------------------------------------------- zips and members


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ValidationError(f"{path}: cannot search: file not found") from None
    except READ_ERRORS as exc:
        raise ValidationError(
            f"{path}: cannot search: not a readable zip file ({describe_read_error(exc)})"
        ) from None


def _open_member(archive: zipfile.ZipFile, member: str, where: str) -> IO[bytes]:
    try:
        return archive.open(member)
    except READ_ERRORS as exc:
        raise ValidationError(f"{where}: {describe_read_error(exc)}") from None


def _search_member(
    archive: zipfile.ZipFile,
    path: Path,
    member: str,
    query: _Query,
    limit: int,
    block_size: int,
) -> list[Match]:
    """Return the first `limit` matching records of one member, numbered."""
    where = f"{path}: cannot search {member}"
    with _open_member(archive, member, where) as stream:
        buf = _fill(stream, b"", HEAD_BYTES, where)
        head = _HEAD.match(buf)
        if head is None:
            raise ValidationError(f"{where}: no XML root element at its start (UTF-8 expected)")
        if head["record"] is None or head["root_tag"].endswith(b"/>"):
            log.debug("%s:%s holds no records", path, member)
            return []
        records = _Records(path, member, head, query)
        found = list(islice(records.search(stream, buf, block_size), limit))
    if not found:
        return []
    with _open_member(archive, member, where) as stream:
        numbers = records.number(stream, [start for start, _ in found], block_size)
    return [Match(path, member, n, xml) for n, (_, xml) in zip(numbers, found, strict=True)]


def _fill(stream: IO[bytes], carry: bytes, size: int, where: str) -> bytes:
    """`carry` and then up to `size` more bytes of `stream`; fewer only at its end."""
    try:
        return carry + stream.read(size)
    except READ_ERRORS as exc:
        raise ValidationError(f"{where}: {describe_read_error(exc)}") from None


class _Records:
    """The records of one member, found by the tag its head names."""

    def __init__(self, path: Path, member: str, head: re.Match[bytes], query: _Query) -> None:
        name = head["record"]
        tag = re.escape(name)
        self.where = f"{path}: cannot search {member}"  # starts an error message
        self.source = f"{path}:{member}"
        self.query = query
        self.name = name.decode(errors="replace")
        self.opening = b"<" + name
        self.starts = re.compile(b"<" + tag + rb"[\s/>]")
        self.start_tag = re.compile(b"<" + tag + rb"""(?:[^>"']|"[^"]*"|'[^']*')*>""")
        self.end_tag = re.compile(b"</" + tag + rb"\s*>")
        # A record is checked inside a copy of the root, so the root's namespaces hold.
        self.root_start: bytes = head["root_tag"]
        self.root_end = b"</" + head["root"] + b">"
        self.parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)

    def search(self, stream: IO[bytes], buf: bytes, block_size: int) -> Iterator[tuple[int, str]]:
        """Yield (offset, xml) of each matching record; `buf` is what was read already."""
        for offset, chunk, end in self._chunks(stream, buf, block_size):
            for start, xml in self._matches(chunk, end, offset):
                yield offset + start, xml

    def number(self, stream: IO[bytes], offsets: list[int], block_size: int) -> list[int]:
        """The 1-based numbers of the records that start at `offsets` (ascending)."""
        numbers: list[int] = []
        before = 0  # records that start before chunk[counted]
        for offset, chunk, end in self._chunks(stream, b"", block_size):
            counted = 0
            for at in (o - offset for o in offsets[len(numbers) :] if o < offset + end):
                before += len(self.starts.findall(chunk, counted, at))
                counted = at
                numbers.append(before + 1)
            if len(numbers) == len(offsets):
                break
            before += len(self.starts.findall(chunk, counted, end))
        return numbers

    def _chunks(
        self, stream: IO[bytes], buf: bytes, block_size: int
    ) -> Iterator[tuple[int, bytes, int]]:
        """Yield (offset, chunk, end): ``chunk[:end]`` is whole records, the prolog or the end.

        The rest of a chunk, from its last record start tag, begins the next chunk.
        """
        offset = 0
        while True:
            carried = len(buf)
            buf = _fill(stream, buf, block_size, self.where)
            at_end = len(buf) < carried + block_size
            end = len(buf) if at_end else max(self._last_start(buf, len(buf)), 0)
            if end == 0 and not at_end:  # one record so far: read on
                if len(buf) > MAX_RECORD_BYTES:
                    raise ValidationError(
                        f"{self.where}: a record is over {MAX_RECORD_BYTES >> 20} MiB"
                    )
                continue
            yield offset, buf, end
            if at_end:
                return
            offset += end
            buf = buf[end:]

    def _last_start(self, buf: bytes, before: int) -> int:
        """Where the last record starting before `before` starts; -1 for none."""
        pos = before
        while (pos := buf.rfind(self.opening, 0, pos)) >= 0:
            if self.starts.match(buf, pos):
                return pos
        return -1

    def _matches(self, buf: bytes, end: int, offset: int) -> Iterator[tuple[int, str]]:
        """Yield (start, xml) of the matching records in ``buf[:end]``."""
        xml = buf.lower() if self.query.fold else buf
        pos = 0
        while hit := self.query.needle.search(xml, pos, end):
            pos = hit.start() + 1
            if _tears_reference(xml, hit.start(), hit.end()):
                continue
            start = self._last_start(buf, hit.start())
            if start < 0:  # in the prolog or the root's start tag
                continue
            stop = self._end(buf, start, end, offset)
            if hit.start() >= stop:  # between records
                continue
            pos = stop
            if self._holds_query(buf[start:stop], offset + start):
                yield start, buf[start:stop].decode(errors="replace")

    def _end(self, buf: bytes, start: int, end: int, offset: int) -> int:
        tag = self.start_tag.match(buf, start, end)
        if tag and tag.group().endswith(b"/>"):
            return tag.end()
        close = self.end_tag.search(buf, tag.end(), end) if tag else None
        if close is None:
            raise ValidationError(
                f"{self.where}: the record at byte {offset + start} has no end tag </{self.name}>"
            )
        return close.end()

    def _holds_query(self, record: bytes, at: int) -> bool:
        try:
            root = etree.fromstring(self.root_start + record + self.root_end, self.parser)
        except etree.XMLSyntaxError as exc:
            log.warning("%s: the record at byte %d is not well-formed (%s)", self.source, at, exc)
            return True
        return any(self.query.text in text.lower() for text in _texts(root[0]))


def _texts(record: Any) -> Iterator[str]:
    """The text, tails and attribute values inside one parsed record."""
    for node in record.iter():
        if node is not record and node.tail:
            yield node.tail
        if isinstance(node.tag, str):
            if node.text:
                yield node.text
            yield from node.attrib.values()
