"""preview (the XML that would be sent, from the models) and models (the DAG with counts)."""

from __future__ import annotations

import re
from pathlib import Path

import xmltodict

from tests.conftest import FIXTURES, Run, edit, patronload


def records(out: str) -> dict[str, dict[str, object]]:
    """The previewed records by primary id, parsed."""
    found = {}
    for chunk in re.split(r"^<!-- \w+ \S+ -->$", out, flags=re.MULTILINE)[1:]:
        user = xmltodict.parse(chunk)["user"]
        found[user["primary_id"]] = user
    return found


def test_preview_is_the_record_that_is_sent(rules_run: Run) -> None:
    result = patronload("preview", "jdoe@mit.edu", "--as-of", "2023-03-01", cwd=rules_run.workdir)
    assert result.code == 0, result.err
    assert result.out.startswith("<!-- staff JDOE@MIT.EDU -->\n<user>\n  <record_type")
    assert records(result.out) == {"JDOE@MIT.EDU": rules_run.users["JDOE@MIT.EDU"]}


def test_preview_by_type_and_limit(rules_run: Run) -> None:
    result = patronload(
        "preview", "--type", "student", "--limit", "2", "--as-of", "2023-03-01",
        cwd=rules_run.workdir,
    )  # fmt: skip
    assert result.code == 0, result.err
    found = records(result.out)
    assert len(found) == 2
    assert all(result.out.count(f"<!-- student {key} -->") == 1 for key in found)
    assert all(found[key] == rules_run.users[key] for key in found)


def test_preview_nobody_matches(rules_run: Run) -> None:
    result = patronload("preview", "nobody-at-all", cwd=rules_run.workdir)
    assert (result.code, result.out, result.err) == (1, "", "no patron matches\n")


def test_preview_shows_an_edit_before_any_export(tmp_path: Path, project_copy: Path) -> None:
    assert patronload("extract", "--warehouse", FIXTURES / "rules", cwd=tmp_path).code == 0
    edit(
        project_copy / "queries" / "models" / "users.sql",
        "'external_id': 'SIS'",
        "'external_id': 'SIS2'",
    )
    result = patronload("--project", project_copy, "preview", "--limit", "1", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "<external_id>SIS2</external_id>" in result.out
    assert not (tmp_path / "outbox").exists()


def test_models_in_dependency_order_with_rows(rules_run: Run) -> None:
    result = patronload("models", cwd=rules_run.workdir)
    assert result.code == 0, result.err
    rows = {line.split()[0]: line.split() for line in result.out.splitlines()}
    order = list(rows)
    for model, line in rows.items():
        reads = " ".join(line[line.index("reads") + 1 :]).split(", ") if "reads" in line else []
        assert all(order.index(r) < order.index(model) for r in reads if r in rows), model
    assert rows["users"][1:3] == ["table", "13"]
    assert rows["patrons"][1:3] == ["view", "13"]
    assert rows["rejections"][1:3] == ["table", "6"]
