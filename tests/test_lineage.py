"""lineage: which source columns, SQL files, seeds and macros feed an XML element.

Every expectation here was read off the shipped SQL by hand: users.sql <- patrons.sql
<- staff_patrons.sql / student_patrons.sql <- *_verdicts.sql <- extract/*.sql.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import edit, patronload

USERS = "queries/models/users.sql"
PATRONS = "queries/models/patrons.sql"
STAFF = (USERS, PATRONS, "queries/models/staff_patrons.sql")
STUDENT = (USERS, PATRONS, "queries/models/student_patrons.sql")
STAFF_CHAIN = [*STAFF, "queries/models/staff_verdicts.sql", "queries/extract/staff.sql"]
STUDENT_CHAIN = [*STUDENT, "queries/models/student_verdicts.sql", "queries/extract/student.sql"]


def _lineage(*args: str | Path, cwd: Path) -> list[dict[str, Any]]:
    """The matched elements of `lineage ... --json`."""
    result = patronload(*args, "--json", cwd=cwd)
    assert result.code == 0, result.err
    elements: list[dict[str, Any]] = json.loads(result.out)["elements"]
    return elements


def _one(element: str, cwd: Path, *project: str | Path) -> dict[str, Any]:
    [found] = _lineage(*project, "lineage", element, cwd=cwd)
    return found


def _columns(element: dict[str, Any], role: str = "value") -> dict[str, list[str]]:
    """Source columns giving the element its value, with the parts they land in."""
    return {
        s["name"]: s["parts"]
        for s in element["sources"]
        if s["kind"] == "column" and s["role"] == role
    }


def _constants(element: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    """Constants as (SQL, parts, file that holds them)."""
    return [
        (s["name"], s["parts"], s["files"][-1])
        for s in element["sources"]
        if s["kind"] == "constant"
    ]


def test_lineage_last_name_reaches_both_source_tables_through_every_file(tmp_path: Path) -> None:
    result = patronload("lineage", "last_name", cwd=tmp_path)

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "last_name",
        "  " + " <- ".join([*STAFF_CHAIN, "LIBRARY_EMPLOYEE.LEGAL_LAST_NAME"]),
        "  " + " <- ".join([*STUDENT_CHAIN, "LIBRARY_STUDENT.LEGAL_LAST_NAME"]),
        "  macros: strip_text  (queries/macros.sql)",
    ]


def test_lineage_user_group_names_each_part_for_staff_and_students(tmp_path: Path) -> None:
    found = _one("user_group", tmp_path)

    assert found["path"] == "user_group"
    assert _columns(found) == {
        "LIBRARY_EMPLOYEE.LIBRARY_PERSON_TYPE_CODE": ["#text"],
        "LIBRARY_EMPLOYEE.LIBRARY_PERSON_TYPE": ["@desc"],
        "LIBRARY_STUDENT.HOME_DEPARTMENT": ["#text"],
        "LIBRARY_STUDENT.STUDENT_YEAR": ["#text"],
    }
    assert _constants(found) == [("NULL", ["@desc"], "queries/models/student_patrons.sql")]
    assert found["macros"] == ["coded"]


def test_lineage_identifiers_and_names_of_both_patron_types(tmp_path: Path) -> None:
    primary_id = _one("primary_id", tmp_path)
    pref_last_name = _one("pref_last_name", tmp_path)
    identifier = _one("user_identifier.value", tmp_path)

    assert _columns(primary_id) == {
        "LIBRARY_EMPLOYEE.KRB_NAME_UPPERCASE": [""],
        "LIBRARY_STUDENT.KRB_NAME_UPPERCASE": [""],
    }
    assert set(_columns(pref_last_name)) == {
        "LIBRARY_EMPLOYEE.PREFERRED_LAST_NAME",
        "LIBRARY_EMPLOYEE.LEGAL_LAST_NAME",
        "LIBRARY_STUDENT.PREFERRED_LAST_NAME",
        "LIBRARY_STUDENT.LEGAL_LAST_NAME",
    }
    assert pref_last_name["macros"] == ["preferred_name", "strip_text", "is_blank"]
    assert identifier["path"] == "user_identifiers.user_identifier.value"
    assert set(_columns(identifier)) == {
        "LIBRARY_EMPLOYEE.MIT_ID",
        "LIBRARY_STUDENT.MIT_ID",
        "LIBRARY_EMPLOYEE.LIBRARY_ID",
        "LIBRARY_STUDENT.LIBRARY_ID",
    }


def test_lineage_bare_name_finds_the_nested_email_address(tmp_path: Path) -> None:
    found = _one("email_address", tmp_path)

    assert found["path"] == "contact_info.emails.email.email_address"
    assert _columns(found) == {
        "LIBRARY_EMPLOYEE.EMAIL_ADDRESS": [""],
        "LIBRARY_STUDENT.EMAIL_ADDRESS": [""],
    }
    [staff] = [s for s in found["sources"] if s["name"] == "LIBRARY_EMPLOYEE.EMAIL_ADDRESS"]
    assert staff["files"] == STAFF_CHAIN


def test_lineage_dotted_path_follows_a_struct_field_into_each_model(tmp_path: Path) -> None:
    # users.sql reads p.address.line3; staff_patrons writes 'MIT', student_patrons TERM_STREET2.
    found = _one("contact_info.addresses.address.line3", tmp_path)

    assert _columns(found) == {"LIBRARY_STUDENT.TERM_STREET2": [""]}
    assert _constants(found) == [("'MIT'", [""], "queries/models/staff_patrons.sql")]


def test_lineage_expiry_date_comes_from_the_run_context(tmp_path: Path) -> None:
    result = patronload("lineage", "expiry_date", cwd=tmp_path)
    found = _one("expiry_date", tmp_path)

    assert result.out.splitlines() == [
        "expiry_date",
        f"  {USERS} <- run_context.as_of  (created by the build)",
    ]
    assert [(s["kind"], s["name"], s["files"]) for s in found["sources"]] == [
        ("run context", "run_context.as_of", [USERS])
    ]


def test_lineage_statistic_category_names_the_seeds_and_their_keys(tmp_path: Path) -> None:
    found = _one("statistic_category", tmp_path)

    assert _columns(found) == {"LIBRARY_EMPLOYEE.ORG_UNIT_TITLE": ["@desc"]}
    assert _columns(found, role="lookup key") == {
        "LIBRARY_EMPLOYEE.ORG_UNIT_ID": ["#text"],
        "LIBRARY_STUDENT.HOME_DEPARTMENT": ["#text"],
    }
    seeds = [(s["name"], s["files"][-1]) for s in found["sources"] if s["kind"] == "seed"]
    assert seeds == [
        ("staff_departments.statistic_category", "queries/seeds/staff_departments.csv"),
        ("student_departments.statistic_category", "queries/seeds/student_departments.csv"),
    ]


def test_lineage_phone_number_is_an_element_a_macro_writes(tmp_path: Path) -> None:
    found = _one("phone_number", tmp_path)

    assert found["path"] == "contact_info.phones.phone.phone_number"
    assert set(_columns(found)) == {
        "LIBRARY_EMPLOYEE.OFFICE_PHONE",
        "LIBRARY_STUDENT.OFFICE_PHONE",
        "LIBRARY_STUDENT.TERM_PHONE1",
        "LIBRARY_STUDENT.TERM_PHONE2",
    }
    assert found["macros"] == ["phone", "format_phone"]


def test_lineage_constant_element_says_constant_and_where(tmp_path: Path) -> None:
    result = patronload("lineage", "record_type", cwd=tmp_path)

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "record_type",
        f"  [@desc] constant: 'Public'  ({USERS})",
        f"  [#text] constant: 'PUBLIC'  ({USERS})",
        "  macros: coded  (queries/macros.sql)",
    ]


def test_lineage_constant_of_a_macro_body_is_shown_in_macros_sql(tmp_path: Path) -> None:
    found = _one("contact_info.phones.phone", tmp_path)

    assert ("'false'", ["@preferred_sms"], "queries/macros.sql") in _constants(found)
    assert ("'true'", ["@preferred"], "queries/models/staff_patrons.sql") in _constants(found)


def test_lineage_name_of_several_elements_lists_them_all(tmp_path: Path) -> None:
    found = _lineage("lineage", "status", cwd=tmp_path)
    result = patronload("lineage", "status", cwd=tmp_path)

    assert [e["path"] for e in found] == [
        "status",
        "user_identifiers.user_identifier.status",
        "user_roles.user_role.status",
    ]
    assert result.out.splitlines()[0] == f"3 elements of {USERS} match status:"


def test_lineage_unknown_element_suggests_close_names_and_exits_2(tmp_path: Path) -> None:
    result = patronload("lineage", "lastname", cwd=tmp_path)

    assert result.code == 2
    assert result.out == ""
    assert result.err == (
        f"Error: unknown element lastname ({USERS}). "
        "Did you mean last_name, pref_last_name, first_name?\n"
    )


def test_lineage_follows_a_new_column_added_through_the_staff_models(
    tmp_path: Path, project_copy: Path
) -> None:
    models = project_copy / "queries" / "models"
    before = _one("job_description", tmp_path, "--project", project_copy)
    edit(models / "users.sql", "'job_description': '',", "'job_description': p.job_description,")
    edit(
        models / "staff_patrons.sql",
        "'false' AS is_researcher,",
        "'false' AS is_researcher,\n    v.POSITION_TITLE AS job_description,",
    )
    edit(
        models / "student_patrons.sql",
        "NULL AS is_researcher,",
        "NULL AS is_researcher,\n    NULL AS job_description,",
    )

    after = _one("job_description", tmp_path, "--project", project_copy)

    assert _constants(before) == [("''", [""], USERS)]
    assert _columns(after) == {"LIBRARY_EMPLOYEE.POSITION_TITLE": [""]}
    [title] = [s for s in after["sources"] if s["kind"] == "column"]
    assert title["files"] == STAFF_CHAIN
    assert _constants(after) == [("NULL", [""], "queries/models/student_patrons.sql")]


def test_lineage_matches_union_by_name_columns_by_name_not_position(
    tmp_path: Path, project_copy: Path
) -> None:
    # patrons.sql is UNION ALL BY NAME: student columns in another order still line up.
    student = project_copy / "queries" / "models" / "student_patrons.sql"
    edit(student, "    coalesce(strip_text(s.LEGAL_LAST_NAME), '') AS last_name,\n", "")
    edit(
        student,
        "AS statistic_category\n",
        "AS statistic_category,\n    coalesce(strip_text(s.LEGAL_LAST_NAME), '') AS last_name\n",
    )

    found = _one("last_name", tmp_path, "--project", project_copy)

    assert _columns(found) == {
        "LIBRARY_EMPLOYEE.LEGAL_LAST_NAME": [""],
        "LIBRARY_STUDENT.LEGAL_LAST_NAME": [""],
    }
