"""`patronload impact`: a change to a project in a real git repository, through the real CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, ROOT, Result, edit, patronload

GIT = ["git", "-c", "user.name=Analyst", "-c", "user.email=analyst@example.org"]
GIT += ["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]

#: Exported by the rules fixture on 2023-03-01.
STAFF = ["DUPSTAFF", "HOSTILE", "JDOE", "NONEBC", "NULLVALS", "PREFS", "SEMP"]
STUDENTS = ["CROSS", "DUPSTU", "GRAD", "NIHONLY", "NOYEAR", "UNDER"]
REJECTIONS = [
    {"patron_type": "staff", "reason": "duplicate_in_source", "base": 1, "now": 1},
    {"patron_type": "staff", "reason": "missing_primary_id", "base": 2, "now": 2},
    {"patron_type": "student", "reason": "duplicate_in_source", "base": 1, "now": 1},
    {"patron_type": "student", "reason": "missing_primary_id", "base": 1, "now": 1},
    {"patron_type": "student", "reason": "student_is_staff", "base": 1, "now": 1},
]
NOTHING_CHANGED = {
    "staff": {"added": 0, "removed": 0, "changed": 0, "unchanged": 7},
    "student": {"added": 0, "removed": 0, "changed": 0, "unchanged": 6},
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@dataclass(frozen=True)
class Repo:
    """A git repository holding the project, committed, with a place to run from."""

    top: Path
    project: Path
    cwd: Path
    tmpdir: Path
    snapshot: Path

    def impact(self, *args: str) -> Result:
        """`patronload impact` on the project, TMPDIR inside the test's folder."""
        return patronload(
            "--project", self.project, "impact", "--snapshot", self.snapshot,
            "--as-of", "2023-03-01", *args,
            cwd=self.cwd, env={"TMPDIR": str(self.tmpdir)},
        )  # fmt: skip

    def impact_json(self, *args: str) -> Any:
        result = self.impact("--json", *args)
        assert result.code == 0, result.err
        return json.loads(result.out)

    def commit(self, message: str) -> None:
        git(self.top, "add", "-A")
        git(self.top, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the rules fixture warehouse, taken once with the real CLI."""
    cwd = tmp_path_factory.mktemp("impact-snapshot")
    result = patronload("extract", "--warehouse", FIXTURES / "rules", cwd=cwd)
    assert result.code == 0, result.err
    (path,) = (cwd / "snapshots").glob("*.duckdb")
    return path


def make_repo(tmp_path: Path, snapshot: Path, folder: str = "") -> Repo:
    """A repository whose first commit is empty and whose second adds the project."""
    top = tmp_path / "repo"
    project = top / folder
    for part in ("queries", "schemas"):
        shutil.copytree(ROOT / part, project / part)
    shutil.copy(ROOT / "patronload.toml", project / "patronload.toml")
    git(tmp_path, "init", "-q", str(top))
    git(top, "commit", "-q", "--allow-empty", "-m", "start")
    repo = Repo(top, project, tmp_path / "work", tmp_path / "tmp", snapshot)
    repo.commit("the project")
    repo.cwd.mkdir()
    repo.tmpdir.mkdir()
    return repo


@pytest.fixture
def repo(tmp_path: Path, snapshot: Path) -> Repo:
    return make_repo(tmp_path, snapshot)


def sis2(repo: Repo) -> None:
    edit(
        repo.project / "queries/models/users.sql", "'external_id': 'SIS',", "'external_id': 'SIS2',"
    )


def exclude_support_staff(repo: Repo) -> None:
    """Support staff (SEMP) rejected with a new reason; SEMP's student row is then exported."""
    edit(
        repo.project / "queries/models/staff_verdicts.sql",
        "        WHEN r.krb_rank > 1 THEN 'duplicate_in_source'\n",
        "        WHEN r.krb_rank > 1 THEN 'duplicate_in_source'\n"
        "        WHEN r.LIBRARY_PERSON_TYPE_CODE = 'S' THEN 'support_staff'\n",
    )


def example(patron_type: str, record_key: str, before: Any, after: Any) -> dict[str, Any]:
    return {"patron_type": patron_type, "record_key": record_key, "before": before, "after": after}


def table(lines: list[str], header: str) -> dict[str, list[str]]:
    """The rows of the plain-text table whose header starts with the words of `header`."""
    words = header.split()
    start = next(i for i, line in enumerate(lines) if line.split()[: len(words)] == words)
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        first, *rest = line.split()
        rows[first] = rest
    return rows


def test_impact_external_id_changes_every_record_in_that_element(repo: Repo) -> None:
    sis2(repo)
    result = repo.impact("--limit", "20")
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[2] == "modified queries/models/users.sql"
    assert table(lines, "patron type added") == {
        "staff": ["0", "0", "7", "0"],
        "student": ["0"] * 2 + ["6", "0"],
    }
    assert table(lines, "element changed") == {"external_id": ["7", "6"]}
    assert "external_id: HEAD → working tree (13 of 13 shown)" in lines
    examples = [line for line in lines if line.endswith("SIS → SIS2")]
    shown = {tuple(line.split()[:2]) for line in examples}
    assert shown == {("staff", f"{k}@MIT.EDU") for k in STAFF} | {
        ("student", f"{k}@MIT.EDU") for k in STUDENTS
    }
    assert re.search(r"^  staff +JDOE@MIT\.EDU +SIS → SIS2$", result.out, re.M)


def test_impact_json_has_counts_elements_and_full_examples(repo: Repo) -> None:
    sis2(repo)
    data = repo.impact_json("--limit", "2")
    assert data["base"] == "HEAD"
    assert data["commit"] == git(repo.top, "rev-parse", "HEAD").strip()
    assert data["as_of"] == "2023-03-01"
    assert data["files"] == {"queries/models/users.sql": "modified"}
    assert data["counts"] == {
        "staff": {"added": 0, "removed": 0, "changed": 7, "unchanged": 0},
        "student": {"added": 0, "removed": 0, "changed": 6, "unchanged": 0},
    }
    assert data["elements"] == {"external_id": {"staff": 7, "student": 6}}
    # Patron types are taken in turn, so both show even with a limit of 2.
    assert data["examples"] == {
        "external_id": [
            example("staff", "DUPSTAFF@MIT.EDU", "SIS", "SIS2"),
            example("student", "CROSS@MIT.EDU", "SIS", "SIS2"),
        ]
    }
    assert (data["added"], data["removed"]) == ([], [])
    assert data["rejections"] == REJECTIONS
    assert (data["new_elements"], data["dropped_elements"]) == ([], [])


def test_impact_excluding_a_group_removes_records_and_moves_rejections(repo: Repo) -> None:
    exclude_support_staff(repo)
    data = repo.impact_json()
    assert data["counts"] == {
        "staff": {"added": 0, "removed": 1, "changed": 0, "unchanged": 6},
        "student": {"added": 1, "removed": 0, "changed": 0, "unchanged": 6},
    }
    assert data["elements"] == {}
    assert data["removed"] == [
        {"patron_type": "staff", "record_key": "SEMP@MIT.EDU", "reasons": ["support_staff"]}
    ]
    assert data["added"] == [
        {"patron_type": "student", "record_key": "SEMP@MIT.EDU", "reasons": ["student_is_staff"]}
    ]
    moved = {(r["patron_type"], r["reason"]): (r["base"], r["now"]) for r in data["rejections"]}
    assert moved[("staff", "support_staff")] == (0, 1)
    assert moved[("student", "student_is_staff")] == (1, 0)

    lines = repo.impact().out.splitlines()
    assert "  staff  SEMP@MIT.EDU  rejected now: support_staff" in lines
    assert "  student  SEMP@MIT.EDU  rejected at HEAD: student_is_staff" in lines
    assert table(lines, "patron type rejected for")["staff"] == ["support_staff", "0", "1", "(+1)"]


def test_impact_names_nested_and_new_elements(repo: Repo) -> None:
    users = repo.project / "queries/models/users.sql"
    edit(users, "'email_address': p.email_address,", "'email_address': upper(p.email_address),")
    edit(users, "'password': '',", "'password': '',\n        'pin_number': p.mit_id,")
    data = repo.impact_json("--limit", "1")
    assert data["elements"] == {
        "pin_number": {"staff": 7, "student": 6},
        "contact_info.emails.email.email_address": {"staff": 2, "student": 1},
    }
    assert data["new_elements"] == ["pin_number"]
    assert data["examples"]["contact_info.emails.email.email_address"] == [
        example("staff", "JDOE@MIT.EDU", ["jdoe@mit.edu"], ["JDOE@MIT.EDU"])
    ]
    assert data["examples"]["pin_number"][0]["before"] is None


def test_impact_without_change_says_so(repo: Repo) -> None:
    result = repo.impact()
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[2] == (
        "no change to the SQL: queries/, schemas/ and patronload.toml are as at HEAD"
    )
    assert table(lines, "patron type added") == {
        "staff": ["0"] * 3 + ["7"],
        "student": ["0"] * 3 + ["6"],
    }
    data = repo.impact_json()
    assert (data["files"], data["counts"], data["elements"]) == ({}, NOTHING_CHANGED, {})
    assert data["rejections"] == REJECTIONS


def test_impact_against_an_older_base(repo: Repo) -> None:
    sis2(repo)
    repo.commit("SIS2")
    assert repo.impact_json()["counts"] == NOTHING_CHANGED
    data = repo.impact_json("--base", "HEAD~1")
    assert data["base"] == "HEAD~1"
    assert data["elements"] == {"external_id": {"staff": 7, "student": 6}}


def test_impact_writes_nothing_but_temporary_files_it_removes(repo: Repo) -> None:
    sis2(repo)
    exclude_support_staff(repo)
    assert repo.impact().code == 0
    assert list(repo.cwd.iterdir()) == []  # no outbox/, history/ or build/
    assert list(repo.tmpdir.iterdir()) == []
    assert git(repo.top, "status", "--porcelain").splitlines() == [
        " M queries/models/staff_verdicts.sql",
        " M queries/models/users.sql",
    ]


def test_impact_unknown_base_is_a_one_line_usage_error(repo: Repo) -> None:
    result = repo.impact("--base", "nosuchrev")
    assert (result.code, result.out) == (2, "")
    assert result.err == f"Error: --base: unknown revision 'nosuchrev' in {repo.top.resolve()}\n"


def test_impact_outside_a_git_repository_is_a_usage_error(tmp_path: Path, snapshot: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "queries", project / "queries")
    shutil.copy(ROOT / "patronload.toml", project)
    result = patronload("--project", project, "impact", "--snapshot", snapshot, cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith(
        f"Error: {project.resolve()} is not in a git repository, so there is no revision "
        "to compare with (fatal: not a git repository"
    )
    assert len(result.err.splitlines()) == 1


def test_impact_project_in_a_subfolder_absent_at_base(tmp_path: Path, snapshot: Path) -> None:
    repo = make_repo(tmp_path, snapshot, "rules/patrons")
    sis2(repo)
    assert repo.impact_json()["elements"] == {"external_id": {"staff": 7, "student": 6}}
    result = repo.impact("--base", "HEAD~1")
    assert (result.code, result.err) == (
        2,
        "Error: the project rules/patrons/ did not exist at HEAD~1: it has no queries/ folder "
        "and patronload.toml there\n",
    )


def test_impact_model_failing_at_base_names_the_revision(repo: Repo) -> None:
    broken = repo.project / "queries/models/broken.sql"
    broken.write_text("SELECT no_such_column FROM patrons\n")
    repo.commit("broken")
    broken.unlink()
    result = repo.impact()
    assert result.code == 1
    assert result.err.startswith(
        "Error: building the models as at HEAD failed: HEAD:queries/models/broken.sql: "
        "Binder Error:"
    )
    assert len(result.err.splitlines()) == 1


def test_impact_model_failing_in_the_working_tree_names_it(repo: Repo) -> None:
    broken = repo.project / "queries/models/broken.sql"
    broken.write_text("SELECT no_such_column FROM patrons\n")
    result = repo.impact()
    assert result.code == 1
    assert result.err.startswith(
        f"Error: building the models in the working tree failed: {broken.resolve()}: Binder Error:"
    )
    assert len(result.err.splitlines()) == 1
