"""Data tests: each built-in and shipped check failing on a crafted fixture blocks export."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, Result, edit, patronload

USERS = Path("queries") / "models" / "users.sql"


def warehouse(tmp_path: Path) -> Path:
    folder = tmp_path / "wh"
    shutil.copytree(FIXTURES / "rules", folder, ignore=shutil.ignore_patterns("expected"))
    return folder


def set_cell(path: Path, row: int, column: str, value: str) -> None:
    """Change one cell of a warehouse CSV (row 1 = the first person)."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
        fields = list(rows[0])
    rows[row - 1][column] = value
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)


def run(tmp_path: Path, project: Path | None = None) -> Result:
    args = ["--project", str(project)] if project else []
    return patronload(
        *args, "run", "--warehouse", "wh", "--as-of", "2023-03-01", "--force", cwd=tmp_path
    )


def blocked(result: Result, test: str, rows: int, tmp_path: Path) -> str:
    """Assert a run was stopped by `test` finding `rows` rows; return its stderr."""
    assert result.code == 1, result.err
    last = result.err.splitlines()[-1]
    assert last.startswith(f"Error: data test failed: {test} ("), last
    assert f"): {rows} row(s)" in last and last.endswith("nothing exported")
    assert f"FAIL  {test} (" in result.err  # the count and first rows are printed first
    assert not list((tmp_path / "outbox").glob("*.zip"))
    return result.err


def test_the_shipped_project_passes_with_one_warning(tmp_path: Path) -> None:
    warehouse(tmp_path)
    result = patronload("test", "--warehouse", "wh", cwd=tmp_path)
    assert result.code == 2  # test takes a snapshot, not a warehouse
    assert patronload("extract", "--warehouse", "wh", cwd=tmp_path).code == 0
    result = patronload("test", "--as-of", "2023-03-01", cwd=tmp_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "PASS  unique_record_key (built-in): 0 row(s)" in lines
    assert "WARN  values_within_255_characters (built-in): 1 row(s)" in lines
    for shipped in ("unique_identifiers", "required_fields", "accepted_user_groups"):
        assert f"PASS  {shipped} (queries/tests/{shipped}.sql): 0 row(s)" in lines
    assert lines[-1] == "5 pass, 1 warn, 0 fail"


def test_a_duplicate_record_key_blocks_export(tmp_path: Path, project_copy: Path) -> None:
    warehouse(tmp_path)
    edit(project_copy / USERS, "p.primary_id AS record_key", "'SAME' AS record_key")
    err = blocked(run(tmp_path, project_copy), "unique_record_key", 1, tmp_path)
    assert "SAME" in err and "13" in err  # the first row: the key and its 13 records


def test_a_long_value_only_warns_and_is_in_the_report(tmp_path: Path) -> None:
    warehouse(tmp_path)
    result = run(tmp_path)
    assert result.code == 0, result.err
    assert "WARN  values_within_255_characters (built-in): 1 row(s)" in result.err
    assert "statistic_category.@desc  309" in result.err
    assert "data test warning: values_within_255_characters (built-in): 1 row(s)" in result.out


def test_a_shared_barcode_fails_unique_identifiers(tmp_path: Path) -> None:
    wh = warehouse(tmp_path)
    employees = wh / "LIBRARY_EMPLOYEE.csv"
    with employees.open(newline="") as fh:
        barcode = next(csv.DictReader(fh))["LIBRARY_ID"]
    set_cell(employees, 10, "LIBRARY_ID", barcode)  # the last staff member takes Jane's
    err = blocked(run(tmp_path), "unique_identifiers", 1, tmp_path)
    assert barcode in err


def test_an_unknown_user_group_fails(tmp_path: Path) -> None:
    set_cell(warehouse(tmp_path) / "LIBRARY_EMPLOYEE.csv", 1, "LIBRARY_PERSON_TYPE_CODE", "ZZ")
    err = blocked(run(tmp_path), "accepted_user_groups", 1, tmp_path)
    assert "staff        ZZ          1" in err


def test_a_missing_status_fails_required_fields(tmp_path: Path, project_copy: Path) -> None:
    warehouse(tmp_path)
    edit(project_copy / USERS, "'status': coded('ACTIVE', 'Active')", "'status': coded('', '')")
    err = blocked(run(tmp_path, project_copy), "required_fields", 13, tmp_path)
    assert "['status']" in err


def test_a_malformed_date_fails(tmp_path: Path, project_copy: Path) -> None:
    warehouse(tmp_path)
    edit(
        project_copy / USERS,
        "strftime(r.as_of + INTERVAL 6 MONTH, '%Y-%m-%d') || 'Z'",
        "strftime(r.as_of + INTERVAL 6 MONTH, '%d/%m/%Y')",
    )
    err = blocked(run(tmp_path, project_copy), "dates_well_formed", 13, tmp_path)
    assert "01/09/2023" in err


@pytest.mark.parametrize(
    ("header", "code", "status"),
    [
        ("-- warn_up_to: 20", 0, "WARN"),
        ("-- warn_up_to: 5", 1, "FAIL"),
        ("-- severity: warn", 0, "WARN"),
    ],
)
def test_a_project_test_with_a_threshold(
    tmp_path: Path, project_copy: Path, header: str, code: int, status: str
) -> None:
    warehouse(tmp_path)
    (project_copy / "queries" / "tests" / "no_email.sql").write_text(
        f"{header}\n-- People Alma cannot send notices to.\n"
        'SELECT record_key FROM users WHERE len("user".contact_info.emails.email) = 0\n'
    )
    result = run(tmp_path, project_copy)
    assert result.code == code, result.err
    assert f"{status:<5} no_email (queries/tests/no_email.sql): " in result.err


def test_a_test_that_does_not_run_names_its_file(tmp_path: Path, project_copy: Path) -> None:
    warehouse(tmp_path)
    (project_copy / "queries" / "tests" / "broken.sql").write_text(
        "SELECT record_key FROM users WHERE no_such_column\n"
    )
    result = run(tmp_path, project_copy)
    assert result.code == 1
    assert result.err.splitlines()[-1].startswith(
        "Error: queries/tests/broken.sql: the test does not run: Binder Error: "
    )
