"""XML from rows: a writer compiled once from the final model's column type.

A row means what `xmltodict.unparse({element: strip_nulls(row)})` writes: struct
fields are child elements in order, keys starting with `@` are attributes, `#text`
is the element's text (written after any children), a list repeats its element,
NULL leaves the element out, and an empty string writes it empty (`<x/>`).
`reference_xml` is that definition; `RecordWriter` writes the same bytes faster
by generating Python code for the one type it serves, instead of walking dicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import xmltodict

from exporter.errors import ExportError

#: Characters XML 1.0 forbids anywhere, even escaped.
ILLEGAL_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

#: A column type as DuckDB describes it: ("varchar",), ("list", child), ("struct", fields).
Shape = tuple[Any, ...]


def shape_of(duck_type: Any) -> Shape:
    """Turn a DuckDBPyType into the nested shape the writer compiles from."""
    kind = duck_type.id
    if kind == "struct":
        return ("struct", tuple((name, shape_of(t)) for name, t in duck_type.children))
    if kind == "list":
        return ("list", shape_of(duck_type.child))
    if kind in ("varchar", '"null"', "null"):
        return ("varchar",)
    raise ExportError(
        f"the record has a {duck_type} value; "
        "cast it to VARCHAR in the model so its text is explicit"
    )


def strip_nulls(value: Any) -> Any:
    """Drop NULL struct fields and list items, recursively (NULL = element left out)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value if v is not None]
    return value


def reference_xml(element: str, row: Any) -> str:
    """The definition of a row's XML: xmltodict on the row without its NULLs."""
    return str(
        xmltodict.unparse(
            {element: strip_nulls(row)}, full_document=False, short_empty_elements=True
        )
    )


@dataclass
class Sanitizer:
    """Makes text fit for Alma: XML 1.0 characters only, at most `max_length` long."""

    max_length: int
    removed_chars: int = 0
    truncated_values: int = 0

    def cut(self, text: str) -> str:
        self.truncated_values += 1
        return text[: self.max_length]

    def clean(self, text: str) -> str:
        text, n = ILLEGAL_XML_CHARS.subn("", text)
        self.removed_chars += n
        return self.cut(text) if len(text) > self.max_length else text

    def sanitize(self, value: Any) -> Any:
        """The row with every string cleaned: what the compiled writer writes."""
        if isinstance(value, dict):
            return {k: self.sanitize(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.sanitize(v) for v in value]
        if isinstance(value, str):
            return self.clean(value)
        return value


@dataclass
class _Code:
    lines: list[str] = field(default_factory=list)
    counter: int = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def _text(code: _Code, depth: int, src: str, fix: str) -> str:
    """Emit code binding a fitted copy of the string `src`; return its variable."""
    var = code.var("s")
    code.emit(depth, f"{var} = {src}")
    code.emit(depth, f"if {fix}: {var} = fit({var})")
    return var


def _element(code: _Code, depth: int, name: str, src: str, shape: Shape, safe: bool) -> None:
    """Emit code writing `src` (never None here) as element `name` of `shape`."""
    kind = shape[0]
    fix = "True" if safe else "len({v}) > limit"
    if kind == "varchar":
        var = code.var("s")
        code.emit(depth, f"{var} = {src}")
        code.emit(depth, f"if {fix.format(v=var)}: {var} = fit({var})")
        code.emit(depth, f"if {var}: out('<{name}>' + esc({var}) + '</{name}>')")
        code.emit(depth, f"else: out('<{name}/>')")
        return
    if kind == "list":
        item = code.var("i")
        code.emit(depth, f"for {item} in {src}:")
        code.emit(depth + 1, f"if {item} is not None:")
        _element(code, depth + 2, name, item, shape[1], safe)
        return
    fields = shape[1]
    attrs = [(k, s) for k, s in fields if k.startswith("@")]
    children = [(k, s) for k, s in fields if not k.startswith("@") and k != "#text"]
    has_text = any(k == "#text" for k, _ in fields)
    for key, sub in attrs:
        if sub[0] != "varchar":
            raise ExportError(f"attribute {key} of <{name}> must be text, not a {sub[0]}")
    struct = code.var("d")
    code.emit(depth, f"{struct} = {src}")
    open_tag = code.var("t")
    code.emit(depth, f"{open_tag} = '<{name}'")
    for key, _ in attrs:
        val = code.var("a")
        code.emit(depth, f"{val} = {struct}[{key!r}]")
        code.emit(depth, f"if {val} is not None:")
        code.emit(depth + 1, f"if {fix.format(v=val)}: {val} = fit({val})")
        code.emit(depth + 1, f"{open_tag} += ' {key[1:]}=' + qattr({val})")
    code.emit(depth, f"out({open_tag})")
    mark = code.var("m")
    code.emit(depth, f"{mark} = len(buf)")
    code.emit(depth, "out('>')")
    for key, sub in children:
        val = code.var("c")
        code.emit(depth, f"{val} = {struct}[{key!r}]")
        code.emit(depth, f"if {val} is not None:")
        _element(code, depth + 1, key, val, sub, safe)
    if has_text:
        val = code.var("x")
        code.emit(depth, f"{val} = {struct}['#text']")
        code.emit(depth, f"if {val}:")
        code.emit(depth + 1, f"if {fix.format(v=val)}: {val} = fit({val})")
        code.emit(depth + 1, f"if {val}: out(esc({val}))")
    code.emit(depth, f"if len(buf) == {mark} + 1: buf[{mark}] = '/>'")
    code.emit(depth, f"else: out('</{name}>')")


def _compile(
    element: str, shape: Shape, safe: bool, fit: Callable[[str], str], limit: int
) -> Callable[[list[str], Any], None]:
    code = _Code()
    code.emit(0, "def write(buf, row):")
    code.emit(1, "out = buf.append")
    _element(code, 1, element, "row", shape, safe)
    namespace: dict[str, Any] = {"esc": escape, "qattr": quoteattr, "fit": fit, "limit": limit}
    exec(compile("\n".join(code.lines), f"<writer for {element}>", "exec"), namespace)  # noqa: S102
    return namespace["write"]  # type: ignore[no-any-return]


class RecordWriter:
    """Writes rows of one column type as XML records, one per line."""

    def __init__(self, element: str, shape: Shape, max_length: int) -> None:
        self.element = element
        self.sanitizer = Sanitizer(max_length)
        self._fast = _compile(element, shape, False, self.sanitizer.cut, max_length)
        self._safe = _compile(element, shape, True, self.sanitizer.clean, max_length)

    def records(self, rows: list[Any]) -> list[str]:
        """Each row's XML record followed by a newline.

        Forbidden characters are rare, so the batch is written on the fast path and
        only rewritten record by record when the finished text shows one.
        """
        out: list[str] = []
        for row in rows:
            buf: list[str] = []
            truncated = self.sanitizer.truncated_values
            self._fast(buf, row)
            text = "".join(buf)
            if ILLEGAL_XML_CHARS.search(text):
                self.sanitizer.truncated_values = truncated  # the rewrite counts again
                buf = []
                self._safe(buf, row)
                text = "".join(buf)
            out.append(text + "\n")
        return out
