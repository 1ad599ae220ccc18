"""The real `patronload` command: help, bad input, determinism, snapshots."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.conftest import FIXTURES, edit, patronload, read_users, run_fixture

COMMANDS = [
    "demo-warehouse",
    "extract",
    "build",
    "export",
    "run",
    "validate",
    "explain",
    "find",
    "diff",
    "rejections",
    "history",
    "bench",
    "config",
    "db-test",
    "test",
    "preview",
    "models",
    "lint",
    "impact",
    "lineage",
]


def files_under(folder: Path) -> list[str]:
    """Every file under a folder except dev's run reports (report-*.eml in the outbox)."""
    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if not (p.name.startswith("report-") and p.suffix == ".eml")
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_every_command_has_help_with_an_example(tmp_path: Path, command: str) -> None:
    result = patronload(command, "-h", cwd=tmp_path)
    assert result.code == 0
    assert "Example: patronload" in result.out


def test_cli_version_and_group_help(tmp_path: Path) -> None:
    assert patronload("--version", cwd=tmp_path).out.strip() == "patronload, version 0.1.0"
    out = patronload("--help", cwd=tmp_path).out
    assert all(c in out for c in COMMANDS)


def test_cli_missing_warehouse_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    result = patronload("run", "--warehouse", "nowhere.duckdb", cwd=tmp_path)
    assert (result.code, result.err) == (1, "Error: warehouse not found: nowhere.duckdb\n")
    assert files_under(tmp_path / "snapshots") == [] and files_under(tmp_path / "outbox") == []


def test_cli_csv_header_lacking_a_column_names_file_and_column(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    shutil.copytree(FIXTURES / "rules", warehouse, ignore=shutil.ignore_patterns("expected"))
    student = warehouse / "LIBRARY_STUDENT.csv"
    lines = student.read_text().splitlines()
    student.write_text("\n".join([lines[0].replace(",HOME_DEPARTMENT", "")] + lines[1:]) + "\n")
    result = patronload("run", "--warehouse", warehouse, cwd=tmp_path)
    assert result.code == 1
    assert result.err == f"Error: {student}: header lacks the column HOME_DEPARTMENT\n"
    assert files_under(tmp_path / "snapshots") == [] and files_under(tmp_path / "outbox") == []


def test_cli_model_syntax_error_points_at_the_line(tmp_path: Path, project_copy: Path) -> None:
    model = project_copy / "queries" / "models" / "patrons.sql"
    edit(model, "UNION ALL BY NAME", "UNION ALL BY NAME SELECT FROM (")
    result = patronload(
        "--project", project_copy, "run", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert result.code == 1
    assert result.err == f"Error: {model}:6:29: Expecting )\n"
    assert files_under(tmp_path / "snapshots") == [] and files_under(tmp_path / "outbox") == []


def test_cli_unknown_column_in_a_model_is_caught_before_extract(
    tmp_path: Path, project_copy: Path
) -> None:
    model = project_copy / "queries" / "models" / "staff_patrons.sql"
    edit(model, "v.OFFICE_PHONE, 'true'", "v.OFFICE_FAX, 'true'")
    result = patronload(
        "--project", project_copy, "run", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert result.code == 1
    assert result.err.startswith(f"Error: {model}: Binder Error:")
    assert "OFFICE_FAX" in result.err
    assert files_under(tmp_path / "snapshots") == []


def test_cli_unknown_column_in_extract_names_file_line_and_column(
    tmp_path: Path, project_copy: Path
) -> None:
    query = project_copy / "queries" / "extract" / "staff.sql"
    edit(query, "e.OFFICE_PHONE,", "e.OFFICE_FAX,")
    result = patronload(
        "--project", project_copy, "extract", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert (result.code, result.err) == (
        1,
        f"Error: {query}:15:7: unknown column OFFICE_FAX in LIBRARY_EMPLOYEE\n",
    )


def test_cli_unknown_table_in_extract(tmp_path: Path, project_copy: Path) -> None:
    query = project_copy / "queries" / "extract" / "student.sql"
    edit(query, "FROM LIBRARY_STUDENT s", "FROM LIBRARY_STUDENTS s")
    result = patronload(
        "--project", project_copy, "extract", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert result.code == 1
    assert result.err.startswith(f"Error: {query}:23:6: unknown table LIBRARY_STUDENTS (known: ")


def test_cli_oracle_construct_duckdb_lacks_is_an_error_not_a_rewrite(
    tmp_path: Path, project_copy: Path
) -> None:
    query = project_copy / "queries" / "extract" / "staff.sql"
    edit(
        query,
        "e.APPOINTMENT_END_DATE,",
        "TO_CHAR(e.APPOINTMENT_END_DATE, 'YYYY') AS APPOINTMENT_END_DATE,",
    )
    result = patronload(
        "--project", project_copy, "extract", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert result.code == 1
    assert result.err.startswith(f"Error: {query}: cannot run on a local warehouse:")
    assert files_under(tmp_path / "snapshots") == []


def test_cli_unreadable_snapshot(tmp_path: Path) -> None:
    bad = tmp_path / "bad.duckdb"
    bad.write_text("not a database")
    result = patronload("export", "--snapshot", bad, cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith(f"Error: {bad}: not a readable snapshot:")
    assert files_under(tmp_path / "outbox") == []


def test_cli_export_without_any_snapshot(tmp_path: Path) -> None:
    result = patronload("export", cwd=tmp_path)
    assert (result.code, result.err) == (
        1,
        "Error: no snapshot in snapshots; run 'patronload extract' first\n",
    )


def test_cli_outbox_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the outbox's parent should be")
    result = patronload(
        "run", "--warehouse", FIXTURES / "rules", "--outbox", "blocked/out", cwd=tmp_path
    )
    assert result.code == 2
    # dev writes its run report into the outbox, so that report cannot be written either
    assert "the run report was not sent" in result.err
    assert result.err.splitlines()[-1] == (
        "Error: the outbox blocked/out cannot be written: Not a directory"
    )
    assert files_under(tmp_path / "snapshots") == []


def test_cli_bad_as_of_is_a_usage_error(tmp_path: Path) -> None:
    result = patronload(
        "run", "--warehouse", FIXTURES / "rules", "--as-of", "2023-13-01", cwd=tmp_path
    )
    assert (result.code, result.err) == (
        2,
        "Error: --as-of: '2023-13-01' is not a date like 2026-03-01\n",
    )


def test_cli_extract_prints_snapshot_last_and_records_metadata(tmp_path: Path) -> None:
    result = patronload("extract", "--warehouse", FIXTURES / "rules", cwd=tmp_path)
    assert result.code == 0
    snapshot = tmp_path / result.out.splitlines()[-1]
    assert snapshot.parent == tmp_path / "snapshots" and snapshot.suffix == ".duckdb"
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert files_under(tmp_path / "snapshots") == [snapshot.name]  # no temporary left
    with duckdb.connect(str(snapshot), read_only=True) as con:
        meta = dict(con.execute("SELECT key, value FROM _patronload_meta").fetchall())
        extracts = con.execute(
            "SELECT name, sha256, rows FROM _patronload_extracts ORDER BY name"
        ).fetchall()
        mit_ids = [
            r[0] for r in con.execute("SELECT MIT_ID FROM staff ORDER BY MIT_ID LIMIT 1").fetchall()
        ]
    assert json.loads(meta["row_counts"]) == {"staff": 10, "student": 9}
    assert meta["source"] == str((FIXTURES / "rules").resolve())
    sql = (Path(__file__).parent.parent / "queries" / "extract" / "staff.sql").read_bytes()
    assert extracts[0] == ("staff", hashlib.sha256(sql).hexdigest(), 10)
    assert mit_ids == ["000000002"]  # leading zeros survive


def test_cli_export_uses_latest_snapshot_and_same_input_gives_same_xml(tmp_path: Path) -> None:
    first = run_fixture(tmp_path, FIXTURES / "rules")
    digests = []
    for outbox in ("out1", "out2"):
        result = patronload("export", "--as-of", "2023-03-01", "--outbox", outbox, cwd=tmp_path)
        assert result.code == 0, result.err
        xml = b""
        for path in sorted((tmp_path / outbox).glob("*.zip")):
            with zipfile.ZipFile(path) as zf:
                xml += b"".join(zf.read(n) for n in zf.namelist())
        digests.append(hashlib.sha256(xml).hexdigest())
    assert digests[0] == digests[1]
    assert read_users(next((tmp_path / "out1").glob("staff_*.zip"))).keys() == {
        k for k, v in first.users.items() if "is_researcher" in v
    }


def test_cli_quiet_when_not_a_terminal(tmp_path: Path) -> None:
    result = patronload("run", "--warehouse", FIXTURES / "rules", cwd=tmp_path)
    lines = result.err.splitlines()
    assert lines[:2] == ["staff: 10 rows extracted", "student: 9 rows extracted"]
    # then only the fixture's one data-test warning: no progress bar, no spinner
    assert lines[2].startswith("WARN  values_within_255_characters")
    assert all(line.startswith("      ") for line in lines[3:])


def test_cli_root_element_is_configurable(tmp_path: Path) -> None:
    result = patronload(
        "run", "--warehouse", FIXTURES / "rules", "--root-element", "users", cwd=tmp_path
    )
    assert result.code == 0, result.err
    with zipfile.ZipFile(next((tmp_path / "outbox").glob("staff_*.zip"))) as zf:
        assert b"\n<users>\n" in zf.read(zf.namelist()[0])


def test_cli_split_at_size_limit_through_run(tmp_path: Path) -> None:
    run = run_fixture(tmp_path, FIXTURES / "rules", "--max-xml-bytes", "6000")
    with zipfile.ZipFile(run.zips["staff"]) as zf:
        assert len(zf.namelist()) >= 2
    assert len(run.users) == 13
    assert patronload("validate", *run.zips.values(), cwd=tmp_path).code == 0


def test_cli_demo_warehouse_run_balances_and_validates(tmp_path: Path) -> None:
    made = patronload(
        "demo-warehouse", "wh.duckdb", "--patrons", "2000", "--seed", "7", cwd=tmp_path
    )
    assert made.code == 0, made.err
    result = patronload("run", "--warehouse", "wh.duckdb", "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    for patron_type, extracted in report["extracted"].items():
        rejected = sum(report["rejections"].get(patron_type, {}).values())
        assert extracted == report["exported"][patron_type] + rejected
    assert {"missing_primary_id", "student_is_staff", "duplicate_in_source"} <= {
        r for reasons in report["rejections"].values() for r in reasons
    }
    assert report["removed_chars"] > 0 and report["truncated_values"] > 0
    # lxml saw one record per structure and the few whose values SQL could not prove;
    # `validate` then checks every record of the files in full
    written = sum(report["written"].values())
    assert 0 < report["validation"]["signatures"] <= report["validation"]["records_by_lxml"]
    assert report["validation"]["records_by_lxml"] < written / 10
    assert not report["validation"]["every_record"]
    zips = [f["zip"] for f in report["files"]]
    checked = patronload("validate", *zips, cwd=tmp_path)
    assert checked.code == 0, checked.err
    every = patronload(
        "run", "--warehouse", "wh.duckdb", "--json", "--validate-every-record", cwd=tmp_path
    )
    assert every.code == 0, every.err
    assert json.loads(every.out)["validation"] == {
        "records_by_lxml": written,
        "signatures": 0,
        "every_record": True,
    }


def _rules_copy(tmp_path: Path) -> Path:
    warehouse = tmp_path / "wh"
    shutil.copytree(FIXTURES / "rules", warehouse, ignore=shutil.ignore_patterns("expected"))
    return warehouse


def _edit_csv(path: Path, change: Callable[[list[list[str]]], None]) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    change(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def test_cli_csv_line_that_does_not_parse_names_file_and_line(tmp_path: Path) -> None:
    warehouse = _rules_copy(tmp_path)
    staff = warehouse / "LIBRARY_EMPLOYEE.csv"
    _edit_csv(staff, lambda rows: rows.insert(3, ["1", "2", "3"]))
    result = patronload("extract", "--warehouse", warehouse, cwd=tmp_path)
    assert (result.code, result.err) == (
        1,
        f"Error: {staff}:4: Expected Number of Columns: 19 Found: 3\n",
    )
    assert files_under(tmp_path / "snapshots") == []


def test_cli_csv_value_of_the_wrong_type_names_file_line_and_column(tmp_path: Path) -> None:
    warehouse = _rules_copy(tmp_path)
    staff = warehouse / "LIBRARY_EMPLOYEE.csv"

    def bad_date(rows: list[list[str]]) -> None:
        rows[5][12] = "2027-13-45"

    _edit_csv(staff, bad_date)
    result = patronload("extract", "--warehouse", warehouse, cwd=tmp_path)
    assert (result.code, result.err) == (
        1,
        f"Error: {staff}:6: column APPOINTMENT_END_DATE: '2027-13-45' is not a DATE\n",
    )
    assert files_under(tmp_path / "snapshots") == []


def test_cli_duckdb_warehouse_value_of_the_wrong_type_names_table_and_row(tmp_path: Path) -> None:
    made = patronload("demo-warehouse", "wh.duckdb", "--patrons", "100", cwd=tmp_path)
    assert made.code == 0, made.err
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute("ALTER TABLE LIBRARY_EMPLOYEE ALTER APPOINTMENT_END_DATE TYPE VARCHAR")
        con.execute("UPDATE LIBRARY_EMPLOYEE SET APPOINTMENT_END_DATE = 'soon' WHERE rowid = 4")
    result = patronload("extract", "--warehouse", "wh.duckdb", cwd=tmp_path)
    assert (result.code, result.err) == (
        1,
        "Error: wh.duckdb: table LIBRARY_EMPLOYEE, row 5: column APPOINTMENT_END_DATE: "
        "'soon' is not a DATE\n",
    )


def test_cli_duckdb_warehouse_without_a_source_table(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as con:
        con.execute("CREATE TABLE other (x INT)")
    result = patronload("extract", "--warehouse", "empty.duckdb", cwd=tmp_path)
    assert (result.code, result.err) == (1, "Error: empty.duckdb: has no table LIBRARY_EMPLOYEE\n")


def test_cli_a_warehouse_is_not_a_snapshot(tmp_path: Path) -> None:
    patronload("demo-warehouse", "wh.duckdb", "--patrons", "100", cwd=tmp_path)
    result = patronload("export", "--snapshot", "wh.duckdb", cwd=tmp_path)
    assert (result.code, result.err) == (
        1,
        "Error: wh.duckdb: not a patronload snapshot (no _patronload_meta table)\n",
    )


def test_cli_lost_rows_fail_the_build_loudly(tmp_path: Path, project_copy: Path) -> None:
    model = project_copy / "queries" / "models" / "staff_patrons.sql"
    edit(
        model,
        "WHERE v.rejection_reason IS NULL",
        "WHERE v.rejection_reason IS NULL AND v.MIT_ID <> '000000008'",
    )
    result = patronload(
        "--project", project_copy, "run", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert (result.code, result.err.splitlines()[-1]) == (
        1,
        "Error: rows lost for staff: extracted 10 but exported 6 + rejected 3 = 9",
    )
    assert files_under(tmp_path / "outbox") == []


def test_cli_validate_reports_problems_and_exits_1(tmp_path: Path) -> None:
    run = run_fixture(tmp_path, FIXTURES / "rules")
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(run.zips["staff"]) as src, zipfile.ZipFile(broken, "w") as dst:
        for name in src.namelist():
            data = src.read(name).replace(
                b"<expiry_date>2023-09-01Z</expiry_date>", b"<expiry_date/>", 1
            )
            dst.writestr(name, data)
    result = patronload("validate", run.zips["student"], broken, cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith(f"{broken}:staff_") and "expiry_date" in result.err
    ok = patronload("validate", run.zips["student"], cwd=tmp_path)
    assert (ok.code, ok.out) == (0, f"{run.zips['student']}: valid, 6 users\n")


ALMA_ELEMENTS = [
    "userRecords",
    "primary_id",
    "first_name",
    "user_group",
    "expiry_date",
    "purge_date",
    "contact_info",
    "email_address",
    "phone_number",
    "user_identifier",
    "statistic_category",
    "user_statistic",
    "record_type",
    "is_researcher",
    "LIBRARY_EMPLOYEE",
    "KRB_NAME_UPPERCASE",
]


@pytest.mark.parametrize("name", ALMA_ELEMENTS)
def test_exporter_package_knows_no_alma_element_nor_rule_column(name: str) -> None:
    package = Path(__file__).resolve().parent.parent / "exporter"
    offenders = [
        p.name for p in package.glob("*.py") if p.name != "demo.py" and name in p.read_text()
    ]
    assert offenders == []  # demo.py fakes the warehouse, so it must name its columns


def test_cli_a_record_failing_the_schema_publishes_nothing(
    tmp_path: Path, project_copy: Path
) -> None:
    model = project_copy / "queries" / "models" / "users.sql"
    # the data test on dates would stop this first; the schema check is the last defence
    (project_copy / "queries" / "tests" / "dates_well_formed.sql").unlink()
    edit(
        model,
        "'expiry_date': strftime(r.as_of + INTERVAL 6 MONTH, '%Y-%m-%d') || 'Z',",
        "'expiry_date': CASE WHEN p.primary_id = 'NONEBC@MIT.EDU' THEN 'soon' "
        "ELSE strftime(r.as_of + INTERVAL 6 MONTH, '%Y-%m-%d') || 'Z' END,",
    )
    result = patronload(
        "--project", project_copy, "run", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        "Error: 1 problem(s) in the produced XML, nothing published: staff record 4: "
        "Element 'expiry_date': 'soon' is not a valid value of the atomic type 'xs:date'."
    )
    assert files_under(tmp_path / "outbox") == []


def test_cli_bench_prints_a_table_and_one_json_line(tmp_path: Path) -> None:
    result = patronload("bench", "--patrons", "1000", "--work", tmp_path, cwd=tmp_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["patrons", "1,000"]
    (run,) = json.loads(lines[-1])["bench"]
    assert run["patrons"] == 1000 and 900 < run["users_exported"] <= 1000
    assert run["zip_bytes"] < run["xml_bytes"] / 5  # XML compresses well
    seconds = run["seconds"]
    assert seconds["pipeline"] == pytest.approx(
        seconds["extract"] + seconds["build"] + seconds["data_tests"] + seconds["export"],
        abs=0.005,
    )
    assert seconds["zlib_baseline"] > 0 and run["export_over_zlib"] > 0
    assert run["peak_rss_bytes"] > 0 and run["peak_rss_validation_worker_bytes"] > 0
    assert list(tmp_path.iterdir()) == []  # scratch data removed


def test_cli_build_lists_models_in_order_with_views(tmp_path: Path) -> None:
    assert patronload("extract", "--warehouse", FIXTURES / "rules", cwd=tmp_path).code == 0
    result = patronload("build", "--as-of", "2023-03-01", cwd=tmp_path)
    assert result.code == 0, result.err
    rows = [line.split() for line in result.out.splitlines()[:-1]]
    assert rows == [
        ["staff_verdicts", "10", "rows"],
        ["staff_patrons", "view"],
        ["student_verdicts", "9", "rows"],
        ["patron_lookup", "19", "rows"],
        ["rejections", "6", "rows"],
        ["student_patrons", "view"],
        ["patrons", "view"],
        ["users", "13", "rows"],
        ["row_accounting", "2", "rows"],
    ]
    assert result.out.splitlines()[-1].startswith("build/") and result.out.endswith(".duckdb\n")


def test_cli_final_model_cannot_be_a_view(tmp_path: Path, project_copy: Path) -> None:
    model = project_copy / "queries" / "models" / "users.sql"
    model.write_text("-- materialized: view\n" + model.read_text())
    result = patronload(
        "--project", project_copy, "run", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert (result.code, result.err) == (
        1,
        f"Error: {model}: the final model must be stored, not a view\n",
    )


def test_cli_a_patron_type_with_no_rows_gets_a_valid_empty_file(tmp_path: Path) -> None:
    warehouse = _rules_copy(tmp_path)
    students = warehouse / "LIBRARY_STUDENT.csv"
    students.write_text(students.read_text().splitlines()[0] + "\n")
    refused = patronload("run", "--warehouse", warehouse, cwd=tmp_path)
    assert refused.code == 3
    assert refused.err.splitlines()[-1].startswith(
        "Error: refused to deliver: student: no patrons to export."
    )
    assert files_under(tmp_path / "outbox") == []
    run = run_fixture(tmp_path, warehouse, "--force")
    with zipfile.ZipFile(run.zips["student"]) as zf:
        assert (
            zf.read(zf.namelist()[0])
            == b'<?xml version="1.0" encoding="UTF-8"?>\n<userRecords>\n</userRecords>\n'
        )
    assert patronload("validate", run.zips["student"], cwd=tmp_path).code == 0


def test_cli_a_broken_schema_is_one_line_and_publishes_nothing(
    tmp_path: Path, project_copy: Path
) -> None:
    xsd = project_copy / "schemas" / "user.xsd"
    xsd.write_text(xsd.read_text()[:500])
    result = patronload(
        "--project", project_copy, "run", "--warehouse", FIXTURES / "rules", cwd=tmp_path
    )
    assert result.code == 1
    assert result.err.splitlines()[-1].startswith(f"Error: {xsd} is not a usable XML Schema:")
    assert "Traceback" not in result.err
    assert files_under(tmp_path / "outbox") == [] and files_under(tmp_path / "snapshots") == []


def test_cli_history_that_cannot_be_written_says_the_zips_were_written(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the history folder should be")
    result = patronload(
        "run", "--warehouse", FIXTURES / "rules", "--history", "blocked/runs.jsonl", cwd=tmp_path
    )
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        f"Error: the zips went to {tmp_path / 'outbox'}, but the run could not be "
        "recorded in blocked/runs.jsonl: File exists"
    )
    assert len(files_under(tmp_path / "outbox")) == 2
