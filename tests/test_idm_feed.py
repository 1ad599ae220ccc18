"""The idm-feed example: a second institution fed by a flat file, run through the real CLI.

It proves the design: a new institution is new SQL, seeds and a schema, not new
Python. Its fixture feed holds a person of every kind the rules handle and lines
broken the ways real exports break; each is checked record by record.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Result, patronload, read_users

EXAMPLE = ROOT / "examples" / "idm-feed"
AS_OF = "2026-03-01"


@dataclass
class FeedRun:
    """The fixture feed, run once: where, the records sent and the rejections."""

    cwd: Path
    users: dict[str, Any]
    types: dict[str, str]  # primary id -> patron type (the zip it came in)
    rejections: list[dict[str, str]]


def cli(*args: str | Path, cwd: Path) -> Result:
    return patronload("--project", EXAMPLE, *args, cwd=cwd)


@pytest.fixture(scope="module")
def feed_run(tmp_path_factory: pytest.TempPathFactory) -> FeedRun:
    cwd = tmp_path_factory.mktemp("idm")
    warehouse = EXAMPLE / "fixture"
    result = cli("run", "--warehouse", warehouse, "--as-of", AS_OF, cwd=cwd)
    assert result.code == 0, result.err
    # the types the accounting only counts (counted_only) never become files
    assert sorted(p.name.rsplit("_", 2)[0] for p in cwd.glob("outbox/**/*.zip")) == [
        "faculty_staff",
        "student",
    ]
    users: dict[str, Any] = {}
    types: dict[str, str] = {}
    for zip_path in sorted(cwd.glob("outbox/**/*.zip")):
        patron_type = zip_path.name.rsplit("_", 2)[0]
        for key, user in read_users(zip_path).items():
            users[key] = user
            types[key] = patron_type
    listed = cli("rejections", "--csv", cwd=cwd)
    assert listed.code == 0, listed.err
    return FeedRun(cwd, users, types, list(csv.DictReader(io.StringIO(listed.out))))


def _unique_ids(user: dict[str, Any]) -> list[str]:
    ids = user["user_identifiers"]["user_identifier"]
    ids = ids if isinstance(ids, list) else [ids]
    return [i["value"] for i in ids if i["id_type"]["#text"] == "UNIQUE_ID"]


# primary id: (patron type, user group, expiry date, UNIQUE_ID), as of 2026-03-01.
EXPORTED = {
    "mkeller@example.edu": ("faculty_staff", "FAC", "2027-06-30Z", "00010001"),  # end date
    "rdiaz@example.edu": ("faculty_staff", "STAFF", "2027-03-01Z", "00010002"),  # +12 months
    "aokafor@example.edu": ("student", "STUDENT", "2026-09-01Z", "00010003"),  # +6 months
    "jchen@example.edu": ("faculty_staff", "FAC", "2026-12-31Z", "00010004"),  # faculty;staff
    "pnguyen@example.edu": ("faculty_staff", "STAFF", "2027-03-01Z", "00010005"),  # student;staff
    "lsilva@example.edu": ("student", "STUDENT", "2026-08-31Z", "00010007"),  # affiliate;student
    "hsato@example.edu": ("student", "STUDENT", "2026-09-01Z", "00010009"),  # partner, on campus
    "eross@example.edu": ("faculty_staff", "STAFF", "2027-06-30Z", "00010011"),  # latest of two
    "mobrien@example.edu": ("faculty_staff", "FAC", "2027-03-01Z", "00010016"),  # quoted fields
    "sli@example.edu": ("faculty_staff", "FAC", "2027-03-01Z", "00010018"),  # beats a student SLi
    "wlong@example.edu": ("faculty_staff", "STAFF", "2027-03-01Z", "00010020"),  # long department
    "cwin@example.edu": ("faculty_staff", "STAFF", "2027-01-31Z", "00010021"),  # CRLF line end
}

# line of fixture/users.txt: (patron type, reason)
REJECTED = {
    "7": ("ineligible", "affiliate_only"),
    "9": ("student", "partner_campus_not_on_campus"),
    "11": ("faculty_staff", "missing_primary_id"),
    "12": ("faculty_staff", "missing_unique_id"),
    "13": ("faculty_staff", "duplicate_in_source"),  # the earlier end date of eross
    "15": ("unreadable", "malformed_line"),  # too few fields
    "16": ("unreadable", "malformed_line"),  # unterminated quote
    "17": ("unreadable", "malformed_line"),  # 2026-02-30
    "18": ("unreadable", "malformed_line"),  # Latin-1, not UTF-8
    "20": ("ineligible", "no_eligible_affiliation"),  # alum
    "22": ("student", "duplicate_in_source"),  # same net ID as sli, another UNIQUE_ID
}


def test_idm_feed_exports_each_person_with_group_expiry_and_unique_id(feed_run: FeedRun) -> None:
    got = {
        key: (
            feed_run.types[key],
            user["user_group"]["#text"],
            user["expiry_date"],
            *_unique_ids(user),
        )
        for key, user in feed_run.users.items()
    }
    assert got == EXPORTED


def test_idm_feed_record_carries_names_contacts_and_agreed_id_type(feed_run: FeedRun) -> None:
    keller = feed_run.users["mkeller@example.edu"]
    assert (keller["first_name"], keller["last_name"]) == ("Margaret", "Keller")
    assert keller["pref_first_name"] == "Maggie"
    assert keller["contact_info"]["phones"]["phone"]["phone_number"] == "617-555-0101"
    assert keller["contact_info"]["emails"]["email"]["email_address"] == "mkeller@example.edu"
    ident = keller["user_identifiers"]["user_identifier"]
    assert ident["id_type"] == {"@desc": "University unique ID", "#text": "UNIQUE_ID"}
    assert keller["purge_date"] == "2029-06-30Z"
    obrien = feed_run.users["mobrien@example.edu"]
    assert (obrien["first_name"], obrien["last_name"]) == ("Máire", 'O"Brien')
    stat = obrien["user_statistics"]["user_statistic"]["statistic_category"]
    assert stat == {"@desc": "History | Classics", "#text": "ZZ"}
    assert feed_run.users["rdiaz@example.edu"]["last_name"] == "Díaz"
    long_dept = feed_run.users["wlong@example.edu"]["user_statistics"]["user_statistic"]
    assert len(long_dept["statistic_category"]["@desc"]) == 255


def test_idm_feed_rejects_each_person_with_reason(feed_run: FeedRun) -> None:
    got = {r["line_number"]: (r["patron_type"], r["reason"]) for r in feed_run.rejections}
    assert got == REJECTED
    assert all(r["explanation"] for r in feed_run.rejections)


def test_idm_feed_malformed_lines_keep_line_number_problem_and_text(feed_run: FeedRun) -> None:
    bad = {r["line_number"]: r for r in feed_run.rejections if r["reason"] == "malformed_line"}
    assert bad["15"]["problem"] == "expected 14 fields separated by '|', found 4"
    assert bad["15"]["raw_line"] == "00010012|gfew|Grace|Few"
    assert bad["16"]["problem"].startswith("bad quoting")
    assert bad["16"]["raw_line"].startswith('00010013|qquote|"Quinn|')
    assert bad["17"]["problem"] == "column END_DATE: 2026-02-30 is not a DATE"
    assert (bad["17"]["net_id"], bad["17"]["raw_line"]) == ("dbad", "")  # read, then judged
    assert bad["18"]["problem"] == "not valid utf-8: byte 0xe9 at character 20"
    assert bad["18"]["raw_line"].startswith("00010015|jlatin|Jos\ufffd|Latin|")


def test_idm_feed_accounting_balances_with_malformed_lines_counted(feed_run: FeedRun) -> None:
    result = cli("build", "--as-of", AS_OF, cwd=feed_run.cwd)
    assert result.code == 0, result.err
    lines = (EXAMPLE / "fixture" / "users.txt").read_bytes().splitlines()
    assert len(feed_run.users) + len(feed_run.rejections) == len(lines) - 1  # all but the header


def test_idm_feed_explain_affiliate_gives_affiliate_sentence(feed_run: FeedRun) -> None:
    result = cli("explain", "tbrandt", cwd=feed_run.cwd)
    assert result.code == 0, result.err
    assert "ineligible row: Not exported: the directory lists the person only as an affiliate" in (
        result.out
    )
    assert result.out.rstrip().count("[affiliate_only]") == 1


def test_idm_feed_explain_partner_campus_student_gives_partner_campus_sentence(
    feed_run: FeedRun,
) -> None:
    result = cli("explain", "00010008", "--json", cwd=feed_run.cwd)
    assert result.code == 0, result.err
    (person,) = json.loads(result.out)["people"]
    assert person["key"] == "kwalsh@example.edu" and person["exported_as"] is None
    (source,) = person["sources"]
    assert source["reason"] == "partner_campus_not_on_campus"
    assert "Known victims: recent graduates of a partner campus" in source["explanation"]
    assert "set the on-campus flag to 1" in source["explanation"]


def test_idm_feed_explain_finds_an_unreadable_line_by_its_text(feed_run: FeedRun) -> None:
    result = cli("explain", "qquote", cwd=feed_run.cwd)
    assert result.code == 0, result.err
    assert "line 16 of the feed (unreadable)" in result.out
    assert "[malformed_line]" in result.out


def test_idm_feed_lint_and_data_tests_pass(feed_run: FeedRun) -> None:
    lint = cli("lint", cwd=feed_run.cwd)
    assert lint.code == 0, lint.out + lint.err
    tested = cli("test", "--as-of", AS_OF, cwd=feed_run.cwd)
    assert tested.code == 0, tested.out + tested.err


def _generate(out: Path, people: int, seed: int) -> bytes:
    subprocess.run(
        [
            sys.executable,
            EXAMPLE / "generate.py",
            out,
            "--people",
            str(people),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
    )
    return (out / "users.txt").read_bytes()


def test_idm_feed_generator_same_seed_same_bytes(tmp_path: Path) -> None:
    first = _generate(tmp_path / "a", 500, 7)
    assert _generate(tmp_path / "b", 500, 7) == first
    assert _generate(tmp_path / "c", 500, 8) != first


def test_idm_feed_generated_feed_runs_end_to_end_balanced(tmp_path: Path) -> None:
    feed = _generate(tmp_path / "feed", 2000, 1)
    args = ("run", "--warehouse", tmp_path / "feed", "--as-of", AS_OF, "--json")
    result = cli(*args, cwd=tmp_path)
    assert result.code == 0, result.err
    report = json.loads(result.out.strip().splitlines()[-1])
    rejected = {t: sum(r.values()) for t, r in report["rejections"].items()}
    for patron_type, extracted in report["extracted"].items():
        assert extracted == report["exported"][patron_type] + rejected.get(patron_type, 0)
    lines = [line for line in feed.split(b"\n")[1:] if line.strip(b"\r")]
    assert sum(report["extracted"].values()) == len(lines)  # every line, none swallowed
    assert report["exported"]["faculty_staff"] > 500 and report["exported"]["student"] > 800
    for reason in ("affiliate_only", "partner_campus_not_on_campus", "duplicate_in_source"):
        assert any(reason in r for r in report["rejections"].values()), reason
    assert report["rejections"]["unreadable"]["malformed_line"] > 0


def _example_names() -> set[str]:
    """The example's own names: its source columns, tables, models, seeds, reason codes,
    patron types and agreed codes, minus any the default project also uses."""
    sql = (EXAMPLE / "schemas" / "sources.sql").read_text(encoding="utf-8")
    names = set(re.findall(r"^\s+([A-Z][A-Z_]+) [A-Z]", sql, re.MULTILINE))
    names |= set(re.findall(r"CREATE TABLE (\w+)", sql))
    queries = EXAMPLE / "queries"
    names |= {p.stem for p in queries.glob("*/*.sql")} | {p.stem for p in queries.glob("seeds/*")}
    with (queries / "seeds" / "rejection_reasons.csv").open(encoding="utf-8") as fh:
        names |= {row["reason"] for row in csv.DictReader(fh)}
    with (queries / "seeds" / "affiliations.csv").open(encoding="utf-8") as fh:
        names |= {row["patron_type"] for row in csv.DictReader(fh)}
    names |= {"ineligible", "unreadable", "UNIQUE_ID", "01EXAMPLE_INST", "example.edu", "users.txt"}
    files = [
        ROOT / "patronload.toml",
        *(ROOT / "queries").rglob("*"),
        *(ROOT / "schemas").rglob("*"),
    ]
    default = " ".join(
        f"{p.relative_to(ROOT)} {p.read_text(encoding='utf-8')}" for p in files if p.is_file()
    )
    return {n for n in names if not re.search(rf"\b{re.escape(n)}\b", default, re.IGNORECASE)}


def test_idm_feed_exporter_knows_none_of_the_example_names() -> None:
    names = _example_names()
    assert {"UNIQUE_ID", "NET_ID", "PRIMARY_AFFILIATION", "affiliate_only"} <= names
    assert {"partner_campus_not_on_campus", "malformed_line", "faculty_staff"} <= names
    found = []
    for path in sorted((ROOT / "exporter").rglob("*")):
        if not path.is_file() or path.suffix == ".pyc":
            continue
        text = path.read_text(encoding="utf-8")
        for name in sorted(names):
            # a generic English word (unreadable, ineligible) only counts as a literal
            word = re.escape(name)
            pattern = rf"['\"]{word}['\"]" if name.isalpha() and name.islower() else rf"\b{word}\b"
            if re.search(pattern, text, 0 if name.isupper() else re.IGNORECASE):
                found.append(f"{path.relative_to(ROOT)}: {name}")
    assert found == []


def test_idm_feed_changes_since_writes_exactly_the_new_and_changed(tmp_path: Path) -> None:
    """The daily incremental file of the second project: one new person, one renamed."""
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        folder.mkdir()
    feed = (EXAMPLE / "fixture" / "users.txt").read_bytes()  # holds a Latin-1 line on purpose
    (old / "users.txt").write_bytes(feed)
    changed = feed.replace(b"|Keller|Maggie|", b"|Keller-Ruiz|Maggie|")
    assert changed != feed
    newcomer = b"00019999|nnew|Nadia|New|||nnew@example.edu||student|student||1|Biology|\n"
    (new / "users.txt").write_bytes(changed.rstrip(b"\n") + b"\n" + newcomer)
    first = cli("extract", "--warehouse", old, cwd=tmp_path)
    assert first.code == 0, first.err
    base = first.out.strip().splitlines()[-1]
    assert cli("extract", "--warehouse", new, cwd=tmp_path).code == 0
    result = cli("export", "--changes-since", base, "--as-of", AS_OF, "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    written: dict[str, Any] = {}
    for zip_path in sorted((tmp_path / "outbox").glob("*_changes_*.zip")):
        written.update(read_users(zip_path))
    assert sorted(written) == ["mkeller@example.edu", "nnew@example.edu"]
    assert written["mkeller@example.edu"]["last_name"] == "Keller-Ruiz"
    report = json.loads(result.out)
    assert report["written"] == {"faculty_staff": 1, "student": 1}
