"""Check produced zips against the project's XML Schema, streaming.

Every ``*.xml`` member of a zip is read straight from the archive and parsed
with ``lxml.etree.iterparse`` and the schema attached, so a multi-gigabyte file
is checked with flat memory: each finished record (a child of the root, a
``user``) is cleared together with the records before it.

libxml2's streaming validation says *whether* a file is valid, but reports its
errors without line numbers, and a syntax error that follows a schema error is
swallowed. So a member is read in two passes:

1. the verdict: ``iterparse(..., schema=schema)``. A valid member is read once.
2. only for a member that failed, the diagnosis: ``iterparse`` without the
   schema (syntax errors come with their exact line), validating each record
   on its own, wrapped in a copy of the root, against the same schema. Records
   the first pass already saw complete and error-free are skipped.

Errors are returned as `Problem` values, never raised; at most
`MAX_PROBLEMS_PER_MEMBER` are reported per member. Line numbers are libxml2's:
exact for files of up to 65,535 lines, and possibly one line late beyond that
(libxml2 stores element lines in 16 bits); each schema problem therefore also
names its record by tag and position (``user #12``). Nothing here knows an Alma
element: a record is whatever element sits directly under the root.
"""

from __future__ import annotations

import copy
import logging
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from exporter.errors import ValidationError
from exporter.zips import READ_ERRORS, describe_read_error, xml_members

log = logging.getLogger(__name__)

#: A member is no longer read after this many problems.
MAX_PROBLEMS_PER_MEMBER = 20


# Alma wants UTF-8, declared in the XML prolog.
_PROLOG = re.compile(
    rb"""\A(?:\xef\xbb\xbf)?<\?xml\s[^>]*?encoding\s*=\s*["']utf-8["']""", re.IGNORECASE
)
# lxml appends the location to a syntax error's message, or wraps it in a bytes repr.
_LOCATION_SUFFIX = re.compile(r",\s*line \d+, column \d+\s*\Z")
_BYTES_REPR = re.compile(r"\Aline \d+: b?(['\"])(?P<text>.*)\1\Z", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One reason a zip would not load: where it is, and what is wrong."""

    zip_path: Path
    member: str
    line: int | None
    message: str

    def __str__(self) -> str:
        """``<zip>:<member>:<line>: <message>``; an unknown part is left out."""
        where = str(self.zip_path)
        if self.member:
            where += f":{self.member}"
            if self.line is not None:
                where += f":{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class _Failure:
    """What the streaming pass learnt about an invalid member."""

    valid_prefix: int  # records read complete and without error before the first error
    messages: tuple[str, ...]  # libxml2's messages, without line numbers


# ---------------------------------------------------------------- public API


def load_schema(xsd: Path) -> Any:
    """Return the compiled XML Schema at `xsd`, cached by path and modification time.

    Raises `ValidationError` when the schema cannot be read or compiled: that is a
    broken project, not an invalid file.
    """
    try:
        stat = xsd.stat()
    except OSError as exc:
        raise ValidationError(f"XML Schema {xsd} cannot be read: {exc.strerror}") from None
    return _compile_schema(xsd.resolve(), stat.st_mtime_ns, stat.st_size)


def validate_zip(path: Path, xsd: Path) -> Iterator[Problem]:
    """Yield the problems of one zip; nothing when every XML member is valid.

    The schema is loaded here (a broken schema raises `ValidationError` at once);
    the zip is read while the result is iterated.
    """
    schema = load_schema(xsd)
    return _check_zip(Path(path), schema)


def validate_zips(paths: Iterable[Path], xsd: Path) -> list[Problem]:
    """Return the problems of every zip in `paths`, in order; empty when all are valid."""
    schema = load_schema(xsd)
    problems: list[Problem] = []
    for path in paths:
        problems.extend(_check_zip(Path(path), schema))
    return problems


def count_users(path: Path) -> int:
    """Return the number of user records (children of the root) in a zip's XML files.

    Streams like the validation. Raises `ValidationError` when the zip cannot be
    read or an XML member is not well-formed.
    """
    path = Path(path)
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for member in xml_members(archive):
                with archive.open(member) as stream:
                    records = etree.iterparse(stream, events=("end",), huge_tree=True)
                    for _, element in records:
                        parent = element.getparent()
                        if parent is not None and parent.getparent() is None:
                            total += 1
                            _release(element, parent)
    except etree.XMLSyntaxError as exc:
        raise ValidationError(
            f"{path}: cannot count users, not well-formed XML: {_syntax_message(exc)}"
        ) from None
    except READ_ERRORS as exc:
        raise ValidationError(f"{path}: cannot count users: {describe_read_error(exc)}") from None
    log.debug("%s holds %d user records", path, total)
    return total


# ---------------------------------------------------------------- zips and members


@lru_cache(maxsize=8)
def _compile_schema(path: Path, mtime_ns: int, size: int) -> Any:
    del mtime_ns, size  # only part of the cache key
    try:
        schema = etree.XMLSchema(etree.parse(str(path)))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as exc:
        raise ValidationError(f"{path} is not a usable XML Schema: {exc}") from None
    log.debug("loaded XML Schema %s", path)
    return schema


def _check_zip(path: Path, schema: Any) -> Iterator[Problem]:
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        yield Problem(path, "", None, "file not found")
        return
    except READ_ERRORS as exc:
        yield Problem(path, "", None, f"not a readable zip file: {describe_read_error(exc)}")
        return
    with archive:
        members = xml_members(archive)
        if not members:
            yield Problem(path, "", None, "the zip holds no XML file (*.xml)")
            return
        total = 0
        for member in members:
            problems = _check_member(path, archive, member, schema)
            total += len(problems)
            yield from problems
    log.info("validated %s: %d XML file(s), %d problem(s)", path, len(members), total)


def _check_member(path: Path, archive: zipfile.ZipFile, member: str, schema: Any) -> list[Problem]:
    problems: list[Problem] = []
    try:
        with archive.open(member) as stream:
            head = stream.read(256)
        if not _PROLOG.match(head):
            problems.append(
                Problem(
                    path,
                    member,
                    1,
                    "the XML declaration is missing or does not declare encoding UTF-8 "
                    '(expected <?xml version="1.0" encoding="UTF-8"?>)',
                )
            )
        failure = _stream_verdict(archive, member, schema)
        if failure is None:
            log.debug("%s:%s is valid", path, member)
            return problems
        log.debug("%s:%s is invalid; locating its problems", path, member)
        problems.extend(
            _diagnose(
                path, archive, member, schema, failure, MAX_PROBLEMS_PER_MEMBER - len(problems)
            )
        )
    except READ_ERRORS as exc:
        problems.append(
            Problem(path, member, None, f"cannot be read from the zip: {describe_read_error(exc)}")
        )
    return problems


# ---------------------------------------------------------------- pass 1: the verdict


def _stream_verdict(archive: zipfile.ZipFile, member: str, schema: Any) -> _Failure | None:
    """Parse and validate in one stream; None when the member is valid.

    Stops at the first record after which libxml2 has logged an error.
    """
    records = 0
    with archive.open(member) as stream:
        events = etree.iterparse(stream, events=("end",), schema=schema, huge_tree=True)
        try:
            for _, element in events:
                parent = element.getparent()
                if parent is None or parent.getparent() is not None:
                    continue
                errors = events.error_log.filter_from_errors()
                if errors:
                    return _Failure(records, tuple(entry.message for entry in errors))
                records += 1
                _release(element, parent)
        except etree.XMLSyntaxError as exc:
            errors = events.error_log.filter_from_errors()
            messages = tuple(entry.message for entry in errors) or (_syntax_message(exc),)
            return _Failure(records, messages)
    return None


# ---------------------------------------------------------------- pass 2: the diagnosis


def _diagnose(
    path: Path,
    archive: zipfile.ZipFile,
    member: str,
    schema: Any,
    failure: _Failure,
    limit: int,
) -> list[Problem]:
    """Re-read an invalid member and return its problems with line numbers."""
    found: list[Problem] = []
    seen: set[tuple[int | None, str]] = set()

    def add(line: int | None, message: str) -> bool:
        """Record a problem once; True when the member must not be read further."""
        if (line, message) not in seen:
            seen.add((line, message))
            found.append(Problem(path, member, line, message))
        if len(found) >= limit:
            found.append(
                Problem(
                    path,
                    member,
                    None,
                    f"stopped at the limit of {MAX_PROBLEMS_PER_MEMBER} problems per XML file; "
                    f"the rest of {member} was not checked",
                )
            )
            return True
        return False

    if limit <= 0:
        return found
    records = 0
    with archive.open(member) as stream:
        events = etree.iterparse(stream, events=("end",), huge_tree=True)
        try:
            for _, element in events:
                parent = element.getparent()
                if parent is None:  # the root is complete
                    if records == 0:
                        for line, message in _check_alone(schema, element):
                            if add(line, message):
                                return found
                    continue
                if parent.getparent() is not None:
                    continue
                records += 1
                if records > failure.valid_prefix:
                    for line, message in _check_record(schema, parent, element, records):
                        if add(line, message):
                            return found
                _release(element, parent)
        except etree.XMLSyntaxError as exc:
            line = exc.position[0] if exc.position and exc.position[0] > 0 else None
            column = exc.position[1] if exc.position else 0
            where = f" (column {column})" if line is not None and column > 0 else ""
            add(line, f"not well-formed XML: {_syntax_message(exc)}{where}")
            return found
    if not found:
        # The streaming validator saw an error the per-record check cannot place,
        # e.g. a constraint spanning records: report it without a line.
        for message in failure.messages:
            if add(None, message):
                break
    return found


def _check_record(schema: Any, root: Any, record: Any, index: int) -> list[tuple[int | None, str]]:
    """Validate one record wrapped in an empty copy of the root.

    The copy's line numbers are made relative to the record (libxml2 keeps only
    16 bits of a copied element's line) and mapped back afterwards.
    """
    base = record.sourceline
    wrapper = etree.Element(root.tag, attrib=dict(root.attrib), nsmap=root.nsmap)
    if index == 1:
        wrapper.text = root.text
    clone = copy.deepcopy(record)
    if base is not None:
        for original, copied in zip(record.iter(), clone.iter(), strict=True):
            line = original.sourceline
            relative = line - base + 1 if line is not None and line >= base else 1
            copied.sourceline = min(relative, 65534)
    wrapper.append(clone)
    if schema.validate(wrapper):
        return []
    label = _describe_record(record, index)
    found: list[tuple[int | None, str]] = []
    for entry in schema.error_log.filter_from_errors():
        if entry.line > 0:
            line = base + entry.line - 1 if base is not None else entry.line
            found.append((line, f"{entry.message} ({label})"))
        else:  # reported on the root itself (root name, its attributes or text)
            found.append((root.sourceline, entry.message))
    return found


def _check_alone(schema: Any, root: Any) -> list[tuple[int | None, str]]:
    """Validate a root without any record."""
    wrapper = etree.Element(root.tag, attrib=dict(root.attrib), nsmap=root.nsmap)
    wrapper.text = root.text
    if schema.validate(wrapper):
        return []
    return [(root.sourceline, entry.message) for entry in schema.error_log.filter_from_errors()]


# ---------------------------------------------------------------- helpers


def _release(element: Any, parent: Any) -> None:
    """Free a finished record and every sibling before it."""
    element.clear(keep_tail=True)
    while element.getprevious() is not None:
        del parent[0]


def _describe_record(record: Any, index: int) -> str:
    name = etree.QName(record).localname if isinstance(record.tag, str) else "record"
    return f"{name} #{index}"


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    message = str(exc.msg or exc)
    wrapped = _BYTES_REPR.match(message)
    if wrapped:
        message = wrapped.group("text")
    return _LOCATION_SUFFIX.sub("", message).strip() or "not well-formed"
