"""`export --changes-since`: only the patrons new or changed since a snapshot, through the CLI.

Snapshot A is the rules fixture warehouse; snapshot B is the same warehouse after one
staff member's legal last name changed, one staff member left and one student arrived.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import re
import shutil
import zipfile
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Result, edit, patronload, read_users

AS_OF = "2023-03-01"
RENAMED = "JDOE@MIT.EDU"
LEFT = "PREFS@MIT.EDU"
ARRIVED = "NEWGRAD@MIT.EDU"
#: Patrons in the final model of snapshot B, per type (the guard's counts).
IN_MODEL_B = {"staff": 6, "student": 7}
CHANGES_A_TO_B = {
    "staff": {"added": 0, "changed": 1, "removed": 1, "unchanged": 5},
    "student": {"added": 1, "changed": 0, "removed": 0, "unchanged": 6},
}
INCREMENTAL_ZIP = re.compile(r"^(staff|student)_changes_\d{4}-\d\d-\d\d_\d\d\.\d\d\.\d\d\.zip$")
FULL_ZIP = re.compile(r"^(staff|student)_\d{4}-\d\d-\d\d_\d\d\.\d\d\.\d\d\.zip$")


@dataclass
class Snapshots:
    """Two snapshots of the fixture warehouse, before (a) and after (b) the edits."""

    workdir: Path
    a: Path
    b: Path


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)


def extract(workdir: Path, warehouse: Path) -> Path:
    result = patronload("extract", "--warehouse", warehouse, cwd=workdir)
    assert result.code == 0, result.err
    return workdir / result.out.splitlines()[-1]


def edit_warehouse(warehouse: Path) -> None:
    """Rename one staff member, remove another, add one new student."""
    staff_file, student_file = warehouse / "LIBRARY_EMPLOYEE.csv", warehouse / "LIBRARY_STUDENT.csv"
    header, staff = read_csv(staff_file)
    (jdoe,) = [r for r in staff if r["KRB_NAME_UPPERCASE"] == "JDOE"]
    jdoe["LEGAL_LAST_NAME"] = "Doe-Smith"
    staff = [r for r in staff if r["KRB_NAME_UPPERCASE"] != "PREFS"]
    write_csv(staff_file, header, staff)

    header, students = read_csv(student_file)
    (grad,) = [r for r in students if r["KRB_NAME_UPPERCASE"] == "GRAD"]
    new = {
        **grad,
        "MIT_ID": "000000099",
        "EMAIL_ADDRESS": "newgrad@mit.edu",
        "KRB_NAME_UPPERCASE": "NEWGRAD",
        "LIBRARY_ID": "22222222222299",
        "LEGAL_FIRST_NAME": "Nina",
    }
    write_csv(student_file, header, [*students, new])


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Snapshots:
    workdir = tmp_path_factory.mktemp("changes")
    warehouse = workdir / "warehouse"
    shutil.copytree(FIXTURES / "rules", warehouse, ignore=shutil.ignore_patterns("expected"))
    a = extract(workdir, warehouse)
    edit_warehouse(warehouse)
    b = extract(workdir, warehouse)
    return Snapshots(workdir, a, b)


def export(tmp_path: Path, snapshot: Path, *extra: str | Path) -> Result:
    """`patronload export` into folders of this test: outbox, build and history."""
    return patronload(
        "export",
        "--snapshot",
        snapshot,
        "--as-of",
        AS_OF,
        "--outbox",
        tmp_path / "outbox",
        "--build-dir",
        tmp_path / "build",
        "--history",
        tmp_path / "runs.jsonl",
        *extra,
        cwd=tmp_path,
    )


def zips(tmp_path: Path) -> dict[str, Path]:
    """The zips in the outbox by patron type."""
    found = sorted((tmp_path / "outbox").glob("*.zip"))
    by_type = {p.name.split("_")[0]: p for p in found}
    assert len(by_type) == len(found)
    return by_type


def report_text(tmp_path: Path) -> str:
    """The plain-text part of the run report that dev writes into the outbox."""
    (eml,) = (tmp_path / "outbox").glob("report-*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def history(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_changes_since_writes_only_new_and_changed_patrons(
    tmp_path: Path, snapshots: Snapshots
) -> None:
    result = export(tmp_path, snapshots.b, "--changes-since", snapshots.a, "--force", "--json")
    assert result.code == 0, result.err

    files = zips(tmp_path)
    assert sorted(files) == ["staff", "student"]
    assert all(INCREMENTAL_ZIP.match(p.name) for p in files.values()), files
    staff, students = read_users(files["staff"]), read_users(files["student"])
    assert list(staff) == [RENAMED]
    assert staff[RENAMED]["last_name"] == "Doe-Smith"
    assert list(students) == [ARRIVED]  # LEFT is in no file: removals are not sent
    assert patronload("validate", *files.values(), cwd=tmp_path).code == 0

    report = json.loads(result.out)
    assert report["changes_since"] == str(snapshots.a)
    assert report["exported"] == IN_MODEL_B  # every patron in the model, for the guard
    assert report["written"] == {"staff": 1, "student": 1}
    assert report["changes"] == CHANGES_A_TO_B
    assert {f["users"] for f in report["files"]} == {1}
    assert "changes" in report["seconds"]
    # the base build was made in a scratch folder, now gone; the real build is alone
    assert [p.name for p in (tmp_path / "build").iterdir()] == [snapshots.b.name]

    (run,) = history(tmp_path)
    assert run["changes_since"] == str(snapshots.a)
    assert run["exported"] == IN_MODEL_B
    assert run["written"] == {"staff": 1, "student": 1}
    assert run["delivered"] is True

    mail = report_text(tmp_path)
    assert (
        f"Delivered: 2 of 13 patrons in 2 file(s). Incremental since {snapshots.a}: the files "
        "hold only the patrons new or changed since then; people removed since are not in them."
    ) in mail
    assert "patron type  extracted  exported  rejected  change  new  changed  written" in mail


def test_changes_since_the_same_snapshot_writes_valid_empty_files(
    tmp_path: Path, snapshots: Snapshots
) -> None:
    result = export(tmp_path, snapshots.b, "--changes-since", snapshots.b, "--force")
    assert result.code == 0, result.err
    files = zips(tmp_path)
    assert sorted(files) == ["staff", "student"]
    assert all(INCREMENTAL_ZIP.match(p.name) for p in files.values()), files
    assert [read_users(p) for p in files.values()] == [{}, {}]
    assert patronload("validate", *files.values(), cwd=tmp_path).code == 0

    lines = result.out.splitlines()
    assert lines[1] == (
        f"incremental since {snapshots.b}: only records new or changed since then are written"
    )
    start = lines.index(f"changes since {snapshots.b}")
    assert lines[start + 1 : start + 5] == [
        "patron type            new   changed unchanged   removed   written",
        "staff                    0         0         6         0         0",
        "student                  0         0         7         0         0",
        "removed people are not in an incremental file: it only adds and updates "
        "(Alma's SIS sync does not delete by absence)",
    ]
    assert "staff                    9         6         3" in lines  # in the model: all 6


def test_export_without_changes_since_still_writes_everyone(
    tmp_path: Path, snapshots: Snapshots
) -> None:
    result = export(tmp_path, snapshots.b, "--force", "--json")
    assert result.code == 0, result.err
    files = zips(tmp_path)
    assert all(FULL_ZIP.match(p.name) for p in files.values()), files
    assert {t: len(read_users(p)) for t, p in files.items()} == IN_MODEL_B
    report = json.loads(result.out)
    assert (report["changes_since"], report["changes"]) == ("", {})
    assert report["written"] == report["exported"] == IN_MODEL_B
    assert history(tmp_path)[0]["changes_since"] is None


def test_changes_since_last_delivered_and_the_guard_keeps_full_counts(
    tmp_path: Path, snapshots: Snapshots
) -> None:
    full = export(tmp_path, snapshots.a)
    assert full.code == 0, full.err
    shutil.rmtree(tmp_path / "outbox")

    # staff 7 -> 6 is a 14% drop: the guard compares the full counts, not the 2 written
    refused = export(tmp_path, snapshots.b, "--changes-since", "last-delivered")
    assert refused.code == 3
    assert "staff: 7 -> 6 patrons (-14.3%)" in refused.err
    assert not list((tmp_path / "outbox").glob("*.zip"))

    delivered = export(
        tmp_path, snapshots.b, "--changes-since", "last-delivered", "--max-drop", "0.2", "--json"
    )
    assert delivered.code == 0, delivered.err
    files = zips(tmp_path)
    assert (list(read_users(files["staff"])), list(read_users(files["student"]))) == (
        [RENAMED],
        [ARRIVED],
    )
    assert json.loads(delivered.out)["changes_since"] == str(snapshots.a)

    # the incremental run is the last delivered one now; its counts are the full ones
    last = history(tmp_path)[-1]
    assert (last["changes_since"], last["exported"]) == (str(snapshots.a), IN_MODEL_B)
    lines = patronload("history", "--history", tmp_path / "runs.jsonl", cwd=tmp_path).out
    assert f"changes since {snapshots.a.name}: 2 written  delivered to" in lines.splitlines()[-1]
    assert "changes since" not in lines.splitlines()[0]  # the full run
    shutil.rmtree(tmp_path / "outbox")
    again = export(tmp_path, snapshots.b, "--changes-since", "last-delivered", "--json")
    assert again.code == 0, again.err  # 6 -> 6: no drop, no refusal
    assert json.loads(again.out)["changes_since"] == str(snapshots.b)
    assert json.loads(again.out)["written"] == {"staff": 0, "student": 0}


@pytest.mark.parametrize(
    ("command", "value", "message"),
    [
        ("export", "missing.duckdb", "Error: --changes-since: snapshot not found: missing.duckdb"),
        (
            "export",
            "not-a-database.duckdb",
            "Error: --changes-since: not-a-database.duckdb: not a readable snapshot: ",
        ),
        ("run", "missing.duckdb", "Error: --changes-since: snapshot not found: missing.duckdb"),
        (
            "export",
            "last-delivered",
            "Error: --changes-since last-delivered: no delivered run in history/runs.jsonl; "
            "deliver a full file first",
        ),
    ],
)
def test_changes_since_a_bad_value_is_a_usage_error_and_writes_nothing(
    tmp_path: Path, snapshots: Snapshots, command: str, value: str, message: str
) -> None:
    (tmp_path / "not-a-database.duckdb").write_text("MIT_ID,LEGAL_LAST_NAME\n1,Doe\n")
    source = (
        ("--snapshot", snapshots.b) if command == "export" else ("--warehouse", FIXTURES / "rules")
    )
    result = patronload(command, *source, "--changes-since", value, cwd=tmp_path)
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-database.duckdb"]


def test_changes_since_a_build_instead_of_a_snapshot_is_refused(
    tmp_path: Path, snapshots: Snapshots
) -> None:
    assert export(tmp_path, snapshots.a, "--dry-run").code == 0
    build = tmp_path / "build" / snapshots.a.name
    result = export(tmp_path, snapshots.b, "--changes-since", build)
    assert (result.code, result.err) == (
        2,
        f"Error: --changes-since: {build}: not a patronload snapshot (no _patronload_meta table)\n",
    )


def test_changes_compare_data_with_todays_rules_on_both_sides(
    tmp_path: Path, snapshots: Snapshots, project_copy: Path
) -> None:
    """The project's record decides what a change is; a SQL edit alone changes nothing.

    Both snapshots are built with the SQL as it is now: an edit of the rules shows in
    a full file, never as "changes since" (that is what `patronload impact` is for).
    """
    users = project_copy / "queries" / "models" / "users.sql"
    edit(users, "'external_id': 'SIS',", "'external_id': 'SIS2',")
    # records carry only the first three letters of the last name: Doe-Smith is still DOE
    edit(users, "'last_name': p.last_name,", "'last_name': upper(left(p.last_name, 3)),")
    same_data = extract(snapshots.workdir, snapshots.workdir / "warehouse")

    unchanged = patronload(
        "--project",
        project_copy,
        "export",
        "--snapshot",
        same_data,
        "--changes-since",
        snapshots.b,
        "--as-of",
        AS_OF,
        "--force",
        "--json",
        "--outbox",
        tmp_path / "unchanged",
        cwd=tmp_path,
    )
    assert unchanged.code == 0, unchanged.err
    report = json.loads(unchanged.out)
    assert report["written"] == {"staff": 0, "student": 0}
    assert {t: n["unchanged"] for t, n in report["changes"].items()} == IN_MODEL_B

    since_a = patronload(
        "--project",
        project_copy,
        "export",
        "--snapshot",
        snapshots.b,
        "--changes-since",
        snapshots.a,
        "--as-of",
        AS_OF,
        "--force",
        "--outbox",
        tmp_path / "since-a",
        cwd=tmp_path,
    )
    assert since_a.code == 0, since_a.err
    written: dict[str, Any] = {}
    for path in sorted((tmp_path / "since-a").glob("*.zip")):
        written.update(read_users(path))
    assert list(written) == [ARRIVED]  # the rename no longer shows in the record
    assert written[ARRIVED]["external_id"] == "SIS2"
    assert written[ARRIVED]["last_name"] == "GRA"


def test_changes_since_an_empty_warehouse_is_the_full_file_byte_for_byte(
    tmp_path: Path, snapshots: Snapshots
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for table in ("LIBRARY_EMPLOYEE.csv", "LIBRARY_STUDENT.csv"):
        header, _ = read_csv(snapshots.workdir / "warehouse" / table)
        write_csv(empty / table, header, [])
    nobody = extract(tmp_path, empty)

    assert export(tmp_path, snapshots.b, "--force", "--outbox", tmp_path / "full").code == 0
    result = export(tmp_path, snapshots.b, "--changes-since", nobody, "--force", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["written"] == IN_MODEL_B
    for patron_type, path in zips(tmp_path).items():
        (full,) = (tmp_path / "full").glob(f"{patron_type}_*.zip")
        with zipfile.ZipFile(full) as whole, zipfile.ZipFile(path) as changes:
            (full_xml,), (changes_xml,) = whole.namelist(), changes.namelist()
            assert changes_xml.startswith(f"{patron_type}_changes_")
            assert changes.read(changes_xml) == whole.read(full_xml)
