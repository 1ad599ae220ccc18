"""The schema compiled into SQL, so that export proves records valid instead of parsing each.

Validating every record with lxml costs about 50 CPU-seconds per million patrons,
more than writing and compressing them. Yet a record's validity has two parts, and
both can be decided for all records at once:

- Structure. Which elements and attributes a record writes, and in what order, follows
  from which of its parts are NULL (the writer fixes the order and the names). Those
  presence bits, packed into integers, are the record's *signature*; records with the
  same signature differ only in their text and attribute values. lxml validates the
  first record of each signature in full, so every structure is checked by the real
  validator once.
- Values. Each text and attribute value must be valid for the simple type the schema
  declares at its place. That type is found with xmlschema and compiled into a SQL
  predicate over the value as written. A predicate is conservative: it is true only
  when the value is certainly valid; for a type or facet it does not know, it is false.

A record whose values are not all proven, that has a forbidden character, or a list
longer than the writer inlines, is validated by lxml in full. So the check is never
weaker than lxml; an unusual schema only costs time. A schema with identity
constraints (xs:unique, xs:key) ties records together, and then every record is
validated (`compile_proof` returns None).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xmlschema
from xmlschema.validators import XsdElement

from exporter.duck import literal
from exporter.xmlsql import INLINE_ITEMS
from exporter.xmlwrite import Shape

log = logging.getLogger(__name__)

XS = "{http://www.w3.org/2001/XMLSchema}"

#: Presence bits packed into one signature word.
WORD_BITS = 64

_TZ = r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)?"
_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"


def _calendar_day(v: str) -> str:
    """The value starts with a real day of the Gregorian calendar (year 0000 is not)."""
    return f"(try_strptime(left({v}, 10), '%Y-%m-%d') IS NOT NULL AND left({v}, 4) <> '0000')"


def _primitive(name: str, v: str) -> str | None:
    """A predicate for the built-in types the compiler knows, in their strict form."""
    if name == "string":
        return "TRUE"
    if name == "boolean":
        return f"{v} IN ('true', 'false', '1', '0')"
    if name == "date":
        return f"(regexp_full_match({v}, {literal(_DAY + _TZ)}) AND {_calendar_day(v)})"
    if name == "dateTime":
        return f"(regexp_full_match({v}, {literal(_DAY + _TIME + _TZ)}) AND {_calendar_day(v)})"
    return None


def value_predicate(simple: Any, v: str, limit: int) -> str | None:
    """SQL true only when text `v` is certainly valid for the simple type; None: unknown.

    `limit` is the writer's cut: no value it writes is longer, so a maxLength of at
    least `limit` needs no check.
    """
    if simple.is_union():
        members = [value_predicate(m, v, limit) for m in simple.member_types]
        known = [m for m in members if m is not None]
        return "(" + " OR ".join(known) + ")" if known else None
    if not simple.is_atomic():  # lists of values, anything else
        return None
    checks: list[str] = []
    t = simple
    while t.name is None or not t.name.startswith(XS):  # user-defined restrictions
        for name, facet in t.facets.items():
            check = _facet(name, facet, v, limit)
            if check is None:
                return None
            checks.append(check)
        t = t.base_type
        if t is None:
            return None
    primitive = _primitive(t.name[len(XS) :], v)
    if primitive is None:
        return None
    # Built-ins derived from these (token, int, ...) have their own names: unknown.
    checks.append(primitive)
    checks = [c for c in checks if c != "TRUE"]
    return "(" + " AND ".join(checks) + ")" if checks else "TRUE"


def _facet(name: str, facet: Any, v: str, limit: int) -> str | None:
    # A parser turns CR LF in text into LF, so a value with CR may read shorter, or
    # differently, than written: only an upper bound on its length holds regardless.
    no_cr = f"NOT contains({v}, chr(13))"
    if name == XS + "maxLength":
        return "TRUE" if facet.value >= limit else f"length({v}) <= {facet.value}"
    if name == XS + "minLength":
        return f"(length({v}) >= {facet.value} AND {no_cr})"
    if name == XS + "length":
        return f"(length({v}) = {facet.value} AND {no_cr})"
    if name == XS + "enumeration":
        values = ", ".join(literal(e) for e in facet.enumeration)
        return f"({v} IN ({values}) AND {no_cr})"
    if name == XS + "whiteSpace" and facet.value == "preserve":
        return "TRUE"
    return None


@dataclass
class Proof:
    """SQL over a record value `r`: its signature words and whether its values are proven.

    Attributes:
        words: UBIGINT expressions; equal words mean the same element structure.
        proven: BOOLEAN expression; true when every value is certainly valid.
        unknown: Parts whose values are never proven (lxml validates records that
            have them), as "path: why", for the log.
    """

    words: list[str] = field(default_factory=list)
    proven: str = "TRUE"
    unknown: list[str] = field(default_factory=list)


class _Compiler:
    def __init__(self, fit: Callable[[str], str], limit: int, counts: dict[str, int]) -> None:
        self.fit = fit
        self.limit = limit
        self.counts = counts
        self.bits: list[str] = []
        self.checks: list[str] = []
        self.unknown: list[str] = []

    def present(self, expr: str, parent: str | None) -> None:
        """A signature bit: is `expr` (a part of `parent`) there? None for a part that
        `counts` shows is never there, or there exactly when its parent is."""
        count = self.counts.get(expr)
        if count is not None and parent is not None and count in (0, self.counts.get(parent)):
            return
        self.bits.append(f"({expr} IS NOT NULL)")

    def text_or_empty(self, expr: str) -> str:
        """The text written for `expr`, or '' where it is NULL."""
        return f"CASE WHEN {expr} IS NULL THEN '' ELSE {self.fit(expr)} END"

    def absent(self, expr: str) -> bool:
        """`counts` show that `expr` is NULL in every row: it writes nothing to check."""
        return self.counts.get(expr) == 0

    def never(self, path: str, expr: str, why: str) -> None:
        """Records where `expr` writes anything are left to lxml."""
        if self.absent(expr):
            return
        self.unknown.append(f"{path}: {why}")
        self.checks.append(f"{expr} IS NULL")

    def value(self, path: str, simple: Any, expr: str, text: str) -> None:
        """Text `text` (SQL) is written where `expr` is not NULL; check it by `simple`."""
        if self.absent(expr):
            return
        predicate = value_predicate(simple, text, self.limit)
        if predicate is None:
            self.never(path, expr, f"type {simple.name or 'anonymous'} is not compiled")
        elif predicate != "TRUE":
            self.checks.append(f"({expr} IS NULL OR {predicate})")

    def element(self, decl: Any, path: str, expr: str, shape: Shape, parent: str | None) -> None:
        kind = shape[0]
        if kind == "list":  # the list writes nothing itself; its items are the parts
            self.checks.append(f"coalesce(len({expr}), 0) <= {INLINE_ITEMS}")
            for i in range(1, INLINE_ITEMS + 1):
                self.element(decl, path, f"{expr}[{i}]", shape[1], expr)
            return
        self.present(expr, parent)
        if self.absent(expr):
            return
        if decl.fixed is not None or decl.abstract:
            self.never(path, expr, "fixed or abstract in the schema")
            return
        xsd_type = decl.type
        if xsd_type.is_simple():
            simple, attributes, children = xsd_type, None, None
        elif xsd_type.has_simple_content():
            simple, attributes, children = xsd_type.content, xsd_type.attributes, None
        else:
            simple, attributes = None, xsd_type.attributes
            children = {
                e.name: e for e in xsd_type.content.iter_elements() if isinstance(e, XsdElement)
            }
        if kind == "varchar":
            if simple is None:  # <x/> may be valid (lxml judges it by the signature), text is not
                self.checks.append(f"({expr} IS NULL OR {self.fit(expr)} = '')")
            else:
                self.value(path, simple, expr, self.fit(expr))
            return
        fields = shape[1]
        text = f"{expr}['#text']"
        if simple is not None:
            # The element's text: its #text, or empty when it has none.
            written = self.text_or_empty(text) if any(k == "#text" for k, _ in fields) else "''"
            self.value(path, simple, expr, written)
        for key, sub in fields:
            sub_expr = f"{expr}[{literal(key)}]"
            if key == "#text":
                self.present(sub_expr, expr)
                if simple is None:
                    self.checks.append(f"{self.text_or_empty(sub_expr)} = ''")
            elif key.startswith("@"):
                self.present(sub_expr, expr)
                attribute = (attributes or {}).get(key[1:]) if ":" not in key else None
                if attribute is None or attribute.fixed is not None:
                    self.never(f"{path}/{key}", sub_expr, "not a plain attribute in the schema")
                else:
                    self.value(f"{path}/{key}", attribute.type, sub_expr, self.fit(sub_expr))
            else:
                child = (children or {}).get(key)
                if child is None:
                    self.present(sub_expr, expr)  # lxml sees the record, names the element
                    if sub[0] == "list":
                        self.never(f"{path}/{key}", f"nullif(len({sub_expr}), 0)", "undeclared")
                    else:
                        self.never(f"{path}/{key}", sub_expr, "undeclared")
                else:
                    self.element(child, f"{path}/{key}", sub_expr, sub, expr)


@functools.lru_cache(maxsize=4)
def _schema(path: str, _mtime_ns: int) -> Any:
    """The schema, read once per export rather than once per patron type."""
    return xmlschema.XMLSchema(path)


def compile_proof(
    xsd: Path,
    root: str,
    element: str,
    shape: Shape,
    fit: Callable[[str], str],
    limit: int,
    counts: dict[str, int] | None = None,
) -> Proof | None:
    """The signature and value checks of records `r` of `shape`, written as `element`
    inside `root`; None when the schema needs every record validated.

    `fit(expr)` is the writer's SQL for the text it writes for value `expr` where that
    is not NULL (for a constant part, a literal: DuckDB then decides its checks once);
    `limit` is its cut. `counts` (`Facts.present`, over the same rows) are the rows
    where each part is not NULL: they spare the bits that cannot vary.
    """
    try:
        schema = _schema(str(xsd), xsd.stat().st_mtime_ns)
    except (xmlschema.XMLSchemaException, OSError) as exc:
        # lxml loaded this schema (ChunkChecker checks first); it judges every record
        log.warning("xmlschema cannot read %s (%s): validating every record", xsd.name, exc)
        return None
    if any(schema.identities.values()):
        return None
    root_decl = schema.elements.get(root)
    root_type: Any = root_decl.type if root_decl is not None else None
    if root_type is None or root_type.is_simple() or root_type.has_simple_content():
        return None  # lxml reports what is wrong with the root
    decls = [
        e
        for e in root_type.content.iter_elements()
        if isinstance(e, XsdElement) and e.name == element
    ]
    if len(decls) != 1:
        return None
    compiler = _Compiler(fit, limit, counts or {})
    compiler.element(decls[0], element, "r", shape, None)
    bits = compiler.bits
    words = []
    for start in range(0, len(bits), WORD_BITS):
        part = bits[start : start + WORD_BITS]
        words.append("(" + " | ".join(f"({b}::UBIGINT << {i})" for i, b in enumerate(part)) + ")")
    words = words or ["0::UBIGINT"]  # every record has the same structure
    proven = " AND ".join(compiler.checks) if compiler.checks else "TRUE"
    return Proof(words, f"coalesce({proven}, FALSE)", compiler.unknown)
