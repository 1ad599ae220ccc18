"""What a row of the final model means as XML: the definition the writer is held to.

A row means what `xmltodict.unparse({element: strip_nulls(row)})` writes: struct
fields are child elements in order, keys starting with `@` are attributes, `#text`
is the element's text (written after any children), a list repeats its element,
NULL leaves the element out, and an empty string writes it empty (`<x/>`). Text is
first made fit for Alma by `Sanitizer`. exporter.xmlsql writes the same bytes in
DuckDB, compiled from the column's type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
