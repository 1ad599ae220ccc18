"""The demo warehouse: deterministic, typed like schemas/sources.sql, and full of trouble."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.demo import MIN_PATRONS, STAFF, STUDENT, TROUBLES, write_demo_warehouse
from exporter.errors import SourceError, UsageError
from exporter.project import load_project
from exporter.sources import SourceTable, load_sources

SEEDS = load_project().seeds_dir

#: One SQL predicate per kind of trouble and table; each must match at least 2 rows.
TROUBLE_PREDICATES: dict[str, dict[str, str]] = {
    "missing_krb_null": {
        STAFF: "KRB_NAME_UPPERCASE IS NULL",
        STUDENT: "KRB_NAME_UPPERCASE IS NULL",
    },
    "missing_krb_empty": {
        STAFF: "KRB_NAME_UPPERCASE = ''",
        STUDENT: "KRB_NAME_UPPERCASE = ''",
    },
    "duplicate": {
        table: f"""KRB_NAME_UPPERCASE IN (
            SELECT KRB_NAME_UPPERCASE FROM {table} WHERE KRB_NAME_UPPERCASE <> ''
            GROUP BY ALL HAVING count(*) > 1 AND count(DISTINCT LIBRARY_ID) > 1)"""
        for table in (STAFF, STUDENT)
    },
    "preferred_in_other_case": {
        table: "PREFERRED_FIRST_NAME <> LEGAL_FIRST_NAME"
        " AND lower(PREFERRED_FIRST_NAME) = lower(LEGAL_FIRST_NAME)"
        for table in (STAFF, STUDENT)
    },
    "library_id_none": {STAFF: "LIBRARY_ID = 'NONE'", STUDENT: "LIBRARY_ID = 'NONE'"},
    "library_id_null": {STAFF: "LIBRARY_ID IS NULL", STUDENT: "LIBRARY_ID IS NULL"},
    "unknown_department": {
        STAFF: f"""ORG_UNIT_ID NOT IN (SELECT org_unit_id
            FROM read_csv('{SEEDS / "staff_departments.csv"}', all_varchar = true))""",
        STUDENT: f"""HOME_DEPARTMENT NOT IN (SELECT home_department
            FROM read_csv('{SEEDS / "student_departments.csv"}', all_varchar = true))""",
    },
    "xml_specials": {
        table: " AND ".join(
            f"contains(LEGAL_FIRST_NAME || LEGAL_LAST_NAME, '{c}')"
            for c in ("&", "<", ">", '"', "''")
        )
        for table in (STAFF, STUDENT)
    },
    "non_ascii": {
        table: "LEGAL_LAST_NAME = '王𠮷' AND LEGAL_MIDDLE_NAME = 'Łukasz José'"
        for table in (STAFF, STUDENT)
    },
    "too_long": {
        STAFF: "length(OFFICE_ADDRESS) > 255 AND length(ORG_UNIT_TITLE) > 255",
        STUDENT: "length(TERM_STREET1) > 255",
    },
    "control_char": {
        table: r"""regexp_matches(coalesce(LEGAL_FIRST_NAME, '') || coalesce(LEGAL_LAST_NAME, ''),
            '[\x01-\x08\x0b\x0c\x0e-\x1f]')"""
        for table in (STAFF, STUDENT)
    },
}


@pytest.fixture(scope="module")
def sources() -> dict[str, SourceTable]:
    return load_sources(load_project())


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, SourceTable]) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    write_demo_warehouse(path, sources, patrons=5000, seed=1)
    return path


@pytest.fixture(scope="module")
def smallest(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, SourceTable]) -> Path:
    path = tmp_path_factory.mktemp("demo") / "smallest.duckdb"
    write_demo_warehouse(path, sources, patrons=MIN_PATRONS, seed=7)
    return path


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _count(path: Path, sql: str) -> int:
    ((value,),) = _query(path, sql)
    assert isinstance(value, int)
    return value


def _contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    return {t: _query(path, f"SELECT * FROM {t} ORDER BY ALL") for t in (STAFF, STUDENT)}


def test_demo_warehouse_is_deterministic_for_a_seed(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    first, second = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    assert write_demo_warehouse(first, sources, 1000, 3) == write_demo_warehouse(
        second, sources, 1000, 3
    )
    assert _contents(first) == _contents(second)


def test_demo_warehouse_differs_between_seeds(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    write_demo_warehouse(tmp_path / "a.duckdb", sources, 1000, 1)
    write_demo_warehouse(tmp_path / "b.duckdb", sources, 1000, 2)
    first, second = _contents(tmp_path / "a.duckdb"), _contents(tmp_path / "b.duckdb")
    assert first[STAFF] != second[STAFF]
    assert first[STUDENT] != second[STUDENT]


def test_demo_warehouse_columns_match_the_source_definitions(
    warehouse: Path, sources: dict[str, SourceTable]
) -> None:
    for table in (STAFF, STUDENT):
        columns = _query(
            warehouse,
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_name = '{table}' ORDER BY ordinal_position",
        )
        assert columns == list(sources[table].columns.items())
    tables = _query(warehouse, "SELECT table_name FROM information_schema.tables ORDER BY 1")
    assert tables == [(STAFF,), (STUDENT,)]


def test_demo_warehouse_follows_changed_source_definitions(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    staff = dict(reversed(sources[STAFF].columns.items()))
    del staff["DIRECTORY_TITLE"]
    staff["NICKNAME"] = "VARCHAR"
    changed = {STAFF: SourceTable(STAFF, staff), STUDENT: sources[STUDENT]}
    path = tmp_path / "changed.duckdb"
    write_demo_warehouse(path, changed, MIN_PATRONS)
    columns = _query(
        path,
        "SELECT column_name, data_type FROM information_schema.columns"
        f" WHERE table_name = '{STAFF}' ORDER BY ordinal_position",
    )
    assert columns == list(staff.items())
    assert _count(path, f"SELECT count(NICKNAME) FROM {STAFF}") == 0
    assert _count(path, f"SELECT count(MIT_ID) FROM {STAFF}") > 0


def test_demo_warehouse_returns_row_counts(tmp_path: Path, sources: dict[str, SourceTable]) -> None:
    path = tmp_path / "counts.duckdb"
    counts = write_demo_warehouse(path, sources, 1000)
    assert counts == {t: _count(path, f"SELECT count(*) FROM {t}") for t in (STAFF, STUDENT)}


def test_demo_warehouse_has_staff_students_and_student_employees_in_proportion(
    warehouse: Path,
) -> None:
    def people(sql: str) -> int:
        return _count(
            warehouse,
            f"SELECT count(DISTINCT KRB_NAME_UPPERCASE) FROM ({sql})"
            " WHERE KRB_NAME_UPPERCASE <> ''",
        )

    staff = people(f"SELECT KRB_NAME_UPPERCASE FROM {STAFF}")
    students = people(f"SELECT KRB_NAME_UPPERCASE FROM {STUDENT}")
    both = people(
        f"SELECT KRB_NAME_UPPERCASE FROM {STAFF} INTERSECT SELECT KRB_NAME_UPPERCASE FROM {STUDENT}"
    )
    # Student employees count once: the people exported are exactly the patrons asked for.
    assert staff + students - both == 5000
    assert 0.27 < staff / 5000 < 0.33
    assert 0.04 < both / _count(warehouse, f"SELECT count(*) FROM {STUDENT}") < 0.06


@pytest.mark.parametrize("table", [STAFF, STUDENT])
@pytest.mark.parametrize("trouble", TROUBLES)
def test_demo_warehouse_has_each_kind_of_trouble(
    warehouse: Path, smallest: Path, trouble: str, table: str
) -> None:
    where = TROUBLE_PREDICATES[trouble][table]
    for path in (warehouse, smallest):
        assert _count(path, f"SELECT count(*) FROM {table} WHERE {where}") >= 2, path


def test_demo_warehouse_troubles_all_have_a_predicate() -> None:
    assert set(TROUBLE_PREDICATES) == set(TROUBLES)


def test_demo_warehouse_names_include_non_ascii_letters(warehouse: Path) -> None:
    names = {
        name
        for (name,) in _query(
            warehouse,
            f"SELECT LEGAL_FIRST_NAME FROM {STAFF} UNION SELECT LEGAL_LAST_NAME FROM {STUDENT}",
        )
    }
    assert {"José", "Zoë", "Łukasz", "王"} <= names


def test_demo_warehouse_keeps_identifiers_as_text_with_leading_zeros(warehouse: Path) -> None:
    def count(table: str, where: str) -> int:
        return _count(warehouse, f"SELECT count(*) FROM {table} WHERE {where}")

    for table in (STAFF, STUDENT):
        assert count(table, "MIT_ID LIKE '0%'") > 0
        assert count(table, r"NOT regexp_full_match(MIT_ID, '\d{9}')") == 0
        barcodes = r"LIBRARY_ID <> 'NONE' AND NOT regexp_full_match(LIBRARY_ID, '\d{14}')"
        assert count(table, barcodes) == 0
    assert count(STUDENT, "TERM_ZIP LIKE '0%'") > 0
    assert count(STUDENT, r"NOT regexp_full_match(TERM_ZIP, '\d{5}')") == 0


def test_demo_warehouse_emails_are_the_lowercase_kerberos_name(warehouse: Path) -> None:
    for table in (STAFF, STUDENT):
        wrong = _count(
            warehouse,
            f"SELECT count(*) FROM {table} WHERE KRB_NAME_UPPERCASE <> ''"
            " AND EMAIL_ADDRESS <> lower(KRB_NAME_UPPERCASE) || '@mit.edu'",
        )
        assert wrong == 0


def test_demo_warehouse_writes_phones_in_several_formats(warehouse: Path) -> None:
    shapes = _count(
        warehouse,
        f"SELECT count(DISTINCT regexp_replace(OFFICE_PHONE, '\\d', '9', 'g')) FROM {STAFF}",
    )
    assert shapes >= 4


def test_demo_warehouse_replaces_a_file_and_leaves_no_temporary_file(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    path = tmp_path / "demo.duckdb"
    path.write_text("an old warehouse")
    write_demo_warehouse(path, sources, MIN_PATRONS)
    assert sorted(os.listdir(tmp_path)) == ["demo.duckdb"]
    assert _count(path, f"SELECT count(*) FROM {STAFF}") > 0


def test_demo_warehouse_in_missing_folder_raises_source_error(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    path = tmp_path / "missing" / "demo.duckdb"
    with pytest.raises(SourceError, match="folder does not exist") as caught:
        write_demo_warehouse(path, sources, MIN_PATRONS)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_demo_warehouse_onto_a_folder_raises_source_error(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    with pytest.raises(SourceError, match="it is a folder") as caught:
        write_demo_warehouse(tmp_path, sources, MIN_PATRONS)
    assert str(tmp_path) in str(caught.value)


def test_demo_warehouse_failure_removes_the_temporary_file(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    path = tmp_path / "demo.duckdb"
    path.write_text("an old warehouse")
    broken = dict(sources)
    broken[STUDENT] = SourceTable(STUDENT, {"MIT_ID": "NO_SUCH_TYPE"})
    with pytest.raises(SourceError) as caught:
        write_demo_warehouse(path, broken, MIN_PATRONS)
    message = str(caught.value)
    assert message.startswith(f"cannot write demo warehouse ({path}): ")
    assert "\n" not in message
    assert sorted(os.listdir(tmp_path)) == ["demo.duckdb"]
    assert path.read_text() == "an old warehouse"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_demo_warehouse_in_unwritable_folder_raises_source_error(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(SourceError, match="cannot write demo warehouse") as caught:
            write_demo_warehouse(folder / "demo.duckdb", sources, MIN_PATRONS)
        assert str(folder / "demo.duckdb") in str(caught.value)
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_demo_warehouse_rejects_too_few_patrons(
    tmp_path: Path, sources: dict[str, SourceTable]
) -> None:
    with pytest.raises(UsageError, match="at least 100 patrons"):
        write_demo_warehouse(tmp_path / "demo.duckdb", sources, MIN_PATRONS - 1)
    assert os.listdir(tmp_path) == []


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(patrons=st.integers(MIN_PATRONS, 3000), seed=st.integers(0, 2**32))
def test_demo_warehouse_exports_exactly_the_patrons_asked_for(
    tmp_path: Path, sources: dict[str, SourceTable], patrons: int, seed: int
) -> None:
    path = tmp_path / f"{patrons}-{seed}.duckdb"
    write_demo_warehouse(path, sources, patrons, seed)
    people = _count(
        path,
        f"SELECT count(DISTINCT KRB_NAME_UPPERCASE) FROM (SELECT KRB_NAME_UPPERCASE FROM {STAFF}"
        f" UNION ALL SELECT KRB_NAME_UPPERCASE FROM {STUDENT}) WHERE KRB_NAME_UPPERCASE <> ''",
    )
    assert people == patrons
