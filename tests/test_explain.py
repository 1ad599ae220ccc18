"""explain, rejections and history on a warehouse seen in three snapshots."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, patronload


@dataclass
class Story:
    """A folder where three runs happened, the warehouse changing between them."""

    cwd: Path
    snapshots: list[Path]


def _edit(path: Path, change: object) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
        fields = list(rows[0])
    rows = change(rows)  # type: ignore[operator]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)


def _run(cwd: Path) -> None:
    # A ten-person fixture shrinks by more than the feed guard allows: that is the story.
    result = patronload("run", "--warehouse", "wh", "--as-of", "2023-03-01", "--force", cwd=cwd)
    assert result.code == 0, result.err


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """Snapshot 1: the rules fixture. 2: Jane Doe renamed Janet, NULLVALS gone.
    3: the student GRAD is hired as staff (a student employee from now on)."""
    cwd = tmp_path_factory.mktemp("story")
    shutil.copytree(FIXTURES / "rules", cwd / "wh", ignore=shutil.ignore_patterns("expected"))
    staff = cwd / "wh" / "LIBRARY_EMPLOYEE.csv"
    _run(cwd)

    def rename_and_drop(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in rows:
            if row["KRB_NAME_UPPERCASE"] == "JDOE":
                row["LEGAL_FIRST_NAME"] = "Janet"
        return [r for r in rows if r["KRB_NAME_UPPERCASE"] != "NULLVALS"]

    _edit(staff, rename_and_drop)
    _run(cwd)

    def hire_grad(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        hired = dict(rows[0])
        hired.update(
            MIT_ID="000000011",
            KRB_NAME_UPPERCASE="GRAD",
            LEGAL_FIRST_NAME="Gina",
            LEGAL_LAST_NAME="Grad",
            EMAIL_ADDRESS="grad@mit.edu",
            LIBRARY_ID="",
        )
        return rows + [hired]

    _edit(staff, hire_grad)
    _run(cwd)
    return Story(cwd, sorted((cwd / "snapshots").glob("*.duckdb")))


def explain(story: Story, *args: str) -> tuple[int, dict[str, object]]:
    result = patronload("explain", *args, "--json", cwd=story.cwd)
    return result.code, json.loads(result.out)


def test_explain_student_employee_verdict_first_with_both_rows(story: Story) -> None:
    result = patronload("explain", "semp@mit.edu", cwd=story.cwd)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[1] == "SEMP@MIT.EDU  Student Employee"
    assert lines[2] == "  verdict   Exported as staff."
    assert lines[3] == (
        "            student row: Not exported as a student: already exported as staff "
        "(student employees load once, as staff) [student_is_staff]"
    )


def test_explain_names_the_zip_file_and_record(story: Story) -> None:
    code, answer = explain(story, "012345678")
    (person,) = answer["people"]  # type: ignore[misc]
    location = person["location"]
    assert location["zip"].endswith(".zip") and Path(location["zip"]).parent == story.cwd / "outbox"
    # sorted by primary id; GRAD joined the staff in snapshot 3: DUPSTAFF, GRAD, HOSTILE, JDOE
    assert location["xml_file"].startswith("staff_") and location["record"] == 4
    assert "<first_name>Janet</first_name>" in person["record_xml"]


def test_explain_history_shows_the_name_change(story: Story) -> None:
    code, answer = explain(story, "jdoe")
    (person,) = answer["people"]  # type: ignore[misc]
    assert person["first_seen"] == story.snapshots[0].stem
    assert person["last_seen"] == story.snapshots[2].stem
    assert person["changes"] == [
        {
            "snapshot": story.snapshots[1].stem,
            "what": "staff: LEGAL_FIRST_NAME ' Jane ' -> 'Janet'",
        },
        {"snapshot": story.snapshots[1].stem, "what": "record sent: first_name changed"},
    ]


def test_explain_history_shows_a_change_of_verdict(story: Story) -> None:
    code, answer = explain(story, "Gina Grad")
    (person,) = answer["people"]  # type: ignore[misc]
    assert person["exported_as"] == "staff"
    whats = [c["what"] for c in person["changes"]]
    assert "staff: now in the source" in whats
    assert "student: reason None -> 'student_is_staff'" in whats


def test_explain_person_who_disappeared(story: Story) -> None:
    result = patronload("explain", "nullvals@mit.edu", cwd=story.cwd)
    assert result.code == 1
    assert result.out.startswith(f"No one in {story.snapshots[2].stem} matches 'nullvals@mit.edu'.")
    code, answer = explain(story, "nullvals@mit.edu", "--snapshot", str(story.snapshots[0]))
    (person,) = answer["people"]  # type: ignore[misc]
    assert person["changes"] == [
        {"snapshot": story.snapshots[1].stem, "what": "no longer in the source"}
    ]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("000000003", "missing_primary_id"),
        ("000000005", "duplicate_in_source"),
        ("Second", "duplicate_in_source"),
    ],
)
def test_explain_each_rejection_reason_in_words(story: Story, query: str, reason: str) -> None:
    code, answer = explain(story, query)
    rejected = [s for p in answer["people"] for s in p["sources"] if s["reason"] == reason]  # type: ignore[union-attr]
    assert rejected and rejected[0]["explanation"].startswith("Not exported")


def test_explain_unknown_identifier_suggests_close_matches(story: Story) -> None:
    result = patronload("explain", "jdoee", cwd=story.cwd)
    assert result.code == 1
    assert "Did you mean: jdoe" in result.out


def test_explain_several_matches_are_listed(story: Story) -> None:
    code, answer = explain(story, "kerberos")
    people = answer["people"]
    assert sorted(p["sources"][0]["raw"]["MIT_ID"] for p in people) == [  # type: ignore[union-attr, index]
        "000000003",
        "000000004",
        "000000016",
    ]


def test_rejections_csv_for_the_people_who_fix_source_data(story: Story) -> None:
    result = patronload("rejections", "--reason", "missing_primary_id", "--csv", cwd=story.cwd)
    rows = list(csv.DictReader(result.out.splitlines()))
    assert sorted((r["patron_type"], r["mit_id"]) for r in rows) == [
        ("staff", "000000003"),
        ("staff", "000000004"),
        ("student", "000000016"),
    ]
    assert all(r["explanation"].startswith("Not exported: no Kerberos name") for r in rows)


def test_history_one_line_per_run(story: Story) -> None:
    lines = patronload("history", cwd=story.cwd).out.splitlines()
    assert len(lines) == 3
    assert "staff 7  student 6" in lines[0] and "staff 6  student 6" in lines[1]
    assert "staff 7  student 5" in lines[2]
    assert "student: duplicate_in_source 1, missing_primary_id 1, student_is_staff 2" in lines[2]


def test_diff_last_two_snapshots_counts_first(story: Story) -> None:
    result = patronload("diff", "--json", cwd=story.cwd)
    assert result.code == 0, result.err
    answer = json.loads(result.out)
    assert answer["counts"]["staff"]["added"] == 1 and answer["counts"]["student"]["removed"] == 1
    moves = {(c["patron_type"], c["kind"], c["record_key"]) for c in answer["changes"]}
    assert moves == {("staff", "added", "GRAD@MIT.EDU"), ("student", "removed", "GRAD@MIT.EDU")}


def test_diff_named_snapshots_shows_changed_fields(story: Story) -> None:
    old, new = story.snapshots[0], story.snapshots[1]
    result = patronload("diff", old, new, cwd=story.cwd)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert any(
        line.split()[:3] == ["~", "staff", "JDOE@MIT.EDU"] and "first_name" in line
        for line in lines
    )
    assert any(line.split()[:3] == ["-", "staff", "NULLVALS@MIT.EDU"] for line in lines)


def test_diff_needs_two_snapshots(tmp_path: Path) -> None:
    result = patronload("diff", cwd=tmp_path)
    assert (result.code, result.err) == (2, "Error: diff needs two snapshots; snapshots has 0\n")


def test_find_in_a_real_export_of_thousands_of_users(tmp_path: Path) -> None:
    assert patronload("demo-warehouse", "wh.duckdb", "--patrons", "5000", cwd=tmp_path).code == 0
    result = patronload("run", "--warehouse", "wh.duckdb", "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    student_zip = next(
        f["zip"] for f in json.loads(result.out)["files"] if f["patron_type"] == "student"
    )
    import duckdb

    build = next((tmp_path / "build").glob("*.duckdb"))
    with duckdb.connect(str(build), read_only=True) as con:
        (wanted,) = con.execute(
            "SELECT record_key FROM users WHERE patron_type = 'student' ORDER BY record_key "
            "LIMIT 1 OFFSET 2000"
        ).fetchone() or ("",)
    found = patronload("find", wanted.lower(), "--in", student_zip, cwd=tmp_path)
    assert found.code == 0, found.err
    assert found.out.splitlines()[0].endswith(", record 2,001")
    assert f"<primary_id>{wanted}</primary_id>" in found.out
    missing = patronload("find", "no-such-person-x", "--in", student_zip, cwd=tmp_path)
    assert missing.code == 1 and missing.out.startswith("no record in ")
