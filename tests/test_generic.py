"""Proof that the Python is generic: changes made only in SQL and CSV reach the XML,
the explanations and the counts, with exporter/ untouched (issue 6's three cases)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FIXTURES, Run, edit, patronload, read_users, run_fixture


def run_project(tmp_path: Path, project: Path) -> Run:
    result = patronload(
        "--project",
        project,
        "run",
        "--warehouse",
        FIXTURES / "rules",
        "--as-of",
        "2023-03-01",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    zips = {p.name.split("_")[0]: p for p in sorted((tmp_path / "outbox").glob("*.zip"))}
    users = {k: v for z in zips.values() for k, v in read_users(z).items()}
    return Run(tmp_path, result, zips, users)


def test_a_new_element_from_sql_only(tmp_path: Path, project_copy: Path) -> None:
    models = project_copy / "queries" / "models"
    edit(
        models / "staff_patrons.sql",
        "    'false' AS is_researcher,",
        "    'false' AS is_researcher,\n    coalesce(v.POSITION_TITLE, '') AS job_description,",
    )
    edit(
        models / "users.sql",
        "'job_description': '',",
        "'job_description': coalesce(p.job_description, ''),",
    )
    run = run_project(tmp_path, project_copy)
    assert run.users["JDOE@MIT.EDU"]["job_description"] == "Librarian"
    assert run.users["GRAD@MIT.EDU"]["job_description"] is None  # students: empty element


def test_a_second_statistic_category_from_a_new_seed(tmp_path: Path, project_copy: Path) -> None:
    (project_copy / "queries" / "seeds" / "person_type_statistics.csv").write_text(
        "person_type_code,statistic_category\nF,FAC\nS,SUP\n"
    )
    models = project_copy / "queries" / "models"
    edit(
        models / "staff_patrons.sql",
        "LEFT JOIN staff_departments d ON d.org_unit_id = v.ORG_UNIT_ID",
        "LEFT JOIN staff_departments d ON d.org_unit_id = v.ORG_UNIT_ID\n"
        "LEFT JOIN person_type_statistics t ON t.person_type_code = v.LIBRARY_PERSON_TYPE_CODE",
    )
    edit(
        models / "staff_patrons.sql",
        "    'false' AS is_researcher,",
        "    'false' AS is_researcher,\n    t.statistic_category AS type_category,",
    )
    edit(
        models / "users.sql",
        """            'user_statistic': [{
                '@segment_type': 'External',
                'statistic_category': p.statistic_category,
                'category_type': coded('DEPT', 'Department')
            }]""",
        """            'user_statistic': list_concat([{
                '@segment_type': 'External',
                'statistic_category': p.statistic_category,
                'category_type': coded('DEPT', 'Department')
            }], CASE WHEN p.type_category IS NULL THEN [] ELSE [{
                '@segment_type': 'External',
                'statistic_category': coded(p.type_category, ''),
                'category_type': coded('TYPE', 'Person type')
            }] END)""",
    )
    run = run_project(tmp_path, project_copy)
    stats = run.users["JDOE@MIT.EDU"]["user_statistics"]["user_statistic"]
    assert [s["category_type"]["#text"] for s in stats] == ["DEPT", "TYPE"]
    assert stats[1]["statistic_category"] == {"@desc": "", "#text": "FAC"}
    single = run.users["NULLVALS@MIT.EDU"]["user_statistics"]["user_statistic"]
    assert single["category_type"]["#text"] == "DEPT"  # no person type: one statistic only
    assert patronload("validate", *run.zips.values(), cwd=tmp_path).code == 0


def test_a_group_excluded_with_a_new_reason_code(tmp_path: Path, project_copy: Path) -> None:
    with (project_copy / "queries" / "seeds" / "rejection_reasons.csv").open("a") as fh:
        fh.write(
            'support_staff_excluded,"Not exported as staff: support staff load as '
            'students when they study here, otherwise not at all"\n'
        )
    edit(
        project_copy / "queries" / "models" / "staff_verdicts.sql",
        "        WHEN r.no_krb THEN 'missing_primary_id'",
        "        WHEN r.no_krb THEN 'missing_primary_id'\n"
        "        WHEN r.LIBRARY_PERSON_TYPE_CODE = 'S' THEN 'support_staff_excluded'",
    )
    run = run_project(tmp_path, project_copy)
    report = json.loads(
        patronload(
            "--project",
            project_copy,
            "export",
            "--as-of",
            "2023-03-01",
            "--json",
            "--outbox",
            "again",
            cwd=tmp_path,
        ).out
    )
    assert report["rejections"]["staff"]["support_staff_excluded"] == 1
    assert "student_is_staff" not in report["rejections"]["student"]  # SEMP now loads as a student
    assert run.users["SEMP@MIT.EDU"]["user_group"] == "31"
    answer = json.loads(
        patronload("--project", project_copy, "explain", "semp", "--json", cwd=tmp_path).out
    )
    (person,) = answer["people"]
    assert person["exported_as"] == "student"
    staff_row = next(s for s in person["sources"] if s["patron_type"] == "staff")
    assert staff_row["reason"] == "support_staff_excluded"
    assert staff_row["explanation"].startswith("Not exported as staff: support staff")


def test_the_default_project_passes_the_same_checks_unchanged(tmp_path: Path) -> None:
    run = run_fixture(tmp_path, FIXTURES / "rules")
    assert run.users["JDOE@MIT.EDU"]["job_description"] is None
