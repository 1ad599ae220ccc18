"""Every rule of the predecessor, on the hand-written rules fixture (as of 2023-03-01)."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
import xmltodict

from tests.conftest import FIXTURES, Run


def element(user: dict[str, Any], path: str) -> Any:
    """Follow a slash-separated path of element names through a parsed user."""
    node: Any = user
    for part in path.split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize("primary_id", ["JDOE@MIT.EDU", "GRAD@MIT.EDU"])
def test_rules_full_record_equals_hand_written_expectation(rules_run: Run, primary_id: str) -> None:
    expected = xmltodict.parse((FIXTURES / "rules" / "expected" / f"{primary_id}.xml").read_bytes())
    assert rules_run.users[primary_id] == expected["user"]


def test_rules_exported_and_rejected_people(rules_run: Run) -> None:
    assert sorted(rules_run.users) == sorted(
        [
            "JDOE@MIT.EDU",
            "NULLVALS@MIT.EDU",
            "DUPSTAFF@MIT.EDU",
            "PREFS@MIT.EDU",
            "NONEBC@MIT.EDU",
            "HOSTILE@MIT.EDU",
            "SEMP@MIT.EDU",
            "GRAD@MIT.EDU",
            "CROSS@MIT.EDU",
            "UNDER@MIT.EDU",
            "NOYEAR@MIT.EDU",
            "NIHONLY@MIT.EDU",
            "DUPSTU@MIT.EDU",
        ]
    )


def test_rules_each_type_has_its_own_zip(rules_run: Run) -> None:
    from tests.conftest import read_users

    assert set(rules_run.zips) == {"staff", "student"}
    assert "SEMP@MIT.EDU" in read_users(rules_run.zips["staff"])
    assert "SEMP@MIT.EDU" not in read_users(rules_run.zips["student"])


CHECKS = [
    # primary id, path, expected value: one row per rule
    ("NULLVALS@MIT.EDU", "first_name", None),  # legal names "" when NULL
    ("NULLVALS@MIT.EDU", "contact_info/emails", None),  # no email: emails written empty
    ("NULLVALS@MIT.EDU", "contact_info/phones", None),  # no phone: phones written empty
    (
        "NULLVALS@MIT.EDU",
        "contact_info/addresses/address/line1",
        "NO ADDRESS ON FILE IN DATA WAREHOUSE",
    ),
    ("NULLVALS@MIT.EDU", "user_group", {"@desc": ""}),
    (
        "NULLVALS@MIT.EDU",
        "user_statistics/user_statistic/statistic_category",
        {"@desc": "Unknown", "#text": "ZQ"},
    ),
    (
        "NONEBC@MIT.EDU",
        "user_statistics/user_statistic/statistic_category",
        {"@desc": "Unmapped Lab", "#text": "ZQ"},
    ),
    ("NONEBC@MIT.EDU", "contact_info/phones/phone/phone_number", "x617-555-1234 ext 155-555-55555"),
    ("PREFS@MIT.EDU", "contact_info/phones/phone/phone_number", "abcd"),
    ("PREFS@MIT.EDU", "pref_first_name", None),  # equal to legal ignoring case
    ("PREFS@MIT.EDU", "pref_middle_name", None),  # blank
    ("PREFS@MIT.EDU", "pref_last_name", "Smith"),  # trimmed, differs
    ("DUPSTAFF@MIT.EDU", "first_name", "New"),  # latest appointment end date kept
    ("DUPSTU@MIT.EDU", "first_name", "First"),  # smallest MIT ID kept
    ("HOSTILE@MIT.EDU", "first_name", "Zoë Ann"),  # control character removed
    ("HOSTILE@MIT.EDU", "last_name", 'O\'Brien & <Sons> "Q"'),
    ("HOSTILE@MIT.EDU", "contact_info/addresses/address/line1", 'Room "5" & <6>'),
    ("CROSS@MIT.EDU", "user_group", "54"),  # cross-registered overrides the year
    (
        "CROSS@MIT.EDU",
        "contact_info/phones/phone/phone_number",
        "617-617-6176",
    ),  # TERM_PHONE2 as office
    ("CROSS@MIT.EDU", "contact_info/phones/phone/@preferred", "true"),
    ("UNDER@MIT.EDU", "user_group", "31"),
    ("UNDER@MIT.EDU", "contact_info/phones", None),
    ("UNDER@MIT.EDU", "contact_info/addresses/address/postal_code", "02139"),
    (
        "UNDER@MIT.EDU",
        "contact_info/addresses/address/line1",
        "NO ADDRESS ON FILE IN DATA WAREHOUSE",
    ),
    (
        "UNDER@MIT.EDU",
        "user_statistics/user_statistic/statistic_category",
        {"@desc": "", "#text": "ZZ"},
    ),
    ("NOYEAR@MIT.EDU", "user_group", None),  # unknown year: empty
    ("NOYEAR@MIT.EDU", "contact_info/phones/phone/phone_number", "777-777-7777"),  # no home phone
    (
        "NOYEAR@MIT.EDU",
        "user_statistics/user_statistic/statistic_category",
        {"@desc": "", "#text": "RB"},
    ),
    ("NIHONLY@MIT.EDU", "user_group", "54"),
    (
        "NIHONLY@MIT.EDU",
        "contact_info/phones/phone/phone_number",
        "999-999-9999",
    ),  # office = TERM_PHONE1
    ("SEMP@MIT.EDU", "user_group", {"@desc": "Support Staff", "#text": "S"}),
]


@pytest.mark.parametrize(("primary_id", "path", "expected"), CHECKS)
def test_rules_element_value(rules_run: Run, primary_id: str, path: str, expected: Any) -> None:
    assert element(rules_run.users[primary_id], path) == expected


def test_rules_barcode_left_out_when_none_or_null(rules_run: Run) -> None:
    for primary_id in ("NONEBC@MIT.EDU", "NULLVALS@MIT.EDU"):
        ids = element(rules_run.users[primary_id], "user_identifiers/user_identifier")
        assert ids["id_type"] == {"@desc": "MIT ID", "#text": "02"}  # only the MIT ID is left


def test_rules_student_phone_list_is_office_then_home_only_with_office(rules_run: Run) -> None:
    phones = element(rules_run.users["NIHONLY@MIT.EDU"], "contact_info/phones/phone")
    assert isinstance(
        phones, dict
    )  # one phone: TERM_PHONE1 without OFFICE_PHONE gives no home phone


def test_rules_students_have_no_gender_nor_empty_booleans(rules_run: Run) -> None:
    student = rules_run.users["UNDER@MIT.EDU"]
    assert "gender" not in student
    assert "is_researcher" not in student  # an empty boolean would break Alma's schema
    for user in rules_run.users.values():
        assert "status_date" not in user and "force_password_change" not in user


def test_rules_overlong_value_is_cut_to_255_and_counted(rules_run: Run) -> None:
    category = element(
        rules_run.users["HOSTILE@MIT.EDU"], "user_statistics/user_statistic/statistic_category"
    )
    assert len(category["@desc"]) == 255 and category["@desc"].startswith("Department of Very")
    assert "1 value(s) longer than Alma allows were cut" in rules_run.result.out
    assert "1 character(s) not allowed in XML 1.0 were removed" in rules_run.result.out


def test_rules_rejections_have_reasons(rules_run: Run) -> None:
    build = next((rules_run.workdir / "build").glob("*.duckdb"))
    with duckdb.connect(str(build), read_only=True) as con:
        rows = con.execute(
            "SELECT patron_type, reason, mit_id FROM rejections ORDER BY ALL"
        ).fetchall()
    assert rows == [
        ("staff", "duplicate_in_source", "000000005"),
        ("staff", "missing_primary_id", "000000003"),
        ("staff", "missing_primary_id", "000000004"),
        ("student", "duplicate_in_source", "000000019"),
        ("student", "missing_primary_id", "000000016"),
        ("student", "student_is_staff", "000000010"),
    ]


def test_rules_summary_counts_per_type(rules_run: Run) -> None:
    rows = [line.split() for line in rules_run.result.out.splitlines()]
    assert ["staff", "10", "7", "3"] in rows
    assert ["student", "9", "6", "3"] in rows
    assert ["student", "student_is_staff", "1"] in rows
    assert ["staff", "missing_primary_id", "2"] in rows
