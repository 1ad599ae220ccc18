"""Searching produced zips: records found by their text, numbered, streamed.

Run as a script, this module times a search of a generated zip of a million
realistic records instead: ``.venv/bin/python -m tests.test_findzip``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from exporter.errors import UsageError, ValidationError
from exporter.findzip import BLOCK_SIZE, HEAD_BYTES, Match, find_in_zip, pretty

PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'


def record(i: int, last_name: str = "Doe", note: str = "", group: str = "Staff") -> str:
    """One record as the exporter writes it: on one line, unless a value holds a newline."""
    return (
        f'<user><record_type desc="Public">PUBLIC</record_type>'
        f"<primary_id>p{i}@univ.edu</primary_id><last_name>{last_name}</last_name>"
        f'<user_group desc="{group}">S</user_group><user_notes><user_note segment_type="Internal">'
        f"<note_text>{note}</note_text></user_note></user_notes></user>\n"
    )


def document(records: list[str], root: str = "userRecords") -> str:
    return f"{PROLOG}<{root}>\n{''.join(records)}</{root}>\n"


def write_zip(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def found(matches: list[Match]) -> list[tuple[str, int]]:
    return [(m.member, m.record) for m in matches]


# ---------------------------------------------------------------- finding and numbering


@pytest.mark.parametrize("block_size", [997, BLOCK_SIZE])
def test_find_names_the_member_and_record_of_a_match_in_the_second_member(
    tmp_path: Path, block_size: int
) -> None:
    first = [record(i) for i in range(1, 2501)]
    second = [record(i) for i in range(2501, 5001)]
    second[1233] = record(3734, last_name="Quixote-Ramírez")
    path = write_zip(
        tmp_path / "staff.zip",
        {"staff_1.xml": document(first), "staff_1_2.xml": document(second)},
    )

    matches = find_in_zip(path, "quixote-ramírez", block_size=block_size)

    assert matches == [Match(path, "staff_1_2.xml", 1234, second[1233].rstrip("\n"))]


def test_find_matches_a_value_read_across_block_boundaries(tmp_path: Path) -> None:
    records = [record(i) for i in range(1, 1001)]
    records[900] = record(901, note="boundary-needle")
    text = document(records)
    assert text.index("boundary-needle") > HEAD_BYTES  # so blocks of 7 bytes cut through it
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": text})

    assert found(find_in_zip(path, "boundary-needle", block_size=7)) == [("staff.xml", 901)]


def test_find_ignores_case_in_ascii_and_other_letters(tmp_path: Path) -> None:
    records = [record(1, last_name="Smith"), record(2, last_name="MÜLLER"), record(3)]
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": document(records)})

    assert found(find_in_zip(path, "sMITH")) == [("staff.xml", 1)]
    assert found(find_in_zip(path, "Müller")) == [("staff.xml", 2)]


def test_find_matches_escaped_characters_in_text_and_attributes(tmp_path: Path) -> None:
    records = [
        record(1, last_name="Smith &amp; Sons &lt;Ltd&gt;"),
        record(2, group="O&apos;Brien &quot;Jr&quot;"),
        record(3, note="AT&#38;T &#x3C;&#060;"),
        record(4, note="Smith and Sons"),
    ]
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": document(records)})

    assert found(find_in_zip(path, "smith & sons <ltd>")) == [("staff.xml", 1)]
    assert found(find_in_zip(path, 'o\'brien "jr"')) == [("staff.xml", 2)]
    assert found(find_in_zip(path, "at&t <<")) == [("staff.xml", 3)]
    assert find_in_zip(path, "amp") == []  # in the escapes, not in the text
    assert find_in_zip(path, "quot") == []
    assert find_in_zip(path, "lt;") == []


def test_find_never_matches_tag_or_attribute_names(tmp_path: Path) -> None:
    records = [record(1), record(2, note="Note for the user desk"), record(3)]
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": document(records)})

    assert found(find_in_zip(path, "user")) == [("staff.xml", 2)]
    assert find_in_zip(path, "segment_type") == []
    assert find_in_zip(path, "user_note") == []


def test_find_returns_one_match_per_record_and_respects_the_limit(tmp_path: Path) -> None:
    records = [record(i, last_name="Doe", note="Doe") for i in range(1, 11)]
    path = write_zip(
        tmp_path / "staff.zip", {"a.xml": document(records), "b.xml": document(records)}
    )

    assert found(find_in_zip(path, "doe", limit=3)) == [("a.xml", 1), ("a.xml", 2), ("a.xml", 3)]
    assert len(find_in_zip(path, "doe", limit=12)) == 12
    assert found(find_in_zip(path, "doe", limit=12))[-2:] == [("b.xml", 1), ("b.xml", 2)]
    assert len(find_in_zip(path, "doe")) == 20


def test_find_returns_nothing_when_no_record_matches(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": document([record(1), record(2)])})

    assert find_in_zip(path, "nobody-here") == []


def test_find_reads_indented_records_with_multiline_text(tmp_path: Path) -> None:
    root = etree.Element("users")
    for i in range(1, 301):
        user = etree.SubElement(root, "user")
        etree.SubElement(user, "primary_id").text = f"p{i}@example.edu"
        etree.SubElement(user, "note").text = f"line one\nline two {i}"
    text = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": text})

    matches = find_in_zip(path, "LINE TWO 250", block_size=100)

    assert found(matches) == [("staff.xml", 250)]
    expected = text.decode()[text.decode().index("<user>\n    <primary_id>p250@") :]
    assert matches[0].xml == expected[: expected.index("</user>") + len("</user>")]
    assert "\n    <note>line one\nline two 250</note>\n" in matches[0].xml


def test_find_takes_the_record_tag_from_the_file(tmp_path: Path) -> None:
    text = (
        f'{PROLOG}<!-- people -->\n<people xmlns="urn:example:people" version="1">'
        '<person id="a"><name>Ann</name></person><person/><person id="Smith"/>'
        "<person><name>Bo Smith</name></person></people>"
    )
    path = write_zip(tmp_path / "people.zip", {"people.xml": text})

    matches = find_in_zip(path, "smith")

    assert found(matches) == [("people.xml", 3), ("people.xml", 4)]
    assert matches[0].xml == '<person id="Smith"/>'
    assert find_in_zip(path, "urn:example") == []  # the root is not a record


def test_find_skips_members_that_are_not_xml_and_members_without_records(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "staff.zip",
        {
            "readme.txt": "Smith",
            "empty.xml": f"{PROLOG}<userRecords/>\n",
            "staff.xml": document([record(1, last_name="Smith")]),
        },
    )

    assert found(find_in_zip(path, "smith")) == [("staff.xml", 1)]


# A law: on XML that lxml writes, the search finds exactly what parsing every record finds.
CHARS = "aAzZüÜ &<>\"';#\n\t\r"
VALUES = st.text(alphabet=CHARS, max_size=8)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(st.tuples(VALUES, VALUES), min_size=1, max_size=6),
    query=st.text(alphabet=CHARS, min_size=1, max_size=3),
    indent=st.booleans(),
    block_size=st.sampled_from([1, 5, 64, BLOCK_SIZE]),
)
def test_find_equals_parsing_every_record(
    tmp_path: Path,
    values: list[tuple[str, str]],
    query: str,
    indent: bool,
    block_size: int,
) -> None:
    root = etree.Element("users")
    for text, attribute in values:
        etree.SubElement(etree.SubElement(root, "user"), "name", desc=attribute).text = text
    xml = etree.tostring(root, pretty_print=indent, xml_declaration=True, encoding="UTF-8")
    path = write_zip(tmp_path / "law.zip", {"law.xml": xml})

    parsed = etree.fromstring(xml)
    expected = [
        number
        for number, user in enumerate(parsed, start=1)
        if any(query.lower() in text.lower() for text in texts_of(user))
    ]
    assert [m.record for m in find_in_zip(path, query, block_size=block_size)] == expected


def texts_of(user: Any) -> Iterator[str]:
    for node in user.iter():
        yield from (node.text or "", *node.attrib.values())
        if node is not user:
            yield node.tail or ""


def test_find_holds_a_few_blocks_in_memory_not_the_member(tmp_path: Path) -> None:
    text = document([record(i) for i in range(1, 150_001)])
    assert len(text) > 30 * BLOCK_SIZE
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": text})
    del text

    tracemalloc.start()
    try:
        matches = find_in_zip(path, "p149999@univ.edu")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert found(matches) == [("staff.xml", 149_999)]
    assert peak < 8 * BLOCK_SIZE


# ---------------------------------------------------------------- pretty


def test_pretty_indents_a_record_and_keeps_its_text() -> None:
    xml = record(1, note="line one\nline two").rstrip("\n")

    lines = pretty(xml).splitlines()

    assert lines[:2] == ["<user>", '  <record_type desc="Public">PUBLIC</record_type>']
    assert "      <note_text>line one" in lines
    assert "line two</note_text>" in lines
    assert etree.tostring(etree.fromstring(pretty(pretty(xml)))) == etree.tostring(
        etree.fromstring(pretty(xml))
    )


def test_pretty_returns_a_record_it_cannot_parse_unchanged() -> None:
    assert pretty("<ns:user><x/></ns:user>") == "<ns:user><x/></ns:user>"


# ---------------------------------------------------------------- errors


def test_find_error_for_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.zip"
    with pytest.raises(ValidationError) as caught:
        find_in_zip(path, "x")
    assert str(caught.value) == f"{path}: cannot search: file not found"


def test_find_error_for_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "staff.zip"
    path.write_text("not a zip\n")
    with pytest.raises(ValidationError) as caught:
        find_in_zip(path, "x")
    assert str(caught.value) == (
        f"{path}: cannot search: not a readable zip file (File is not a zip file)"
    )


def test_find_error_for_a_zip_without_xml(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "staff.zip", {"staff.csv": "a,b\n"})
    with pytest.raises(ValidationError) as caught:
        find_in_zip(path, "x")
    assert str(caught.value) == f"{path}: cannot search: the zip holds no XML file (*.xml)"


def test_find_error_for_a_member_that_is_not_xml(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": "Smith, Jane\n"})
    with pytest.raises(ValidationError) as caught:
        find_in_zip(path, "smith")
    assert str(caught.value) == (
        f"{path}: cannot search staff.xml: no XML root element at its start (UTF-8 expected)"
    )


def test_find_error_for_a_record_cut_short(tmp_path: Path) -> None:
    text = f"{PROLOG}<users><user><name>Smith</name></user><user><name>Smith</name>"
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": text})
    with pytest.raises(ValidationError) as caught:
        find_in_zip(path, "smith", limit=2)
    at = text.index("<user><name>Smith", len(PROLOG) + 20)
    assert str(caught.value) == (
        f"{path}: cannot search staff.xml: the record at byte {at} has no end tag </user>"
    )


def test_find_error_for_a_corrupt_member(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "staff.zip", {"staff.xml": document([record(1)] * 50)})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    body = info.header_offset + 30 + len(info.filename) + 40
    data[body : body + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(ValidationError) as caught:
        find_in_zip(path, "doe")
    assert str(caught.value).startswith(f"{path}: cannot search staff.xml: ")


@pytest.mark.parametrize(
    ("query", "limit", "message"),
    [
        ("", 50, "the search text is empty"),
        ("x", 0, "limit and block_size must be at least 1, not 0, 1048576"),
    ],
)
def test_find_usage_errors(tmp_path: Path, query: str, limit: int, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        find_in_zip(tmp_path / "any.zip", query, limit)
    assert str(caught.value) == message


# ---------------------------------------------------------------- timing (run as a script)

FIRST = ["Jane", "John", "Gina", "Wei", "María", "Oluwaseun", "Anna", "Pierre", "Li", "Sven"]
LAST = ["Doe", "Smith", "Grad", "Zhang", "García", "Adeyemi", "Müller", "Dubois", "Nguyen"]


def realistic_record(i: int, rnd: random.Random) -> str:
    """An Alma user of about 2.3 KB, as the exporter writes it."""
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    pid = f"{first[0].lower()}{last.lower()}{i}@example.edu"
    n = rnd.randint
    return (
        '<user><record_type desc="Public">PUBLIC</record_type>'
        f"<primary_id>{pid}</primary_id><first_name>{first}</first_name><middle_name/>"
        f'<last_name>{last}</last_name><user_title desc=""/>'
        f'<job_category desc="Staff">S{n(1, 99)}</job_category>'
        "<job_description>Library assistant, circulation &amp; reserves</job_description>"
        f'<user_group desc="Staff">{n(10, 40)}</user_group><campus_code desc=""/><web_site_url/>'
        '<cataloger_level desc="[00] Default Level">00</cataloger_level>'
        '<preferred_language desc="English">en</preferred_language>'
        f"<expiry_date>2027-0{n(1, 9)}-01Z</expiry_date><purge_date>2029-09-01Z</purge_date>"
        '<account_type desc="External">EXTERNAL</account_type><external_id>SIS</external_id>'
        '<password/><status desc="Active">ACTIVE</status><contact_info><addresses>'
        '<address preferred="true" segment_type="External">'
        f"<line1>{n(1, 999)} Massachusetts Ave, Room {n(1, 20)}-{n(100, 999)}</line1>"
        "<line3>MIT</line3><city>Cambridge</city><state_province>MA</state_province>"
        f'<postal_code>02{n(100, 199)}</postal_code><country desc=""/>'
        "<address_note>User Address Type: Mailing address</address_note>"
        '<address_types><address_type desc="Work">work</address_type></address_types>'
        '</address></addresses><emails><email preferred="true" segment_type="External">'
        f"<email_address>{pid}</email_address>"
        '<email_types><email_type desc="Work">work</email_type></email_types></email></emails>'
        '<phones><phone preferred="true" preferred_sms="false" segment_type="External">'
        f"<phone_number>617-{n(200, 999)}-{n(1000, 9999)}</phone_number>"
        '<phone_types><phone_type desc="Office">office</phone_type></phone_types></phone>'
        "</phones></contact_info><pref_first_name/><pref_middle_name/><pref_last_name/>"
        '<pref_name_suffix/><user_identifiers><user_identifier segment_type="External">'
        f'<id_type desc="MIT ID">02</id_type><value>{n(10**8, 10**9 - 1)}</value>'
        '<status>ACTIVE</status></user_identifier><user_identifier segment_type="External">'
        f'<id_type desc="Barcode">01</id_type><value>3908{n(10**9, 10**10 - 1)}</value>'
        "<status>ACTIVE</status></user_identifier></user_identifiers><user_roles><user_role>"
        '<status desc="Active">ACTIVE</status>'
        '<scope desc="Massachusetts Institute of Technology">01MIT_INST</scope>'
        '<role_type desc="Patron">200</role_type><parameters/></user_role></user_roles>'
        '<user_blocks/><user_notes/><user_statistics><user_statistic segment_type="External">'
        f'<statistic_category desc="Dept title">W{n(1, 99)}</statistic_category>'
        '<category_type desc="Department">DEPT</category_type></user_statistic>'
        "</user_statistics></user>\n"
    )


def write_realistic_zip(path: Path, records: int) -> str:
    """Write `records` users split like the exporter's members; return the last one's id."""
    from exporter.package import Limits

    limits, rnd = Limits(), random.Random(1)
    head, tail = f"{PROLOG}<userRecords>\n".encode(), b"</userRecords>\n"
    with zipfile.ZipFile(
        path, "w", zipfile.ZIP_DEFLATED, compresslevel=limits.compresslevel
    ) as archive:
        part, size, out = 0, limits.max_xml_bytes, None
        for i in range(1, records + 1):
            data = realistic_record(i, rnd).encode()
            if size + len(data) + len(tail) > limits.max_xml_bytes:
                if out is not None:
                    out.write(tail)
                    out.close()
                part += 1
                name = "staff_2026-11-25_12.00.00" + (f"_{part}" if part > 1 else "") + ".xml"
                out = archive.open(name, "w", force_zip64=True)
                out.write(head)
                size = len(head)
            assert out is not None
            out.write(data)
            size += len(data)
        if out is not None:
            out.write(tail)
            out.close()
    return data.decode().split("<primary_id>")[1].split("<")[0]


def timed_search(path: Path, query: str) -> dict[str, Any]:
    """Search in a fresh process, so its peak RSS is the search's alone.

    The peak is Linux's VmHWM: getrusage's ru_maxrss would carry this process's own
    peak over into the child.
    """
    code = (
        "import json, re, sys, time\n"
        "from pathlib import Path\n"
        "from exporter.findzip import find_in_zip\n"
        "start = time.perf_counter()\n"
        "matches = find_in_zip(Path(sys.argv[1]), sys.argv[2])\n"
        "seconds = time.perf_counter() - start\n"
        "peak = re.search(r'VmHWM:\\s*(\\d+)', Path('/proc/self/status').read_text())\n"
        "print(json.dumps({'seconds': round(seconds, 2),\n"
        "  'peak_rss_mib': int(peak[1]) // 1024 if peak else None,\n"
        "  'matches': [[m.member, m.record] for m in matches]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), query], capture_output=True, text=True, check=True
    )
    return {"query": query, **json.loads(done.stdout)}


def main() -> None:
    """Generate a zip of realistic records and time rare-query searches of it."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--zip", type=Path, help="keep the zip here (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.zip or Path(folder) / "staff.zip"
        started = time.perf_counter()
        last_id = write_realistic_zip(path, args.records)
        with zipfile.ZipFile(path) as archive:
            xml_bytes = sum(info.file_size for info in archive.infolist())
        print(
            f"wrote {args.records:,} records, {xml_bytes / 1e9:.2f} GB of XML, "
            f"{path.stat().st_size / 1e6:.0f} MB zipped, in {time.perf_counter() - started:.0f}s"
        )
        # The last record (numbering re-reads the member), a miss, a miss without letters.
        for query in (last_id, "no-such-patron@example.edu", "00000000000000"):
            print(json.dumps(timed_search(path, query)))


if __name__ == "__main__":
    main()
