"""`patronload lint`: every problem of queries/ at file:line:col, in one run, no cascades.

Each test writes its own small files into a copy of the project, so the expected
positions (counted by hand, in characters from 1) do not move when the shipped SQL
changes. The command runs in the copy, so paths are shown relative to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.lint import duckdb_error_position
from tests.conftest import ROOT, Result, edit, patronload


def lint(project: Path) -> Result:
    return patronload("--project", project, "lint", cwd=project)


def write(project: Path, name: str, text: str) -> None:
    path = project / "queries" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def problems(result: Result) -> list[str]:
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    return result.out.splitlines()


def test_lint_passes_on_the_shipped_project(tmp_path: Path) -> None:
    queries = ROOT / "queries"
    files = [
        *(queries / "extract").glob("*.sql"),
        *(queries / "seeds").glob("*.csv"),
        *(queries / "models").glob("*.sql"),
        *(queries / "tests").glob("*.sql"),
        queries / "macros.sql",
        ROOT / "schemas" / "sources.sql",
        ROOT / "patronload.toml",
    ]
    result = patronload("lint", cwd=tmp_path)
    assert (result.code, result.out) == (0, f"{len(files)} file(s) checked, no problems\n")
    assert result.err == ""


def test_lint_reports_syntax_errors_at_the_token_in_each_dialect(project_copy: Path) -> None:
    write(
        project_copy,
        "extract/visitor.sql",
        "SELECT\n    CAST(s.TERM_ZIP AS) AS TERM_ZIP\nFROM LIBRARY_STUDENT s\n",
    )
    write(
        project_copy,
        "models/departments.sql",
        "-- Departments\nSELECT d.org_unit_id, coalesce(d.statistic_category, 'ZZ' AS category\n"
        "FROM staff_departments d\n",
    )
    write(project_copy, "tests/no_where.sql", "-- c\nSELECT * FROM users u WHERE\n")
    assert problems(lint(project_copy)) == [
        "queries/extract/visitor.sql:2:23: Expected TYPE after CAST",
        "queries/models/departments.sql:2:59: Expecting )",
        "queries/tests/no_where.sql:2:23: Required keyword: 'this' missing for "
        "<class 'sqlglot.expressions.query.Where'>",
    ]


def test_lint_reports_unknown_tables_in_extracts_models_and_tests(project_copy: Path) -> None:
    write(project_copy, "extract/visitor.sql", "SELECT\n    v.MIT_ID\nFROM LIBRARY_VISITOR v\n")
    write(project_copy, "models/departments.sql", "SELECT x.a FROM staf_departments x\n")
    write(
        project_copy,
        "models/with_cte.sql",
        "WITH d AS (SELECT * FROM staff_departments)\nSELECT d.org_unit_id FROM d\n",
    )
    write(project_copy, "tests/users_exist.sql", "SELECT count(*) AS n FROM userz HAVING n = 0\n")
    assert problems(lint(project_copy)) == [
        "queries/extract/visitor.sql:3:6: unknown table LIBRARY_VISITOR "
        "(known: LIBRARY_EMPLOYEE, LIBRARY_STUDENT)",
        "queries/models/departments.sql:1:17: unknown table staf_departments "
        "(did you mean staff_departments?)",
        "queries/tests/users_exist.sql:1:27: unknown table userz (did you mean users?)",
    ]


def test_lint_reports_every_unknown_extract_column_against_the_schemas(
    project_copy: Path,
) -> None:
    write(
        project_copy,
        "extract/visitor.sql",
        "SELECT\n    v.MIT_ID,\n    v.NICKNAME,\n    w.EMAIL_ADDRESS,\n    HOME_TOWN\n"
        "FROM LIBRARY_STUDENT v\n",
    )
    assert problems(lint(project_copy)) == [
        "queries/extract/visitor.sql:3:7: unknown column NICKNAME in LIBRARY_STUDENT",
        "queries/extract/visitor.sql:4:5: unknown table or alias w",
        "queries/extract/visitor.sql:5:5: unknown column HOME_TOWN in LIBRARY_STUDENT",
    ]


def test_lint_reports_unknown_model_and_test_columns_where_duckdb_points(
    project_copy: Path,
) -> None:
    write(
        project_copy,
        "models/departments.sql",
        "-- Departments with their category\nSELECT\n    d.org_unit_id,\n"
        "    d.statistic_categry AS category\nFROM staff_departments d\n",
    )
    write(
        project_copy,
        "tests/keys.sql",
        "-- every record has a key\nSELECT u.record_key FROM users u WHERE u.record_kee IS NULL\n",
    )
    assert problems(lint(project_copy)) == [
        'queries/models/departments.sql:4:5: Binder Error: Table "d" does not have a column '
        'named "statistic_categry"; Candidate bindings: "statistic_category"',
        'queries/tests/keys.sql:2:40: Binder Error: Table "u" does not have a column named '
        '"record_kee"; Candidate bindings: "record_key"',
    ]


def test_lint_columns_are_exact_on_the_first_line_and_on_long_wide_lines(
    project_copy: Path,
) -> None:
    # Line 1 is where the build's CREATE TABLE ... AS SELECT * FROM ( goes; DuckDB cuts
    # long lines to about 80 columns; 文 is two columns wide on a terminal, one character.
    wide = (
        "SELECT '文字文字文字文字文字文字文字文字文字文字' AS label,"
        " 'ééééééééééééééééééééé' AS accents, d.nope FROM staff_departments d\n"
    )
    assert wide.index("d.nope") + 1 == 77
    write(
        project_copy, "models/one_line.sql", "SELECT d.org_unit_id, d.nope FROM staff_departments d"
    )
    write(project_copy, "models/wide.sql", "-- wide\n" + wide)
    lines = problems(lint(project_copy))
    message = 'Binder Error: Table "d" does not have a column named "nope"'
    assert [line.split("; ")[0] for line in lines] == [
        f"queries/models/one_line.sql:1:23: {message}",
        f"queries/models/wide.sql:2:77: {message}",
    ]


def test_lint_rejects_select_star_and_a_view_in_the_final_model(project_copy: Path) -> None:
    edit(project_copy / "patronload.toml", 'final_model = "users"', 'final_model = "final_copy"')
    write(
        project_copy,
        "models/final_copy.sql",
        "-- The users, again\n-- materialized: view\nSELECT\n    u.*\nFROM users u\n",
    )
    assert problems(lint(project_copy)) == [
        "queries/models/final_copy.sql:2:1: the final model must be stored, not a view",
        "queries/models/final_copy.sql:4:5: name the columns; "
        "SELECT * in the final model hides the record",
    ]


def test_lint_reports_oracle_that_does_not_transpile_at_the_construct(
    project_copy: Path,
) -> None:
    write(
        project_copy,
        "extract/visitor.sql",
        "SELECT\n    TO_CHAR(e.APPOINTMENT_END_DATE, 'YYYY-MM-DD') AS END_DATE\n"
        "FROM LIBRARY_EMPLOYEE e, LIBRARY_STUDENT s\nWHERE e.MIT_ID = s.MIT_ID(+)\n",
    )
    assert problems(lint(project_copy)) == [
        "queries/extract/visitor.sql:2:5: cannot run on a local warehouse: Argument 'format' "
        "is not supported for expression 'ToChar' when targeting DuckDB.",
        "queries/extract/visitor.sql:4:18: cannot run on a local warehouse: Outer join syntax "
        "using the (+) operator is not supported.",
    ]


def test_lint_reports_a_cycle_of_models_at_the_read_that_closes_it(project_copy: Path) -> None:
    write(project_copy, "models/loop_a.sql", "SELECT x.n FROM loop_b x\n")
    write(project_copy, "models/loop_b.sql", "-- b reads a\nSELECT y.n FROM loop_a y\n")
    assert problems(lint(project_copy)) == [
        "queries/models/loop_b.sql:2:17: models read each other in a cycle: "
        "loop_a -> loop_b -> loop_a",
    ]


def test_lint_reports_names_that_clash(project_copy: Path) -> None:
    write(project_copy, "models/staff_departments.sql", "SELECT 1 AS a\n")
    write(project_copy, "seeds/staff.csv", "a,b\n1,2\n")
    assert problems(lint(project_copy)) == [
        "queries/models/staff_departments.sql:1:1: model staff_departments has the name of "
        "queries/seeds/staff_departments.csv",
        "queries/seeds/staff.csv:1:1: seed staff has the name of queries/extract/staff.sql",
    ]


def test_lint_reports_a_broken_macro_and_skips_what_calls_it(project_copy: Path) -> None:
    macros = project_copy / "queries" / "macros.sql"
    text = macros.read_text()
    line = text.count("\n") + 2
    macros.write_text(text + "\nCREATE MACRO initials(a, b) AS upper(lft(a, 1)) || upper(b);\n")
    write(
        project_copy,
        "models/departments.sql",
        "SELECT initials(d.org_unit_id, d.statistic_category) AS i FROM staff_departments d\n",
    )
    assert problems(lint(project_copy)) == [
        f"queries/macros.sql:{line}:38: Catalog Error: Scalar Function with name lft does not "
        'exist!; Did you mean "left"?; not checked until fixed: departments',
    ]


def test_lint_reports_a_model_ending_in_a_semicolon_and_a_setting_naming_no_model(
    project_copy: Path,
) -> None:
    toml = project_copy / "patronload.toml"
    edit(toml, 'lookup_model = "patron_lookup"', 'lookup_model = "patron_lookups"')
    line = next(n for n, s in enumerate(toml.read_text().splitlines(), 1) if "lookups" in s)
    write(
        project_copy, "models/departments.sql", "SELECT d.org_unit_id FROM staff_departments d;\n"
    )
    assert problems(lint(project_copy)) == [
        f"patronload.toml:{line}:16: lookup_model: there is no patron_lookups in queries/models",
        "queries/models/departments.sql:1:46: remove the ; at the end: "
        "the build wraps each model in CREATE TABLE ... AS",
    ]


def test_lint_reports_problems_in_several_files_in_one_run(project_copy: Path) -> None:
    write(project_copy, "extract/visitor.sql", "SELECT\n    v.NICKNAME\nFROM LIBRARY_STUDENT v\n")
    write(project_copy, "models/departments.sql", "SELECT d.nope FROM staff_departments d\n")
    write(project_copy, "models/loop_a.sql", "SELECT x.n FROM loop_a x\n")
    write(project_copy, "tests/users_exist.sql", "SELECT * FROM userz\n")
    result = patronload("lint", cwd=project_copy, env={"PATRONLOAD_PROJECT": str(project_copy)})
    assert problems(result) == [
        "queries/extract/visitor.sql:2:7: unknown column NICKNAME in LIBRARY_STUDENT",
        'queries/models/departments.sql:1:8: Binder Error: Table "d" does not have a column '
        'named "nope"; Candidate bindings: "org_unit_id"',
        "queries/models/loop_a.sql:1:17: models read each other in a cycle: loop_a -> loop_a",
        "queries/tests/users_exist.sql:1:15: unknown table userz (did you mean users?)",
    ]
    assert result.err.startswith("4 problem(s) in ")


def test_lint_names_what_a_broken_model_stops_instead_of_failing_it(project_copy: Path) -> None:
    # my_base has no stand-in (its columns come from d.*), so my_mid is not checked; my_mid
    # names its columns, so what reads it is checked on a stand-in, and binds.
    write(
        project_copy,
        "models/my_base.sql",
        "-- base\nSELECT d.*, d.nope AS extra\nFROM staff_departments d\n",
    )
    write(project_copy, "models/my_mid.sql", "SELECT b.org_unit_id, b.whatever FROM my_base b\n")
    write(project_copy, "models/my_top.sql", "SELECT m.org_unit_id FROM my_mid m\n")
    write(project_copy, "tests/my_check.sql", "SELECT * FROM my_top\n")
    assert problems(lint(project_copy)) == [
        'queries/models/my_base.sql:2:13: Binder Error: Table "d" does not have a column named '
        '"nope"; Candidate bindings: "org_unit_id"; '
        "not checked until fixed: my_mid",
    ]


def test_lint_checks_dependants_on_a_stand_in_with_the_declared_columns(
    project_copy: Path,
) -> None:
    write(
        project_copy, "models/my_base.sql", "SELECT d.org_unit_id, d.nope AS extra\n FROM ranks d\n"
    )
    # Binds on the stand-in (org_unit_id, extra): checked, and fine.
    write(
        project_copy, "models/my_mid.sql", "SELECT b.org_unit_id, b.extra + 1 AS n FROM my_base b\n"
    )
    # Does not: maybe its own fault, maybe the stand-in's; named, not reported.
    write(project_copy, "models/my_bad.sql", "SELECT b.missing FROM my_base b\n")
    assert problems(lint(project_copy)) == [
        "queries/models/my_base.sql:2:7: unknown table ranks; not checked until fixed: my_bad",
    ]


def test_lint_a_broken_upstream_model_of_the_project_gives_one_line(project_copy: Path) -> None:
    verdicts = project_copy / "queries" / "models" / "staff_verdicts.sql"
    edit(verdicts, "s.OFFICE_PHONE NULLS LAST", "s.OFFICE_PHONES NULLS LAST")
    text = verdicts.read_text()
    line = text[: text.index("s.OFFICE_PHONES")].count("\n") + 1
    col = text.index("s.OFFICE_PHONES") - text.rfind("\n", 0, text.index("s.OFFICE_PHONES"))
    (only,) = problems(lint(project_copy))
    assert only.startswith(
        f'queries/models/staff_verdicts.sql:{line}:{col}: Binder Error: Table "s" does not '
        'have a column named "OFFICE_PHONES"'
    )
    assert "; not checked until fixed: " in only and "student_verdicts" in only


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (a INTEGER)")
        yield con


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(st.sampled_from("ab \t(é文😀\u0301\u200bﬁ"), max_size=120),
    after=st.text(st.sampled_from("ab \t(é文😀\u0301"), max_size=120),
    lines_before=st.integers(0, 12),
)
def test_duckdb_error_position_is_the_character_duckdb_points_at(
    con: duckdb.DuckDBPyConnection, before: str, after: str, lines_before: int
) -> None:
    line = f"SELECT '{before}' AS x, t.zz, '{after}' AS y FROM t"
    sql = "\n" * lines_before + line
    with pytest.raises(duckdb.BinderException) as caught:
        con.execute(sql)
    position = duckdb_error_position(str(caught.value), sql)
    assert position == (lines_before + 1, line.index("t.zz") + 1)
