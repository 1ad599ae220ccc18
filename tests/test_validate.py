"""exporter.validate and schemas/user.xsd: valid shapes pass, each kind of mistake is
reported with its element and line, and large files stream."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.errors import ValidationError
from exporter.validate import (
    MAX_PROBLEMS_PER_MEMBER,
    Problem,
    count_users,
    load_schema,
    validate_zip,
    validate_zips,
)

ROOT = Path(__file__).resolve().parent.parent
XSD = ROOT / "schemas" / "user.xsd"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "validate"
STAFF_AND_STUDENT = FIXTURES / "staff_and_student.xml"
PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'


# ---------------------------------------------------------------- helpers


def fixture_text() -> str:
    return STAFF_AND_STUDENT.read_text(encoding="utf-8")


def users_of(text: str) -> list[str]:
    """The `<user>...</user>` blocks of a document, in order."""
    return re.findall(r"  <user>.*?</user>", text, flags=re.DOTALL)


def compact(xml: str) -> str:
    """Drop the whitespace between tags: one line, as an exporter may write it."""
    return re.sub(r">\s+<", "><", xml).strip()


def make_zip(tmp_path: Path, members: dict[str, str], name: str = "staff.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            archive.writestr(member, text.encode("utf-8"))
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th occurrence of `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    return list(validate_zip(make_zip(tmp_path, {"staff.xml": text}), XSD))


def replace_nth(text: str, old: str, new: str, occurrence: int = 1) -> str:
    index = -1
    for _ in range(occurrence):
        index = text.index(old, index + 1)
    return text[:index] + new + text[index + len(old) :]


# ---------------------------------------------------------------- valid documents


def test_fixture_staff_and_student_is_valid(tmp_path: Path) -> None:
    assert problems_of(tmp_path, fixture_text()) == []


def test_root_users_is_valid_too(tmp_path: Path) -> None:
    text = fixture_text().replace("<userRecords>", "<users>").replace("</userRecords>", "</users>")
    assert problems_of(tmp_path, text) == []


def test_document_on_one_line_is_valid(tmp_path: Path) -> None:
    text = PROLOG + compact(fixture_text().split("\n", 1)[1])
    assert text.count("\n") == 1
    assert problems_of(tmp_path, text) == []


def test_empty_root_is_valid(tmp_path: Path) -> None:
    assert problems_of(tmp_path, PROLOG + "<userRecords/>\n") == []


def test_several_members_and_zips(tmp_path: Path) -> None:
    text = fixture_text()
    one = make_zip(tmp_path, {"staff.xml": text, "student.xml": text}, "one.zip")
    broken = text.replace("<is_researcher>false", "<is_researcher>no")
    two = make_zip(tmp_path, {"staff.xml": broken}, "two.zip")
    problems = validate_zips([one, two], XSD)
    assert [(p.zip_path, p.member) for p in problems] == [(two, "staff.xml")]
    assert "is_researcher" in problems[0].message


@pytest.mark.parametrize(
    "old, new",
    [
        ("<password/>", "<password/><force_password_change>true</force_password_change>"),
        (
            '<status desc="Active">ACTIVE</status>\n    <contact_info>',
            '<status desc="Active">ACTIVE</status><status_date>2023-03-01</status_date>'
            "<contact_info>",
        ),
        (
            "<line3>MIT</line3>",
            "<line3>MIT</line3><start_date>2023-01-01Z</start_date><end_date>2024-01-01</end_date>",
        ),
        (
            "<email_address>jdoe@mit.edu</email_address>",
            "<email_address>jdoe@mit.edu</email_address><description>work mail</description>",
        ),
        (
            "<user_blocks/>",
            '<user_blocks><user_block segment_type="External"><block_type desc="General">GENERAL'
            '</block_type><block_description desc="Lost">01</block_description>'
            "<block_status>ACTIVE</block_status><expiry_date>2024-01-01T00:00:00Z</expiry_date>"
            "</user_block></user_blocks>",
        ),
        (
            "<user_notes/>",
            '<user_notes><user_note segment_type="Internal"><note_type desc="General">POPUP'
            "</note_type><note_text>" + "n" * 1000 + "</note_text><user_viewable>false"
            "</user_viewable></user_note></user_notes>",
        ),
        (
            "<proxy_for_users/>",
            "<proxy_for_users><proxy_for_user><primary_id>BOSS@MIT.EDU</primary_id>"
            "<full_name>The Boss</full_name></proxy_for_user></proxy_for_users>",
        ),
        (
            "<parameters/>",
            '<parameters><parameter><type desc="Service unit">ServiceUnit</type>'
            '<value desc="Desk">DESK</value></parameter></parameters>',
        ),
        ("<first_name>Jane</first_name>", "<first_name>" + "é" * 255 + "</first_name>"),
        # xs:all: any order inside user
        (
            '<record_type desc="Public">PUBLIC</record_type>\n    <primary_id>JDOE@MIT.EDU'
            "</primary_id>",
            '<primary_id>JDOE@MIT.EDU</primary_id><record_type desc="Public">PUBLIC</record_type>',
        ),
    ],
    ids=[
        "force_password_change",
        "status_date",
        "address_dates",
        "email_description",
        "user_block",
        "user_note",
        "proxy_for_user",
        "role_parameter",
        "255_characters",
        "any_order_in_user",
    ],
)
def test_optional_alma_parts_are_valid(tmp_path: Path, old: str, new: str) -> None:
    text = fixture_text()
    assert old in text
    assert problems_of(tmp_path, text.replace(old, new, 1)) == []


# ---------------------------------------------------------------- invalid documents

# Each case: a change to the fixture, the element the message must name, and the text
# whose line the problem must point at (with its occurrence in the changed document).
Case = tuple[Callable[[str], str], str, str, int]


def _emails_before_addresses(text: str) -> str:
    # the student (second user) has <emails/>; move it in front of <addresses>
    text = text.replace("      <emails/>\n", "")
    return replace_nth(text, "      <addresses>", "      <emails/>\n      <addresses>", 2)


INVALID: dict[str, Case] = {
    "empty_expiry_date": (
        lambda t: t.replace("<expiry_date>2023-09-01Z</expiry_date>", "<expiry_date/>", 1),
        "expiry_date",
        "<expiry_date/>",
        1,
    ),
    "empty_is_researcher": (
        lambda t: t.replace("<is_researcher>false</is_researcher>", "<is_researcher/>"),
        "is_researcher",
        "<is_researcher/>",
        1,
    ),
    "empty_status_date": (
        lambda t: replace_nth(t, "<password/>", "<password/><status_date/>", 2),
        "status_date",
        "<status_date/>",
        1,
    ),
    "bad_date": (
        lambda t: t.replace(
            "<purge_date>2025-09-01Z</purge_date>", "<purge_date>09/01/2025</purge_date>", 1
        ),
        "purge_date",
        "<purge_date>09/01/2025",
        1,
    ),
    "emails_before_addresses": (
        _emails_before_addresses,
        "addresses",
        "      <addresses>",
        2,
    ),
    "first_name_256_characters": (
        lambda t: t.replace(
            "<first_name>Jane</first_name>", "<first_name>" + "x" * 256 + "</first_name>"
        ),
        "first_name",
        "<first_name>xxx",
        1,
    ),
    "unknown_element": (
        lambda t: t.replace(
            "<first_name>Alex</first_name>",
            "<first_name>Alex</first_name>\n    <nickname>Al</nickname>",
        ),
        "nickname",
        "<nickname>",
        1,
    ),
    "email_without_email_address": (
        lambda t: t.replace("          <email_address>jdoe@mit.edu</email_address>\n", ""),
        "email_address",
        "<email preferred",
        1,
    ),
    "phone_without_phone_types": (
        lambda t: replace_nth(
            t,
            '<phone_types>\n            <phone_type desc="Home">home</phone_type>\n'
            "          </phone_types>",
            "",
            1,
        ),
        "phone_types",
        '<phone preferred="false"',
        1,
    ),
    "address_without_address_types": (
        lambda t: replace_nth(
            t,
            '<address_types>\n            <address_type desc="Work">work</address_type>\n'
            "          </address_types>",
            "",
            1,
        ),
        "address_types",
        "<address preferred",
        1,
    ),
    "user_identifier_without_value": (
        lambda t: t.replace("        <value>987654321</value>\n", ""),
        "value",
        "<user_identifier segment_type",
        3,
    ),
    "user_statistic_without_category": (
        lambda t: t.replace('<statistic_category desc="">ZZ</statistic_category>', ""),
        "statistic_category",
        "<user_statistic segment_type",
        2,
    ),
    "bad_boolean_attribute": (
        lambda t: replace_nth(t, 'preferred="true"', 'preferred="yes"', 1),
        "address",
        'preferred="yes"',
        1,
    ),
    "malformed_unclosed_tag": (
        lambda t: t.replace("<first_name>Alex</first_name>", "<first_name>Alex"),
        "first_name",
        "  </user>",
        2,
    ),
    "control_character": (
        lambda t: t.replace("<last_name>Doe</last_name>", "<last_name>Do\x01e</last_name>"),
        "Char",
        "<last_name>Do",
        1,
    ),
    "unknown_root": (
        lambda t: t.replace("userRecords>", "patrons>"),
        "patrons",
        "<patrons>",
        1,
    ),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_document_reports_element_and_line(tmp_path: Path, case: str) -> None:
    change, element, needle, occurrence = INVALID[case]
    text = change(fixture_text())
    assert text != fixture_text()
    problems = problems_of(tmp_path, text)

    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    line = line_of(text, needle, occurrence)
    assert element in problem.message
    assert problem.member == "staff.xml"
    assert problem.line == line
    assert str(problem).startswith(f"{tmp_path / 'staff.zip'}:staff.xml:{line}: ")


def test_schema_problem_names_the_user(tmp_path: Path) -> None:
    text = fixture_text().replace("<is_researcher>false</is_researcher>", "<is_researcher/>")
    (problem,) = problems_of(tmp_path, text)
    assert "(user #1)" in problem.message


def test_problems_in_a_one_line_document(tmp_path: Path) -> None:
    body = compact(fixture_text().split("\n", 1)[1])
    text = PROLOG + body.replace("<expiry_date>2023-09-01Z</expiry_date>", "<expiry_date/>")
    problems = problems_of(tmp_path, text)
    assert [(p.line, "expiry_date" in p.message) for p in problems] == [(2, True), (2, True)]
    assert "(user #2)" in problems[1].message


def test_schema_problem_before_a_syntax_error_reports_both(tmp_path: Path) -> None:
    # libxml2's streaming validation hides the syntax error behind the schema error
    text = fixture_text().replace("<expiry_date>2023-09-01Z</expiry_date>", "<expiry_date/>", 1)
    text = text.replace("<first_name>Alex</first_name>", "<first_name>Alex")
    problems = problems_of(tmp_path, text)
    assert [p.line for p in problems] == [
        line_of(text, "<expiry_date/>"),
        line_of(text, "  </user>", 2),
    ]
    assert "expiry_date" in problems[0].message
    assert "not well-formed" in problems[1].message


def test_text_in_root_is_reported(tmp_path: Path) -> None:
    text = fixture_text().replace("  </user>\n  <user>", "  </user>\n  stray\n  <user>")
    (problem,) = problems_of(tmp_path, text)
    assert "userRecords" in problem.message
    assert problem.line == line_of(text, "<userRecords>")


def test_missing_utf8_declaration(tmp_path: Path) -> None:
    text = fixture_text().split("\n", 1)[1]
    (problem,) = problems_of(tmp_path, text)
    assert problem.line == 1
    assert "UTF-8" in problem.message


def test_single_quoted_declaration_is_accepted(tmp_path: Path) -> None:
    text = "<?xml version='1.0' encoding='utf-8'?>\n" + fixture_text().split("\n", 1)[1]
    assert problems_of(tmp_path, text) == []


def test_problems_per_member_are_capped(tmp_path: Path) -> None:
    staff = users_of(fixture_text())[0].replace(
        "<expiry_date>2023-09-01Z</expiry_date>", "<expiry_date/>"
    )
    text = PROLOG + "<userRecords>\n" + "\n".join([staff] * 30) + "\n</userRecords>\n"
    problems = problems_of(tmp_path, text)
    assert len(problems) == MAX_PROBLEMS_PER_MEMBER + 1
    assert all("expiry_date" in p.message for p in problems[:-1])
    assert problems[-1].line is None
    assert "stopped at the limit" in problems[-1].message


def test_error_no_record_can_show_is_reported_without_line(tmp_path: Path) -> None:
    # a constraint spanning users is seen by the streaming pass only
    xsd = tmp_path / "unique.xsd"
    xsd.write_text(
        XSD.read_text(encoding="utf-8").replace(
            '<xs:element name="userRecords" type="userList"/>',
            '<xs:element name="userRecords" type="userList">'
            '<xs:unique name="onePrimaryId"><xs:selector xpath="user"/>'
            '<xs:field xpath="primary_id"/></xs:unique></xs:element>',
        ),
        encoding="utf-8",
    )
    text = fixture_text().replace("ASMITH@MIT.EDU", "JDOE@MIT.EDU")
    path = make_zip(tmp_path, {"staff.xml": text})
    (problem,) = validate_zip(path, xsd)
    assert problem.line is None
    assert "onePrimaryId" in problem.message or "Duplicate" in problem.message
    assert (
        list(validate_zip(make_zip(tmp_path, {"staff.xml": fixture_text()}, "ok.zip"), xsd)) == []
    )


# ---------------------------------------------------------------- broken zips


def test_missing_zip(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.zip"
    assert [(p.member, p.line, p.message) for p in validate_zip(path, XSD)] == [
        ("", None, "file not found")
    ]


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "staff.zip"
    path.write_text(fixture_text(), encoding="utf-8")
    (problem,) = validate_zip(path, XSD)
    assert problem.member == ""
    assert problem.line is None
    assert "not a readable zip" in problem.message
    assert str(problem) == f"{path}: {problem.message}"


def test_zip_without_xml(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"README.txt": "hello", "staff.XML.bak": "<x/>"})
    (problem,) = validate_zip(path, XSD)
    assert "no XML file" in problem.message


def test_empty_member(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "")
    assert ["UTF-8" in p.message for p in problems] == [True, False]
    assert "not well-formed" in problems[1].message
    (problem,) = validate_zip(make_zip(tmp_path, {"staff.xml": PROLOG}, "prolog.zip"), XSD)
    assert "not well-formed" in problem.message


def test_corrupt_member(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"staff.xml": fixture_text() * 3})
    data = bytearray(path.read_bytes())
    start = data.index(b"staff.xml") + len(b"staff.xml") + 40  # inside the compressed data
    data[start : start + 20] = b"\x00" * 20
    path.write_bytes(bytes(data))
    problems = list(validate_zip(path, XSD))
    assert problems
    assert all(p.member == "staff.xml" for p in problems)


def test_broken_schema_raises(tmp_path: Path) -> None:
    xsd = tmp_path / "broken.xsd"
    xsd.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><oops/></xs:schema>")
    with pytest.raises(ValidationError):
        validate_zip(make_zip(tmp_path, {"staff.xml": fixture_text()}), xsd)
    with pytest.raises(ValidationError):
        validate_zips([], tmp_path / "missing.xsd")


def test_schema_is_loaded_once() -> None:
    assert load_schema(XSD) is load_schema(XSD)


# ---------------------------------------------------------------- the Problem type


def test_problem_str() -> None:
    zip_path = Path("out/staff.zip")
    assert str(Problem(zip_path, "staff.xml", 12, "bad")) == "out/staff.zip:staff.xml:12: bad"
    assert str(Problem(zip_path, "staff.xml", None, "bad")) == "out/staff.zip:staff.xml: bad"
    assert str(Problem(zip_path, "", None, "bad")) == "out/staff.zip: bad"


# ---------------------------------------------------------------- large files


def _write_users(path: Path, count: int, bad: int | None = None) -> None:
    """A zip with `count` users, one per line, written as a stream."""
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("staff.xml", "w") as out,
    ):
        out.write(f"{PROLOG}<userRecords>\n".encode())
        for number in range(1, count + 1):
            expiry = "" if number == bad else "2023-09-01Z"
            out.write(
                f'<user><record_type desc="Public">PUBLIC</record_type>'
                f"<primary_id>U{number}@MIT.EDU</primary_id><first_name>F{number}</first_name>"
                f"<last_name>L</last_name><user_group>31</user_group>"
                f"<expiry_date>{expiry}</expiry_date>"
                f'<user_identifiers><user_identifier segment_type="External">'
                f'<id_type desc="MIT ID">02</id_type><value>{number:09d}</value>'
                f"</user_identifier></user_identifiers></user>\n".encode()
            )
        out.write(b"</userRecords>\n")


def test_twenty_thousand_users_stream(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    _write_users(path, 20_000)
    assert list(validate_zip(path, XSD)) == []
    assert count_users(path) == 20_000


def test_late_problem_in_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "late.zip"
    _write_users(path, 5_000, bad=4_990)
    (problem,) = validate_zip(path, XSD)
    assert problem.line == 4_990 + 2  # prolog and root come first
    assert "expiry_date" in problem.message
    assert "(user #4990)" in problem.message


def test_count_users_of_fixture_and_several_members(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"a.xml": fixture_text(), "b.xml": fixture_text(), "c.txt": "x"})
    assert count_users(path) == 4


def test_count_users_raises_on_bad_input(tmp_path: Path) -> None:
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"nope")
    with pytest.raises(ValidationError):
        count_users(not_zip)
    with pytest.raises(ValidationError):
        count_users(make_zip(tmp_path, {"a.xml": "<userRecords><user>"}, "bad.zip"))
