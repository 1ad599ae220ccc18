"""The diff engine: snapshots of edited copies of the rules fixture, built and compared."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest

from exporter.build import build
from exporter.diff import Change, DiffResult, diff_builds, diff_snapshots
from exporter.errors import BuildError, SnapshotError
from exporter.extract import extract
from exporter.project import load_project
from tests.conftest import FIXTURES

AS_OF = date(2023, 3, 1)

Rows = list[dict[str, str]]


def edit_table(folder: Path, table: str, edit: Callable[[Rows], Rows]) -> None:
    """Rewrite `<folder>/<table>.csv` with `edit` applied to its rows."""
    path = folder / f"{table}.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = edit(list(reader))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def set_values(key: str, **values: str) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        return [{**r, **values} if r["KRB_NAME_UPPERCASE"] == key else r for r in rows]

    return edit


def drop(key: str) -> Callable[[Rows], Rows]:
    return lambda rows: [r for r in rows if r["KRB_NAME_UPPERCASE"] != key]


def add(like: str, **values: str) -> Callable[[Rows], Rows]:
    """Append a copy of the row of `like` with `values` changed."""

    def edit(rows: Rows) -> Rows:
        template = next(r for r in rows if r["KRB_NAME_UPPERCASE"] == like)
        return [*rows, {**template, **values}]

    return edit


def warehouse(folder: Path) -> Path:
    """A copy of the rules fixture warehouse (its CSV files only)."""
    folder.mkdir(parents=True)
    for path in (FIXTURES / "rules").glob("*.csv"):
        shutil.copy(path, folder)
    return folder


@dataclass(frozen=True)
class Snapshots:
    """Three snapshots: the fixture, the fixture again, and an edited fixture."""

    folder: Path
    old: Path
    same: Path
    new: Path


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Snapshots:
    root = tmp_path_factory.mktemp("diff")
    project = load_project()
    folder = root / "snapshots"
    original = warehouse(root / "original")
    edited = warehouse(root / "edited")
    for table, edit in [
        ("LIBRARY_EMPLOYEE", set_values("JDOE", LEGAL_FIRST_NAME="Janet")),
        ("LIBRARY_EMPLOYEE", set_values("NULLVALS", LEGAL_LAST_NAME="Vals", OFFICE_PHONE="1")),
        ("LIBRARY_EMPLOYEE", drop("NONEBC")),
        # GRAD becomes staff too: staff wins, so GRAD moves from student to staff.
        ("LIBRARY_EMPLOYEE", add("SEMP", MIT_ID="000000011", KRB_NAME_UPPERCASE="GRAD")),
        ("LIBRARY_STUDENT", drop("UNDER")),
        ("LIBRARY_STUDENT", add("CROSS", MIT_ID="000000020", KRB_NAME_UPPERCASE="NEWSTU")),
    ]:
        edit_table(edited, table, edit)
    old = extract(project, original, folder).snapshot
    same = extract(project, original, folder).snapshot
    new = extract(project, edited, folder).snapshot
    return Snapshots(folder, old, same, new)


@pytest.fixture(scope="module")
def result(snapshots: Snapshots) -> DiffResult:
    return diff_snapshots(load_project(), snapshots.old, snapshots.new, AS_OF)


def listed(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.patron_type, c.kind, c.record_key) for c in changes]


ALL_CHANGES = [
    ("staff", "added", "GRAD@MIT.EDU"),
    ("staff", "changed", "JDOE@MIT.EDU"),
    ("staff", "changed", "NULLVALS@MIT.EDU"),
    ("staff", "removed", "NONEBC@MIT.EDU"),
    ("student", "added", "NEWSTU@MIT.EDU"),
    ("student", "removed", "GRAD@MIT.EDU"),
    ("student", "removed", "UNDER@MIT.EDU"),
]


def test_diff_counts_every_kind_per_patron_type(result: DiffResult) -> None:
    assert result.counts == {
        "staff": {"added": 1, "removed": 1, "changed": 2, "unchanged": 4},
        "student": {"added": 1, "removed": 2, "changed": 0, "unchanged": 4},
    }
    assert result.as_of == AS_OF


def test_diff_lists_changes_by_type_kind_and_key(result: DiffResult) -> None:
    assert listed(result.changes) == ALL_CHANGES
    assert result.omitted == 0


def test_diff_changed_legal_first_name_shows_first_name_only(result: DiffResult) -> None:
    jdoe = next(c for c in result.changes if c.record_key == "JDOE@MIT.EDU")
    assert jdoe.fields == ("first_name",)
    assert jdoe.old == {"first_name": "Jane"}
    assert jdoe.new == {"first_name": "Janet"}


def test_diff_changed_fields_are_top_level_in_record_order(result: DiffResult) -> None:
    nullvals = next(c for c in result.changes if c.record_key == "NULLVALS@MIT.EDU")
    assert nullvals.fields == ("last_name", "contact_info")
    assert nullvals.old is not None and nullvals.new is not None
    assert (nullvals.old["last_name"], nullvals.new["last_name"]) == ("", "Vals")
    assert nullvals.old["contact_info"]["phones"] == {"phone": []}
    assert nullvals.new["contact_info"]["phones"]["phone"][0]["phone_number"] == "1"


def test_diff_student_who_becomes_staff_moves_type(result: DiffResult) -> None:
    grad = [c for c in result.changes if c.record_key == "GRAD@MIT.EDU"]
    assert [(c.patron_type, c.kind) for c in grad] == [("staff", "added"), ("student", "removed")]
    assert all(c.fields == () and c.old is None and c.new is None for c in grad)


def test_diff_limit_lists_the_first_changes_and_counts_all(snapshots: Snapshots) -> None:
    limited = diff_snapshots(load_project(), snapshots.old, snapshots.new, AS_OF, limit=3)
    assert listed(limited.changes) == ALL_CHANGES[:3]
    assert sum(n["changed"] for n in limited.counts.values()) == 2
    assert limited.omitted == 4
    assert limited.lines()[-1] == "... and 4 more"
    none = diff_snapshots(load_project(), snapshots.old, snapshots.new, AS_OF, limit=0)
    assert none.changes == [] and none.counts == limited.counts


def test_diff_json_has_documented_sorted_keys(result: DiffResult) -> None:
    text = result.to_json()
    data = json.loads(text)
    assert "\n" not in text
    assert json.dumps(data, sort_keys=True) == text
    assert set(data) == {"old_snapshot", "new_snapshot", "as_of", "counts", "changes", "omitted"}
    assert data["as_of"] == "2023-03-01"
    assert data["old_snapshot"] == str(result.old_snapshot)
    assert data["counts"]["student"] == {"added": 1, "removed": 2, "changed": 0, "unchanged": 4}
    assert [(c["patron_type"], c["kind"], c["record_key"]) for c in data["changes"]] == ALL_CHANGES
    jdoe = data["changes"][1]
    assert set(jdoe) == {"patron_type", "record_key", "kind", "fields", "old", "new"}
    assert (jdoe["fields"], jdoe["old"], jdoe["new"]) == (
        ["first_name"],
        {"first_name": "Jane"},
        {"first_name": "Janet"},
    )
    assert data["changes"][0]["old"] is None and data["changes"][0]["fields"] == []


def test_diff_lines_counts_first_then_one_line_per_person(result: DiffResult) -> None:
    assert result.lines() == [
        f"old {result.old_snapshot}",
        f"new {result.new_snapshot}",
        "as of 2023-03-01",
        "",
        "patron type        added    removed    changed  unchanged",
        "staff                  1          1          2          4",
        "student                1          2          0          4",
        "",
        "+ staff   GRAD@MIT.EDU",
        "~ staff   JDOE@MIT.EDU      first_name",
        "~ staff   NULLVALS@MIT.EDU  last_name, contact_info",
        "- staff   NONEBC@MIT.EDU",
        "+ student NEWSTU@MIT.EDU",
        "- student GRAD@MIT.EDU",
        "- student UNDER@MIT.EDU",
    ]


def test_diff_of_the_same_data_in_two_snapshots_is_empty(snapshots: Snapshots) -> None:
    same = diff_snapshots(load_project(), snapshots.old, snapshots.same, AS_OF)
    assert same.changes == []
    assert same.counts == {
        "staff": {"added": 0, "removed": 0, "changed": 0, "unchanged": 7},
        "student": {"added": 0, "removed": 0, "changed": 0, "unchanged": 6},
    }


def test_diff_leaves_no_build_behind(
    snapshots: Snapshots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(tmp_path)
    before = sorted(snapshots.folder.iterdir())
    diff_snapshots(load_project(), snapshots.old, snapshots.new, AS_OF)
    assert list(temp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temp"]
    assert sorted(snapshots.folder.iterdir()) == before


def test_diff_missing_snapshot_is_a_one_line_snapshot_error(
    snapshots: Snapshots, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.duckdb"
    with pytest.raises(SnapshotError) as caught:
        diff_snapshots(load_project(), snapshots.old, missing, AS_OF)
    assert str(caught.value) == f"snapshot not found: {missing}"


def test_diff_unreadable_snapshot_is_a_one_line_snapshot_error(
    snapshots: Snapshots, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_text("not a database\n")
    with pytest.raises(SnapshotError) as caught:
        diff_snapshots(load_project(), garbage, snapshots.new, AS_OF)
    message = str(caught.value)
    assert message.startswith(f"{garbage}: not a readable snapshot: ")
    assert "\n" not in message


def test_diff_builds_on_two_dates_differ_in_every_record(
    snapshots: Snapshots, tmp_path: Path
) -> None:
    project = load_project()
    earlier = build(project, snapshots.old, tmp_path / "earlier.duckdb", AS_OF).database
    later = build(project, snapshots.old, tmp_path / "later.duckdb", date(2024, 3, 1)).database
    counts, changes = diff_builds(earlier, later, "users", limit=100)
    assert counts == {
        "staff": {"added": 0, "removed": 0, "changed": 7, "unchanged": 0},
        "student": {"added": 0, "removed": 0, "changed": 6, "unchanged": 0},
    }
    assert {c.fields for c in changes} == {("expiry_date", "purge_date")}
    assert changes[0].old == {"expiry_date": "2023-09-01Z", "purge_date": "2025-09-01Z"}


def model_db(path: Path, record_sql: str) -> Path:
    """A database with a final model `m` of three records whose struct is `record_sql`."""
    con = duckdb.connect(str(path))
    con.execute(
        f"CREATE TABLE m AS SELECT 'a' AS patron_type, k AS record_key, {record_sql} AS rec "
        "FROM (VALUES ('1'), ('2'), ('3')) AS t(k)"
    )
    con.close()
    return path


def test_diff_builds_takes_field_names_from_the_record_type(tmp_path: Path) -> None:
    old = model_db(tmp_path / "old.duckdb", "{'x': k, 'y': 'same', '@z': [k]}")
    new = model_db(tmp_path / "new.duckdb", "{'x': k, 'y': 'same', '@z': [k || '!']}")
    counts, changes = diff_builds(old, new, "m", limit=1)
    assert counts == {"a": {"added": 0, "removed": 0, "changed": 3, "unchanged": 0}}
    assert changes == [Change("a", "1", "changed", ("@z",), {"@z": ["1"]}, {"@z": ["1!"]})]


def test_diff_builds_refuses_records_of_different_types(tmp_path: Path) -> None:
    old = model_db(tmp_path / "old.duckdb", "{'x': k}")
    new = model_db(tmp_path / "new.duckdb", "{'x': k, 'y': k}")
    with pytest.raises(BuildError, match="the records of m differ in type"):
        diff_builds(old, new, "m")


def test_diff_builds_missing_build_or_model(tmp_path: Path) -> None:
    old = model_db(tmp_path / "old.duckdb", "{'x': k}")
    with pytest.raises(BuildError) as caught:
        diff_builds(old, tmp_path / "none.duckdb", "m")
    assert str(caught.value) == f"build not found: {tmp_path / 'none.duckdb'}"
    with pytest.raises(BuildError) as caught:
        diff_builds(old, old, "users")
    assert str(caught.value) == f"{old}: has no final model users"
