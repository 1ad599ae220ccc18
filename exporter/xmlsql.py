"""XML written by DuckDB: the record type compiled once into SQL expressions.

The SQL means exactly what `xmlwrite.reference_xml` defines (xmltodict on the row
without NULLs, after `Sanitizer`): it is generated from the final model's STRUCT
type, element by element, and DuckDB evaluates it vectorised and in parallel, so
Python only moves finished bytes. A property test holds the two together on random
types and values.

Which elements a record writes depends only on which of its parts are NULL (and on
list lengths): exporter.xsdsql relies on that to validate one record per structure.
Keep it so, or add the new dependency to its signature.

Forbidden XML characters are rare, so each record is written on a fast path that
only cuts long values; a record whose text shows a forbidden character is written
again on a path that also removes them from every value (`safe`).

Before writing, one scan of the rows (`part_facts`) learns what each part holds:
parts that are the same wherever present are written once, as text, and a part with
no value longer than the cut is not cut. Forbidden characters are searched for once
per record, in its varying text run together, rather than value by value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from exporter.duck import literal
from exporter.xmlwrite import Sanitizer, Shape, reference_xml

#: RE2 class of the characters XML 1.0 forbids (the same as xmlwrite.ILLEGAL_XML_CHARS).
ILLEGAL_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]"
_ILLEGAL = literal(ILLEGAL_RE2)

#: List items written by index before falling back to a lambda (see _Writer.element).
INLINE_ITEMS = 3


@dataclass
class Facts:
    """What one scan of the records found about each part (path) of them.

    Parts not named here, such as the items a lambda writes, are assumed to be
    anything: a fact only ever spares work.

    Attributes:
        constants: Parts that are the same wherever present, with their value (None:
            NULL in every row).
        present: Rows where each part is not NULL.
        widest: Text parts: the most UTF-8 bytes of any value.
    """

    constants: dict[str, Any] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    widest: dict[str, int] = field(default_factory=dict)

    def fits(self, expr: str, limit: int) -> bool:
        """No value of `expr` is longer than `limit` characters (bytes bound them)."""
        return expr in self.widest and self.widest[expr] <= limit


def _field(expr: str, key: str) -> str:
    return f"{expr}[{literal(key)}]"


def _escape(expr: str) -> str:
    return f"replace(replace(replace({expr}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def _joined(expr: str, shape: Shape, constants: dict[str, Any], depth: int = 0) -> str | None:
    """SQL of the varying text values under `expr` run together (a forbidden
    character is one code point: the joined text has the same ones); None when
    there is none. Constant parts are written clean."""
    if expr in constants:
        return None
    kind = shape[0]
    if kind == "varchar":
        return expr
    if kind == "list":
        items = [
            _joined(f"{expr}[{i}]", shape[1], constants, depth) for i in range(1, INLINE_ITEMS + 1)
        ]
        var = f"j{depth}"
        each = _joined(var, shape[1], {}, depth + 1)
        if each is None:
            return None
        inline = ", ".join(i for i in items if i) or "''"
        return (
            f"CASE WHEN len({expr}) <= {INLINE_ITEMS} THEN concat({inline}) "
            f"ELSE array_to_string(list_transform({expr}, lambda {var}: {each}), '') END"
        )
    parts = [_joined(_field(expr, k), sub, constants, depth) for k, sub in shape[1]]
    known = [p for p in parts if p]
    return f"concat({', '.join(known)})" if known else None


def _quoteattr(expr: str) -> str:
    """saxutils.quoteattr: escape, encode white space, pick the quote that needs no escape."""
    q = _escape(expr)
    for char, entity in ((10, "&#10;"), (13, "&#13;"), (9, "&#9;")):
        q = f"replace({q}, chr({char}), '{entity}')"
    dq, sq = "'\"'", "''''"
    return (
        f"CASE WHEN NOT contains({expr}, {dq}) THEN concat({dq}, {q}, {dq}) "
        f"WHEN NOT contains({expr}, {sq}) THEN concat({sq}, {q}, {sq}) "
        f"ELSE concat({dq}, replace({q}, {dq}, '&quot;'), {dq}) END"
    )


class _Writer:
    """Generates the XML expression of one path (fast or safe).

    Strings are joined with the variadic concat(), which builds each record once;
    a chain of binary || copies the growing record at every step.
    """

    def __init__(self, max_length: int, safe: bool, facts: Facts) -> None:
        self.limit = max_length
        self.safe = safe
        self.lambdas = 0
        self.facts = facts
        self.constants = facts.constants

    def clean(self, expr: str) -> str:
        return f"regexp_replace({expr}, {_ILLEGAL}, '', 'g')" if self.safe else expr

    def fit(self, expr: str) -> str:
        """The value as written: cleaned (on the safe path) and cut; constants pre-made."""
        if expr in self.constants:
            value = self.constants[expr]
            if value is None:
                return "NULL::VARCHAR"
            text = literal(Sanitizer(self.limit).clean(value))
            return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {text} END"
        if self.facts.fits(expr, self.limit):
            return self.clean(expr)
        return f"left({self.clean(expr)}, {self.limit})"

    def is_empty_text(self, expr: str) -> str:
        """True when a text value writes nothing: NULL, or empty once cleaned."""
        if expr in self.constants:
            value = self.constants[expr]
            return (
                "TRUE"
                if value is None or not Sanitizer(self.limit).clean(value)
                else f"{expr} IS NULL"
            )
        return f"coalesce({self.clean(expr)}, '') = ''"

    def has_output(self, expr: str, shape: Shape) -> str:
        """True when a child value writes anything (NULL and empty lists write nothing)."""
        if shape[0] == "list":
            return f"coalesce(list_count({expr}), 0) > 0"
        return f"{expr} IS NOT NULL"

    def element(self, name: str, expr: str, shape: Shape) -> str:
        """SQL text of element `name` for value `expr`; '' when the value is NULL."""
        if expr in self.constants:  # the same wherever present: written once, by the reference
            value = self.constants[expr]
            if value is None:
                return "''"
            text = literal(reference_xml(name, Sanitizer(self.limit).sanitize(value)))
            return f"CASE WHEN {expr} IS NULL THEN '' ELSE {text} END"
        kind = shape[0]
        if kind == "varchar":
            return (
                f"CASE WHEN {expr} IS NULL THEN '' WHEN {self.clean(expr)} = '' THEN '<{name}/>' "
                f"ELSE concat('<{name}>', {_escape(self.fit(expr))}, '</{name}>') END"
            )
        if kind == "list":
            # Lists in a record are short: their first items are written by index,
            # vectorised (an index past the end is NULL and writes nothing); only a
            # longer list pays for the per-row lambda.
            items = [
                self.element(name, f"{expr}[{i}]", shape[1]) for i in range(1, INLINE_ITEMS + 1)
            ]
            self.lambdas += 1
            var = f"e{self.lambdas}"
            each = self.element(name, var, shape[1])
            return (
                f"CASE WHEN {expr} IS NULL THEN '' WHEN len({expr}) <= {INLINE_ITEMS} "
                f"THEN concat({', '.join(items)}) "
                f"ELSE array_to_string(list_transform({expr}, lambda {var}: {each}), '') END"
            )
        fields = shape[1]
        start = [f"'<{name}'"] + [
            f"CASE WHEN {_field(expr, key)} IS NULL THEN '' "
            f"ELSE concat(' {key[1:]}=', {_quoteattr(self.fit(_field(expr, key)))}) END"
            for key, _ in fields
            if key.startswith("@")
        ]
        children = [(k, sub) for k, sub in fields if not k.startswith("@") and k != "#text"]
        body = [self.element(k, _field(expr, k), sub) for k, sub in children]
        writes = [self.has_output(_field(expr, k), sub) for k, sub in children]
        if any(key == "#text" for key, _ in fields):
            text = _field(expr, "#text")
            body.append(_escape(self.fit(text)))  # concat() writes NULL as nothing
            writes.append(f"NOT ({self.is_empty_text(text)})")
        if not body:
            return f"CASE WHEN {expr} IS NULL THEN '' ELSE concat({', '.join(start)}, '/>') END"
        return (
            f"CASE WHEN {expr} IS NULL THEN '' ELSE concat({', '.join(start)}, "
            f"CASE WHEN {' OR '.join(writes)} THEN concat('>', {', '.join(body)}, '</{name}>') "
            f"ELSE '/>' END) END"
        )


def _total(
    expr: str,
    shape: Shape,
    term: Callable[[str], str | None],
    constants: dict[str, Any],
    fixed: Callable[[Any], int],
    depth: int = 0,
) -> str:
    """Sum of `term(v)` over every text value v under `expr` (a None term counts 0).

    A constant part counts `fixed(value)` in each row where it is present.
    """
    if expr in constants:
        value = constants[expr]
        n = fixed(value) if value is not None else 0
        return f"(CASE WHEN {expr} IS NULL THEN 0 ELSE {n} END)" if n else "0"
    kind = shape[0]
    if kind == "varchar":
        counted = term(expr)
        return "0" if counted is None else f"coalesce({counted}, 0)"
    if kind == "list":  # inlined like _Writer's lists; a longer list takes the lambda
        items = [
            _total(f"{expr}[{i}]", shape[1], term, constants, fixed, depth)
            for i in range(1, INLINE_ITEMS + 1)
        ]
        var = f"t{depth}"
        each = _total(var, shape[1], term, {}, fixed, depth + 1)
        if each == "0" and all(i == "0" for i in items):
            return "0"
        return (
            f"CASE WHEN {expr} IS NULL THEN 0 WHEN len({expr}) <= {INLINE_ITEMS} "
            f"THEN {' + '.join(items)} "
            f"ELSE coalesce(list_sum(list_transform({expr}, lambda {var}: {each})), 0) END"
        )
    parts = [_total(_field(expr, k), sub, term, constants, fixed, depth) for k, sub in shape[1]]
    summed = [p for p in parts if p != "0"]
    return "(" + " + ".join(summed) + ")" if summed else "0"


def _paths(expr: str, shape: Shape) -> Iterator[tuple[str, Shape]]:
    """Every value path the writer names: struct fields and the inlined list items."""
    yield expr, shape
    if shape[0] == "struct":
        for key, sub in shape[1]:
            yield from _paths(_field(expr, key), sub)
    elif shape[0] == "list":
        for i in range(1, INLINE_ITEMS + 1):
            yield from _paths(f"{expr}[{i}]", shape[1])


def part_facts(con: duckdb.DuckDBPyConnection, rows: str, params: list[Any], shape: Shape) -> Facts:
    """What the records `r` in `rows` (SQL) hold, part by part, found in one scan.

    A part is constant when it is the same wherever present. Text is compared with
    min and max; a list is constant when its length is and each item is; a struct
    when each field is constant and present exactly when the struct is (or never).
    Text parts also report their widest value, so that those never longer than
    the cut are not cut.
    """
    paths = list(_paths("r", shape))
    aggregates = []
    for expr, sub in paths:
        aggregates.append(f"count({expr})")
        # A list is compared by its length (comparing whole lists costs more than the
        # rest of the scan); its items are compared as paths of their own.
        compared = f"len({expr})" if sub[0] == "list" else expr
        if sub[0] != "struct":
            aggregates.append(f"min({compared}) IS NOT DISTINCT FROM max({compared})")
            aggregates.append(f"min({compared})")
        if sub[0] == "varchar":
            aggregates.append(f"max(strlen({expr}))")
    (row,) = con.execute(f"SELECT {', '.join(aggregates)} FROM ({rows})", params).fetchall()
    values = iter(row)
    facts = Facts()
    seen: dict[str, tuple[int, bool, Any]] = {}
    for expr, sub in paths:
        count = next(values)
        same, value = (next(values), next(values)) if sub[0] != "struct" else (True, None)
        seen[expr] = (count, bool(same), value)
        facts.present[expr] = count
        if sub[0] == "varchar":
            widest = next(values)
            if count:
                facts.widest[expr] = widest
    constants = facts.constants

    def resolve(expr: str, sub: Shape) -> bool:
        count, same, value = seen[expr]
        if sub[0] == "list":
            for i in range(1, INLINE_ITEMS + 1):
                resolve(f"{expr}[{i}]", sub[1])
        if count == 0:
            constants[expr] = None
        elif sub[0] == "list":
            # the same length everywhere, within the inlined items, each item constant
            # and there exactly when the list is (or never)
            items = [f"{expr}[{i}]" for i in range(1, (value or 0) + 1)]
            if (
                same
                and value <= INLINE_ITEMS
                and all(i in constants and seen[i][0] in (0, count) for i in items)
            ):
                constants[expr] = [constants[i] for i in items]
        elif sub[0] != "struct":
            if same:
                constants[expr] = value
        else:
            fields = [(_field(expr, k), s) for k, s in sub[1]]
            fixed = [resolve(f, s) for f, s in fields]
            if all(fixed) and all(seen[f][0] in (0, count) for f, _ in fields):
                constants[expr] = {
                    k: constants[f] for (k, _), (f, _) in zip(sub[1], fields, strict=True)
                }
        return expr in constants

    resolve("r", shape)
    return facts


@dataclass(frozen=True)
class RecordSql:
    """Expressions over a record value `r`, its fast-path XML `x` and whether it has a
    forbidden character, `dirty` (see `compile_record`)."""

    fast: str
    dirty: str
    xml: str
    truncated: str
    removed: str


def compile_record(
    element: str, shape: Shape, max_length: int, facts: Facts | None = None
) -> RecordSql:
    """The SQL writing a record value `r` as element `element`, one line per record.

    `facts` (from `part_facts`) spare per-row work: constant parts are written once,
    and parts never longer than `max_length` are not cut.
    Use as: SELECT {xml}, {truncated}, {removed}
    FROM (SELECT <column> AS r, {fast} AS x, {dirty} AS dirty ...).
    (`x` and `dirty` let DuckDB compute each once per row.)
    """
    facts = facts or Facts()
    constants = facts.constants
    fast = _Writer(max_length, False, facts).element(element, "r", shape)
    safe = _Writer(max_length, True, facts).element(element, "r", shape)

    def cleaned(v: str) -> str:
        return f"length(regexp_replace({v}, {_ILLEGAL}, '', 'g'))"

    def cut(value: Any) -> int:
        counter = Sanitizer(max_length)
        counter.sanitize(value)
        return counter.truncated_values

    def lost(value: Any) -> int:
        counter = Sanitizer(max_length)
        counter.sanitize(value)
        return counter.removed_chars

    def none(_: Any) -> int:
        return 0

    def zero(_: str) -> None:
        return None

    def long_fast(v: str) -> str | None:
        return None if facts.fits(v, max_length) else f"(length({v}) > {max_length})::INTEGER"

    def long_safe(v: str) -> str | None:
        return None if facts.fits(v, max_length) else f"({cleaned(v)} > {max_length})::INTEGER"

    def removed(v: str) -> str | None:
        return f"length({v}) - {cleaned(v)}"

    # Constant parts count in every row where present; the varying ones per path.
    cut_fixed = _total("r", shape, zero, constants, cut)
    lost_fixed = _total("r", shape, zero, constants, lost)
    cut_fast = _total("r", shape, long_fast, constants, none)
    # Constant parts are written clean; only the values that vary can be dirty.
    text = _joined("r", shape, constants)
    if text is None:
        return RecordSql(
            fast=fast,
            dirty="FALSE",
            xml="concat(x, chr(10))",
            truncated=f"({cut_fixed} + {cut_fast})::BIGINT",
            removed=f"({lost_fixed})::BIGINT",
        )
    cut_safe = _total("r", shape, long_safe, constants, none)
    lost_safe = _total("r", shape, removed, constants, none)
    return RecordSql(
        fast=fast,
        dirty=f"regexp_matches(coalesce({text}, ''), {_ILLEGAL})",
        xml=f"concat(CASE WHEN dirty THEN {safe} ELSE x END, chr(10))",
        truncated=f"({cut_fixed} + CASE WHEN dirty THEN {cut_safe} ELSE {cut_fast} END)::BIGINT",
        removed=f"({lost_fixed} + CASE WHEN dirty THEN {lost_safe} ELSE 0 END)::BIGINT",
    )


def written_text(max_length: int, facts: Facts) -> Callable[[str], str]:
    """SQL of the text a clean record writes for a value `expr` where it is not NULL:
    cut, and for a constant part its text as a literal."""
    writer = _Writer(max_length, False, facts)

    def fit(expr: str) -> str:
        value = facts.constants.get(expr)
        if isinstance(value, str):
            return literal(Sanitizer(max_length).clean(value))
        return writer.fit(expr)

    return fit
