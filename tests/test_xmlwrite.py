"""The SQL writer against its definition, xmltodict.unparse on the row without NULLs."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.errors import ExportError
from exporter.xmlsql import compile_record, part_facts
from exporter.xmlwrite import ILLEGAL_XML_CHARS, Sanitizer, reference_xml, shape_of

NAMES = st.sampled_from(["a", "b", "line1", "user_group", "x_y", "phone"])
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from("&<>\"'\n\r\t\x0b\x01\ufffe"),
    max_size=12,
)


@st.composite
def shapes(draw: st.DrawFn, depth: int = 0) -> tuple[Any, ...]:
    """A random nested record type: text leaves, lists, structs with attributes and text."""
    kind = (
        "varchar" if depth >= 3 else draw(st.sampled_from(["varchar", "list", "struct", "struct"]))
    )
    if kind == "varchar":
        return ("varchar",)
    if kind == "list":
        return ("list", draw(shapes(depth + 1)))
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    fields: list[tuple[str, Any]] = [(n, draw(shapes(depth + 1))) for n in names]
    for attr in draw(st.lists(st.sampled_from(["@desc", "@preferred"]), max_size=2, unique=True)):
        fields.insert(draw(st.integers(0, len(fields))), (attr, ("varchar",)))
    if draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), ("#text", ("varchar",)))
    return ("struct", tuple(fields))


@st.composite
def values(draw: st.DrawFn, shape: tuple[Any, ...], constant: Any = None) -> Any:
    """A random value of a shape, NULLs included; often the same as `constant`."""
    if constant is not None and draw(st.booleans()):
        return constant
    if draw(st.integers(0, 5)) == 0:
        return None
    if shape[0] == "varchar":
        return draw(TEXT)
    if shape[0] == "list":
        return draw(st.lists(values(shape[1]), max_size=5))
    return {name: draw(values(sub)) for name, sub in shape[1]}


def duck_type(shape: tuple[Any, ...]) -> str:
    if shape[0] == "varchar":
        return "VARCHAR"
    if shape[0] == "list":
        return duck_type(shape[1]) + "[]"
    return "STRUCT(" + ", ".join(f'"{n}" {duck_type(s)}' for n, s in shape[1]) + ")"


@st.composite
def tables(draw: st.DrawFn) -> tuple[tuple[Any, ...], list[Any]]:
    """A record type and a few rows of it, sharing parts so that constants are found."""
    shape = draw(shapes(1).filter(lambda s: s[0] == "struct"))
    first = draw(values(shape))
    rows = [first] + draw(st.lists(values(shape, first), min_size=0, max_size=3))
    return shape, [r if r is not None else {n: None for n, _ in shape[1]} for r in rows]


def write_with_sql(shape: tuple[Any, ...], rows: list[Any], max_length: int) -> list[Any]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (i INTEGER, r {duck_type(shape)})")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(rows)))
    assert shape_of(con.table("t").types[1]) == shape
    source = "SELECT r, i FROM t"
    record = compile_record("user", shape, max_length, part_facts(con, source, [], shape))
    return con.execute(
        f"SELECT {record.xml}, {record.truncated}, {record.removed} "
        f"FROM (SELECT r, i, {record.fast} AS x, {record.dirty} AS dirty FROM ({source})) "
        "ORDER BY i"
    ).fetchall()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(min_value=1, max_value=8))
def test_sql_writer_equals_xmltodict_reference(
    case: tuple[Any, list[Any]], max_length: int
) -> None:
    shape, rows = case
    for row, (xml, truncated, removed) in zip(
        rows, write_with_sql(shape, rows, max_length), strict=True
    ):
        sanitizer = Sanitizer(max_length)
        assert xml == reference_xml("user", sanitizer.sanitize(row)) + "\n"
        assert (truncated, removed) == (sanitizer.truncated_values, sanitizer.removed_chars)
        assert not ILLEGAL_XML_CHARS.search(xml)


def test_sql_writer_counts_removed_characters_and_cut_values() -> None:
    shape = ("struct", (("@desc", ("varchar",)), ("name", ("varchar",))))
    rows = [{"@desc": "a\x01b", "name": "abcdefgh"}, {"@desc": "ok", "name": "\x0bxyz123"}]
    assert write_with_sql(shape, rows, 5) == [
        ('<user desc="ab"><name>abcde</name></user>\n', 1, 1),
        ('<user desc="ok"><name>xyz12</name></user>\n', 1, 1),
    ]


def test_sql_writer_cuts_only_parts_with_a_long_value() -> None:
    shape = ("struct", (("name", ("varchar",)), ("note", ("varchar",))))
    rows = [{"name": "Ann", "note": "short"}, {"name": "Bo", "note": "far too long"}]
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (r {duck_type(shape)})")
    con.executemany("INSERT INTO t VALUES (?)", [[r] for r in rows])
    facts = part_facts(con, "SELECT r FROM t", [], shape)
    assert facts.widest == {"r['name']": 3, "r['note']": 12}
    fast = compile_record("user", shape, 8, facts).fast
    assert "left(r['note'], 8)" in fast
    assert "left(r['name']" not in fast
    assert write_with_sql(shape, rows, 8) == [
        ("<user><name>Ann</name><note>short</note></user>\n", 0, 0),
        ("<user><name>Bo</name><note>far too </note></user>\n", 1, 0),
    ]


def test_sql_writer_finds_forbidden_characters_in_any_list_item() -> None:
    # the fifth item is written by the lambda, not by index: it must still be found
    shape = ("struct", (("tag", ("list", ("varchar",))),))
    rows = [{"tag": ["a", "b", "c", "d", "e\x01f"]}, {"tag": ["a", "b", "c", "d", "ef"]}]
    assert write_with_sql(shape, rows, 10) == [
        ("<user><tag>a</tag><tag>b</tag><tag>c</tag><tag>d</tag><tag>ef</tag></user>\n", 0, 1),
        ("<user><tag>a</tag><tag>b</tag><tag>c</tag><tag>d</tag><tag>ef</tag></user>\n", 0, 0),
    ]


def test_sql_writer_inlines_parts_that_never_change() -> None:
    shape = (
        "struct",
        (
            ("kind", ("struct", (("@desc", ("varchar",)), ("#text", ("varchar",))))),
            ("id", ("varchar",)),
        ),
    )
    rows = [{"kind": {"@desc": "Public", "#text": "P"}, "id": str(i)} for i in range(3)]
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (r {duck_type(shape)})")
    con.executemany("INSERT INTO t VALUES (?)", [[r] for r in rows])
    facts = part_facts(con, "SELECT r FROM t", [], shape)
    assert facts.constants == {
        "r['kind']": {"@desc": "Public", "#text": "P"},
        "r['kind']['@desc']": "Public",
        "r['kind']['#text']": "P",
    }
    assert '<kind desc="Public">P</kind>' in compile_record("user", shape, 255, facts).fast


def test_writer_refuses_non_text_leaves_with_a_fix() -> None:
    rel = duckdb.sql("SELECT {'expiry': DATE '2023-01-01'} AS user")
    with pytest.raises(ExportError, match="cast it to VARCHAR in the model"):
        shape_of(rel.types[0])
