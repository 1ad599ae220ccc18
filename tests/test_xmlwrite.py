"""The compiled writer against its definition, xmltodict.unparse on the row without NULLs."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.errors import ExportError
from exporter.xmlwrite import ILLEGAL_XML_CHARS, RecordWriter, Sanitizer, reference_xml, shape_of

NAMES = st.sampled_from(["a", "b", "line1", "user_group", "x_y", "phone"])
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from("&<>\"'\n\r\t\x0b"),
    max_size=12,
)


@st.composite
def shapes(draw: st.DrawFn, depth: int = 0) -> tuple[Any, ...]:
    """A random nested record type: text leaves, lists, structs with attributes and text."""
    if depth >= 3:
        return ("varchar",)
    kind = draw(st.sampled_from(["varchar", "list", "struct", "struct"]))
    if kind == "varchar":
        return ("varchar",)
    if kind == "list":
        return ("list", draw(shapes(depth + 1)))
    names = draw(st.lists(NAMES, min_size=0, max_size=4, unique=True))
    fields: list[tuple[str, Any]] = [(n, draw(shapes(depth + 1))) for n in names]
    for attr in draw(st.lists(st.sampled_from(["@desc", "@preferred"]), max_size=2, unique=True)):
        fields.insert(draw(st.integers(0, len(fields))), (attr, ("varchar",)))
    if draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), ("#text", ("varchar",)))
    return ("struct", tuple(fields))


@st.composite
def values(draw: st.DrawFn, shape: tuple[Any, ...]) -> Any:
    """A random value of a shape, NULLs included."""
    if draw(st.integers(0, 5)) == 0:
        return None
    if shape[0] == "varchar":
        return draw(TEXT)
    if shape[0] == "list":
        return draw(st.lists(values(shape[1]), max_size=3))
    return {name: draw(values(sub)) for name, sub in shape[1]}


@st.composite
def typed_rows(draw: st.DrawFn) -> tuple[tuple[Any, ...], Any]:
    fields = draw(shapes(1).filter(lambda s: s[0] == "struct"))
    row = draw(values(fields))
    return fields, row if row is not None else {name: None for name, _ in fields[1]}


@settings(max_examples=400, deadline=None)
@given(typed_rows(), st.integers(min_value=1, max_value=8))
def test_writer_equals_xmltodict_reference(
    case: tuple[tuple[Any, ...], Any], max_length: int
) -> None:
    shape, row = case
    writer = RecordWriter("user", shape, max_length)
    (written,) = writer.records([row])
    expected = reference_xml("user", Sanitizer(max_length).sanitize(row))
    assert written == expected + "\n"
    assert not ILLEGAL_XML_CHARS.search(written)


def test_writer_counts_removed_characters_and_cut_values() -> None:
    shape = ("struct", (("@desc", ("varchar",)), ("name", ("varchar",))))
    writer = RecordWriter("user", shape, 5)
    out = writer.records(
        [{"@desc": "a\x01b", "name": "abcdefgh"}, {"@desc": "ok", "name": "\x0bxyz123"}]
    )
    assert out == [
        '<user desc="ab"><name>abcde</name></user>\n',
        '<user desc="ok"><name>xyz12</name></user>\n',
    ]
    assert writer.sanitizer.removed_chars == 2
    assert writer.sanitizer.truncated_values == 2


def test_writer_compiles_from_duckdb_struct_type() -> None:
    rel = duckdb.sql("SELECT {'@desc': 'D', '#text': 'c', 'kids': ['x', NULL, '']} AS user")
    shape = shape_of(rel.types[0])
    ((row,),) = rel.fetchall()
    assert RecordWriter("user", shape, 255).records([row]) == [
        '<user desc="D"><kids>x</kids><kids/>c</user>\n'
    ]


def test_writer_refuses_non_text_leaves_with_a_fix() -> None:
    rel = duckdb.sql("SELECT {'expiry': DATE '2023-01-01'} AS user")
    with pytest.raises(ExportError, match="cast it to VARCHAR in the model"):
        shape_of(rel.types[0])
