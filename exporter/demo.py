"""A fake data warehouse for demos and load tests: people, plus a few rows of every trouble.

`write_demo_warehouse` writes a DuckDB file with the two source tables, typed exactly as
`schemas/sources.sql` declares them. The same `(patrons, seed)` always gives the same rows.

Who is in it:
- `patrons` people, each exportable exactly once under the predecessor's rules: 30% staff
  (one LIBRARY_EMPLOYEE row each), 70% students (one LIBRARY_STUDENT row each).
- Student employees: about 5% of LIBRARY_STUDENT rows repeat a staff member (same Kerberos
  name, MIT ID, names and barcode). They are extra rows, not extra people.
- In each table, 2 rows (plus 1 per 100,000 patrons) of each kind of trouble in `TROUBLES`.
  Missing Kerberos names (NULL, '') and duplicates are extra rows; the other troubles are
  written into people's rows, so those people still count.

So the predecessor's rules export exactly `patrons` people: the distinct non-empty
KRB_NAME_UPPERCASE values of both tables.
"""

from __future__ import annotations

import csv
import logging
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from exporter.duck import first_line, quote, write_once
from exporter.errors import SourceError, UsageError
from exporter.project import DEFAULT_PROJECT, Project
from exporter.sources import SourceTable

logger = logging.getLogger(__name__)

STAFF = "LIBRARY_EMPLOYEE"
STUDENT = "LIBRARY_STUDENT"
#: Below this the trouble rows no longer fit among ordinary ones.
MIN_PATRONS = 100

#: What each kind of trouble row looks like; the test suite queries for each one.
TROUBLES = (
    "missing_krb_null",  # KRB_NAME_UPPERCASE IS NULL (extra row)
    "missing_krb_empty",  # KRB_NAME_UPPERCASE = '' (extra row)
    "duplicate",  # a second row with a person's KRB_NAME_UPPERCASE, other fields differ
    "preferred_in_other_case",  # PREFERRED_FIRST_NAME = upper(LEGAL_FIRST_NAME)
    "library_id_none",  # LIBRARY_ID = 'NONE'
    "library_id_null",  # LIBRARY_ID IS NULL
    "unknown_department",  # ORG_UNIT_ID / HOME_DEPARTMENT not in queries/seeds
    "xml_specials",  # & < > " ' in LEGAL_FIRST_NAME and LEGAL_LAST_NAME
    "non_ascii",  # LEGAL_MIDDLE_NAME = 'Łukasz José', LEGAL_LAST_NAME = '王𠮷'
    "too_long",  # 300 characters in OFFICE_ADDRESS and ORG_UNIT_TITLE / TERM_STREET1
    "control_char",  # \x0b in LEGAL_FIRST_NAME or \x01 in LEGAL_LAST_NAME
)

_BATCH = 100_000
_STAFF_SHARE = 0.30
_STUDENT_EMPLOYEE_SHARE = 0.05
_EPOCH = date(1970, 1, 1)

Value = str | int | None
Columns = dict[str, list[Value]]
#: Writes one trouble into row `j` of a batch; the int says which occurrence it is.
Trouble = Callable[[Columns, int, int], None]

# Names as (as written, letters for the Kerberos name).
_FIRST = (
    ("James", "JAMES"),
    ("Mary", "MARY"),
    ("Wei", "WEI"),
    ("Priya", "PRIYA"),
    ("José", "JOSE"),
    ("Zoë", "ZOE"),
    ("Łukasz", "LUKASZ"),
    ("Aoife", "AOIFE"),
    ("Mohammed", "MOHAMMED"),
    ("Chloé", "CHLOE"),
    ("Björn", "BJORN"),
    ("Siobhán", "SIOBHAN"),
    ("Olga", "OLGA"),
    ("Kwame", "KWAME"),
    ("Hiroshi", "HIROSHI"),
    ("Emily", "EMILY"),
    ("Michael", "MICHAEL"),
    ("Sarah", "SARAH"),
    ("David", "DAVID"),
    ("Jennifer", "JENNIFER"),
    ("Daniel", "DANIEL"),
    ("Aisha", "AISHA"),
    ("Carlos", "CARLOS"),
    ("Anaïs", "ANAIS"),
    ("Søren", "SOREN"),
    ("Renée", "RENEE"),
    ("伟", "WEI"),
    ("芳", "FANG"),
    ("Min-jun", "MINJUN"),
    ("Thomas", "THOMAS"),
    ("Laura", "LAURA"),
    ("Ngozi", "NGOZI"),
    ("Jürgen", "JURGEN"),
    ("François", "FRANCOIS"),
    ("Mónica", "MONICA"),
    ("Ivan", "IVAN"),
    ("Fatima", "FATIMA"),
    ("Robert", "ROBERT"),
    ("Linda", "LINDA"),
    ("Kevin", "KEVIN"),
    ("Elena", "ELENA"),
    ("Arjun", "ARJUN"),
    ("Yuki", "YUKI"),
    ("Nadia", "NADIA"),
    ("Oluwaseun", "OLUWASEUN"),
    ("Grace", "GRACE"),
    ("Samuel", "SAMUEL"),
    ("Hannah", "HANNAH"),
)
_LAST = (
    ("Smith", "SMITH"),
    ("Nguyen", "NGUYEN"),
    ("García", "GARCIA"),
    ("Müller", "MULLER"),
    ("Wiśniewski", "WISNIEWSKI"),
    ("王", "WANG"),
    ("李", "LI"),
    ("O'Brien", "OBRIEN"),
    ("Johnson", "JOHNSON"),
    ("Kim", "KIM"),
    ("Patel", "PATEL"),
    ("Okafor", "OKAFOR"),
    ("Rossi", "ROSSI"),
    ("Dubois", "DUBOIS"),
    ("Søndergaard", "SONDERGAARD"),
    ("Novák", "NOVAK"),
    ("Yılmaz", "YILMAZ"),
    ("Tanaka", "TANAKA"),
    ("Cohen", "COHEN"),
    ("Brown", "BROWN"),
    ("Williams", "WILLIAMS"),
    ("Jones", "JONES"),
    ("Chen", "CHEN"),
    ("Singh", "SINGH"),
    ("Hernández", "HERNANDEZ"),
    ("Ivanova", "IVANOVA"),
    ("Smith-Jones", "SMITHJONES"),
    ("MacDonald", "MACDONALD"),
    ("van der Berg", "VANDERBERG"),
    ("Davis", "DAVIS"),
    ("Miller", "MILLER"),
    ("Lefèvre", "LEFEVRE"),
    ("Schröder", "SCHRODER"),
    ("Murphy", "MURPHY"),
)
_MIDDLE = (None, "A.", "J.", "M.", "Marie", "Lee", "Ann", "Kumar", "José", "Zoë", "Q.")
_MIDDLE_WEIGHTS = (60, 5, 5, 5, 5, 5, 4, 3, 3, 3, 2)
_NICKNAMES = ("Jim", "Molly", "Liz", "Alex", "Sam", "Kate", "Bob", "Max", "Zoe", "Pepe", "Lu")
#: none, another first name, another last name, the legal names again (same case).
_PREFERRED_WEIGHTS = (84, 9, 3, 4)
_CASED_FIRST = ("José", "Zoë", "Łukasz", "Mary")

_AREA_CODES = ("617", "617", "617", "857", "781", "508", "339", "978", "212", "415")
_PHONE_FORMS = (
    "{0}{1}{2:04d}",
    "{0}-{1}-{2:04d}",
    "({0}) {1} {2:04d}",
    "+1 {0} {1} {2:04d}",
    "{0}.{1}.{2:04d}",
)
_PHONE_WEIGHTS = (40, 35, 10, 10, 5)

_BUILDINGS = (
    "E25",
    "E17",
    "E19",
    "E51",
    "E52",
    "E53",
    "E62",
    "E40",
    "NE18",
    "NE49",
    "W20",
    "W35",
    "W92",
    "N52",
    "32",
    "36",
    "38",
    "54",
    "56",
    "66",
    "68",
    "76",
    "7",
    "10",
    "14",
    "4",
    "2",
)
_PERSON_TYPES = (
    ("A", "Academic Staff"),
    ("F", "Faculty"),
    ("S", "Support Staff"),
    ("O", "Other Academic"),
    (None, None),
)
_PERSON_TYPE_WEIGHTS = (25, 15, 40, 19, 1)
_POSITIONS = (
    None,
    "Professor",
    "Associate Professor",
    "Assistant Professor",
    "Research Scientist",
    "Postdoctoral Associate",
    "Administrative Assistant II",
    "Technical Associate",
    "Financial Officer",
    "Librarian",
    "Software Engineer",
    "Lecturer",
    "Lab Manager",
)
_SUBJECTS = (
    "Physics",
    "Mathematics",
    "Chemistry",
    "Biology",
    "Economics",
    "Architecture",
    "Linguistics and Philosophy",
    "Urban Studies and Planning",
    "Mechanical Engineering",
    "Civil and Environmental Engineering",
    "Electrical Engineering and Computer Science",
    "Brain and Cognitive Sciences",
    "Materials Science and Engineering",
    "Aeronautics and Astronautics",
    "Earth, Atmospheric and Planetary Sciences",
    "History",
    "Music and Theater Arts",
    "Political Science",
    "Comparative Media Studies",
    "Biological Engineering",
    "Health Sciences and Technology",
    "Libraries",
    "Facilities",
    "Human Resources",
    "Information Systems and Technology",
    "Student Life",
    "Sponsored Programs",
    "Nuclear Science and Engineering",
    "Plasma Science and Fusion",
)
_UNIT_FORMS = ("Department of {}", "Center for {}", "Laboratory for {}", "Office of {}")
#: Looks like a seed value but is not one (`_unknown` drops any that a project adds).
_UNKNOWN_ORG_UNITS = ("99999001", "1000055", "X10000554", "99999002")
_UNKNOWN_HOME_DEPARTMENTS = ("NIX", "6-3", "21Q", "IDSS")
_CROSS_REGISTERED = ("NIU", "NIV", "NIW", "NIT", "NIR", "NIH")

_PLACES = (
    ("Cambridge", "MA", "02139"),
    ("Cambridge", "MA", "02142"),
    ("Cambridge", "MA", "02138"),
    ("Boston", "MA", "02115"),
    ("Boston", "MA", "02215"),
    ("Somerville", "MA", "02143"),
    ("Somerville", "MA", "02144"),
    ("Brookline", "MA", "02446"),
    ("Allston", "MA", "02134"),
    ("Medford", "MA", "02155"),
    ("Providence", "RI", "02906"),
    ("New York", "NY", "10027"),
    ("Princeton", "NJ", "08540"),
    ("Hanover", "NH", "03755"),
    ("San Juan", "PR", "00901"),
    ("Palo Alto", "CA", "94305"),
)
_PLACE_WEIGHTS = (40, 10, 8, 8, 5, 8, 4, 3, 3, 2, 1, 1, 1, 1, 1, 1)
_STREETS = (
    "Massachusetts Ave",
    "Memorial Dr",
    "Vassar St",
    "Main St",
    "Ames St",
    "Amherst St",
    "Broadway",
    "Hampshire St",
    "Prospect St",
    "Beacon St",
    "Commonwealth Ave",
    "Albany St",
    "Pacific St",
    "Sidney St",
    "Brookline St",
    "Windsor St",
)
_YEARS = ("1", "2", "3", "4", "U", "G", "g", "u", "5", "S", "N", None)
_YEAR_WEIGHTS = (12, 12, 12, 12, 5, 33, 2, 2, 1, 1, 1, 3)

#: 300 characters (more bytes in UTF-8), past Alma's 255, not ending in a space.
_LONG_TEXT = ("Room 131, Building E25, Département de Physique Théorique; " * 6)[:299] + "Ω"


@dataclass(frozen=True)
class _Plan:
    """How many rows of each sort, and the random choices that span batches."""

    staff: int
    students: int  # student rows before trouble rows, student employees included
    per_kind: int
    student_employees: dict[int, int]  # student row -> the staff row it repeats
    org_units: tuple[str, ...]
    org_unit_titles: dict[str, str]
    home_departments: tuple[str, ...]
    unknown_org_units: tuple[str, ...]
    unknown_home_departments: tuple[str, ...]
    ids: _Ids


@dataclass(frozen=True)
class _Ids:
    """Unique identifiers by person number: affine permutations, so no set is kept."""

    krb: tuple[int, int, int]
    mit_id: tuple[int, int]
    barcode: tuple[int, int]


def write_demo_warehouse(
    path: Path, sources: dict[str, SourceTable], patrons: int = 5000, seed: int = 1
) -> dict[str, int]:
    """Write a DuckDB file with tables LIBRARY_EMPLOYEE and LIBRARY_STUDENT; return row counts.

    Args:
        path: The DuckDB file to write; replaced atomically if it exists.
        sources: Table definitions from `load_sources`; columns are created as declared,
            and columns the generator does not know stay NULL.
        patrons: People the predecessor's rules would export (at least 100).
        seed: Seed of the random choices; the same seed gives the same rows.

    Raises:
        SourceError: The folder does not exist or the file cannot be written.
        UsageError: Too few patrons, or `sources` lacks one of the two tables.
    """
    if patrons < MIN_PATRONS:
        raise UsageError(f"a demo warehouse needs at least {MIN_PATRONS} patrons, not {patrons}")
    missing = [name for name in (STAFF, STUDENT) if name not in sources]
    if missing:
        raise UsageError(f"the source definitions lack {', '.join(missing)}")
    if not path.parent.is_dir():
        raise SourceError(f"cannot write demo warehouse ({path}): folder does not exist")
    if path.is_dir():
        raise SourceError(f"cannot write demo warehouse ({path}): it is a folder")
    rng = random.Random(seed)
    plan = _plan(rng, patrons, Project(DEFAULT_PROJECT).seeds_dir)
    try:
        with write_once(path, mode=0o644) as con:
            counts = _write(con, sources[STAFF], sources[STUDENT], plan, rng)
    except (duckdb.Error, OSError) as exc:
        raise SourceError(f"cannot write demo warehouse ({path}): {first_line(exc)}") from None
    logger.info("wrote demo warehouse %s: %s", path, counts)
    return counts


def _write(
    con: duckdb.DuckDBPyConnection,
    staff: SourceTable,
    student: SourceTable,
    plan: _Plan,
    rng: random.Random,
) -> dict[str, int]:
    # Student rows of student employees copy identities captured while staff are written.
    identities: dict[int, list[Value]] = {}
    batches = {
        STAFF: _staff_batches(rng, plan, identities),
        STUDENT: _student_batches(rng, plan, identities),
    }
    counts: dict[str, int] = {}
    for table in (staff, student):
        con.execute(table.ddl())
        counts[table.name] = 0
        for columns in batches[table.name]:
            counts[table.name] += _insert(con, table, columns)
        logger.debug("demo %s: %d rows", table.name, counts[table.name])
    return counts


def _insert(con: duckdb.DuckDBPyConnection, table: SourceTable, columns: Columns) -> int:
    arrays = {}
    for name in table.columns:
        if name in columns:
            values = columns[name]
            # Dates travel as days since 1970; DuckDB casts to whatever the table declares.
            arrays[name] = (
                pa.array(values, type=pa.int32()).cast(pa.date32())
                if name == "APPOINTMENT_END_DATE"
                else pa.array(values, type=pa.string())
            )
    batch = pa.table(arrays)
    con.register("demo_batch", batch)
    try:
        con.execute(f"INSERT INTO {quote(table.name)} BY NAME SELECT * FROM demo_batch")
    finally:
        con.unregister("demo_batch")
    return int(batch.num_rows)


# --- the plan: sizes, and choices made once for all batches ---------------------------------


def _per_kind(patrons: int) -> int:
    return 2 + patrons // 100_000


def _plan(rng: random.Random, patrons: int, seeds_dir: Path) -> _Plan:
    staff = round(patrons * _STAFF_SHARE)
    students_only = patrons - staff
    employees = round(students_only * _STUDENT_EMPLOYEE_SHARE / (1 - _STUDENT_EMPLOYEE_SHARE))
    students = students_only + employees
    student_rows = rng.sample(range(students), employees)
    student_employees = dict(zip(student_rows, rng.sample(range(staff), employees), strict=True))
    org_units = _seed_column(seeds_dir / "staff_departments.csv", "org_unit_id")
    departments = _seed_column(seeds_dir / "student_departments.csv", "home_department")
    titles = {u: rng.choice(_UNIT_FORMS).format(rng.choice(_SUBJECTS)) for u in org_units}
    # Person numbers: staff, then student rows, then the extra rows of each table.
    krb_modulus = 10 ** len(str(staff + students + 6 * _per_kind(patrons)))
    return _Plan(
        staff=staff,
        students=students,
        per_kind=_per_kind(patrons),
        student_employees=student_employees,
        org_units=org_units,
        org_unit_titles=titles,
        home_departments=tuple(d for d in departments if d not in _CROSS_REGISTERED),
        unknown_org_units=_unknown(_UNKNOWN_ORG_UNITS, org_units),
        unknown_home_departments=_unknown(_UNKNOWN_HOME_DEPARTMENTS, departments),
        ids=_Ids(
            krb=(_unit(rng, krb_modulus), rng.randrange(krb_modulus), krb_modulus),
            mit_id=(_unit(rng, 10**9), rng.randrange(10**9)),
            barcode=(_unit(rng, 10**10), rng.randrange(10**10)),
        ),
    )


def _unit(rng: random.Random, modulus: int) -> int:
    """A multiplier coprime to `modulus` (a power of ten), so `a*i + b` never repeats."""
    a = rng.randrange(modulus // 10 + 1, modulus)
    while a % 2 == 0 or a % 5 == 0:
        a -= 1
    return a


def _seed_column(path: Path, column: str) -> tuple[str, ...]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            values = tuple(row[column] for row in csv.DictReader(f))
    except (OSError, KeyError) as exc:
        raise SourceError(f"cannot read demo seed {column} ({path}): {exc}") from None
    return values


def _unknown(candidates: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    seeded = set(known)
    return tuple(c for c in candidates if c not in seeded) or ("UNKNOWN-1",)


def _trouble_rows(
    rng: random.Random, rows: int, excluded: Iterable[int], kinds: int, per_kind: int
) -> list[list[int]]:
    """Distinct rows for each in-place trouble, none of them a student employee's."""
    chosen: list[int] = []
    taken = set(excluded)
    while len(chosen) < kinds * per_kind:
        row = rng.randrange(rows)
        if row not in taken:
            taken.add(row)
            chosen.append(row)
    return [chosen[k * per_kind : (k + 1) * per_kind] for k in range(kinds)]


# --- batches ------------------------------------------------------------------------------

_IDENTITY = (
    "MIT_ID",
    "EMAIL_ADDRESS",
    "KRB_NAME_UPPERCASE",
    "LIBRARY_ID",
    "PREFERRED_FIRST_NAME",
    "PREFERRED_MIDDLE_NAME",
    "PREFERRED_LAST_NAME",
    "LEGAL_FIRST_NAME",
    "LEGAL_MIDDLE_NAME",
    "LEGAL_LAST_NAME",
)
#: What a duplicate row shares with the person's other row; the rest is drawn afresh.
_DUPLICATE_KEEPS = frozenset(
    ("MIT_ID", "EMAIL_ADDRESS", "KRB_NAME_UPPERCASE", "LEGAL_FIRST_NAME", "LEGAL_LAST_NAME")
)


def _staff_batches(
    rng: random.Random, plan: _Plan, identities: dict[int, list[Value]]
) -> Iterator[Columns]:
    """Staff rows, then the extra rows; fills `identities` for the rows others repeat."""
    kinds = _in_place_troubles(plan, staff=True)
    employees = set(plan.student_employees.values())
    *spots, duplicated = _trouble_rows(rng, plan.staff, employees, len(kinds) + 1, plan.per_kind)
    troubles = _by_row(kinds, spots)
    wanted = sorted(employees | set(duplicated))
    for lo in range(0, plan.staff, _BATCH):
        n = min(_BATCH, plan.staff - lo)
        columns = _people(rng, plan, lo, n) | _staff_fields(rng, plan, n)
        _capture(columns, lo, n, wanted, identities)
        _apply(columns, lo, n, troubles)
        yield columns
    n = 3 * plan.per_kind
    extra = _people(rng, plan, plan.staff + plan.students, n) | _staff_fields(rng, plan, n)
    yield _extra_rows(extra, plan.per_kind, [identities[row] for row in duplicated])


def _student_batches(
    rng: random.Random, plan: _Plan, staff_identities: dict[int, list[Value]]
) -> Iterator[Columns]:
    """Student rows, student employees repeating a staff row, then the extra rows."""
    kinds = _in_place_troubles(plan, staff=False)
    employees = sorted(plan.student_employees)
    *spots, duplicated = _trouble_rows(rng, plan.students, employees, len(kinds) + 1, plan.per_kind)
    troubles = _by_row(kinds, spots)
    captured: dict[int, list[Value]] = {}
    for lo in range(0, plan.students, _BATCH):
        n = min(_BATCH, plan.students - lo)
        columns = _people(rng, plan, plan.staff + lo, n) | _student_fields(rng, plan, n)
        for row in employees[bisect_left(employees, lo) : bisect_left(employees, lo + n)]:
            staff_row = plan.student_employees[row]
            for name, value in zip(_IDENTITY, staff_identities[staff_row], strict=True):
                columns[name][row - lo] = value
        _capture(columns, lo, n, sorted(duplicated), captured)
        _apply(columns, lo, n, troubles)
        yield columns
    n = 3 * plan.per_kind
    start = plan.staff + plan.students + n
    extra = _people(rng, plan, start, n) | _student_fields(rng, plan, n)
    yield _extra_rows(extra, plan.per_kind, [captured[row] for row in duplicated])


def _capture(
    columns: Columns, lo: int, n: int, wanted: list[int], into: dict[int, list[Value]]
) -> None:
    for row in wanted[bisect_left(wanted, lo) : bisect_left(wanted, lo + n)]:
        into[row] = [columns[name][row - lo] for name in _IDENTITY]


def _by_row(kinds: Sequence[Trouble], rows: list[list[int]]) -> dict[int, tuple[Trouble, int]]:
    return {
        row: (kind, nth)
        for kind, spot in zip(kinds, rows, strict=True)
        for nth, row in enumerate(spot)
    }


def _apply(columns: Columns, lo: int, n: int, troubles: dict[int, tuple[Trouble, int]]) -> None:
    for row, (trouble, nth) in troubles.items():
        if lo <= row < lo + n:
            trouble(columns, row - lo, nth)


def _extra_rows(columns: Columns, per_kind: int, originals: list[list[Value]]) -> Columns:
    """Rows that are not people: no Kerberos name (NULL, then ''), then duplicates."""
    krb = columns["KRB_NAME_UPPERCASE"]
    for j in range(per_kind):
        krb[j] = None
        krb[per_kind + j] = ""
    for j, original in enumerate(originals):
        for name, value in zip(_IDENTITY, original, strict=True):
            if name in _DUPLICATE_KEEPS:
                columns[name][2 * per_kind + j] = value
    return columns


# --- columns ------------------------------------------------------------------------------


def _people(rng: random.Random, plan: _Plan, start: int, n: int) -> Columns:
    """Identity columns of `n` people numbered from `start`; numbers make the ids unique."""
    firsts = rng.choices(_FIRST, k=n)
    lasts = rng.choices(_LAST, k=n)
    middles = rng.choices(_MIDDLE, weights=_MIDDLE_WEIGHTS, k=n)
    krb_a, krb_b, krb_m = plan.ids.krb
    mit_a, mit_b = plan.ids.mit_id
    bar_a, bar_b = plan.ids.barcode
    numbers = range(start, start + n)
    # Letters then digits, and the digits differ per person: the names cannot collide.
    krb = [
        f"{f[1][0]}{s[1][:7]}{(krb_a * i + krb_b) % krb_m}"
        for f, s, i in zip(firsts, lasts, numbers, strict=True)
    ]
    rand = rng.random
    preferred_first, preferred_middle, preferred_last = _preferred(rng, firsts, middles, lasts)
    return {
        "MIT_ID": [f"{(mit_a * i + mit_b) % 10**9:09d}" for i in numbers],
        "EMAIL_ADDRESS": [None if rand() < 0.02 else k.lower() + "@mit.edu" for k in krb],
        "KRB_NAME_UPPERCASE": [*krb],
        "LIBRARY_ID": [f"3908{(bar_a * i + bar_b) % 10**10:010d}" for i in numbers],
        "PREFERRED_FIRST_NAME": preferred_first,
        "PREFERRED_MIDDLE_NAME": preferred_middle,
        "PREFERRED_LAST_NAME": preferred_last,
        "LEGAL_FIRST_NAME": [f[0] for f in firsts],
        "LEGAL_MIDDLE_NAME": [*middles],
        "LEGAL_LAST_NAME": [s[0] for s in lasts],
    }


def _preferred(
    rng: random.Random,
    firsts: list[tuple[str, str]],
    middles: list[str | None],
    lasts: list[tuple[str, str]],
) -> tuple[list[Value], list[Value], list[Value]]:
    n = len(firsts)
    kinds = rng.choices(range(4), weights=_PREFERRED_WEIGHTS, k=n)
    nicknames = rng.choices(_NICKNAMES, k=n)
    others = rng.choices(_LAST, k=n)
    first: list[Value] = []
    middle: list[Value] = []
    last: list[Value] = []
    rows = zip(kinds, firsts, middles, lasts, nicknames, others, strict=True)
    for kind, f, m, s, nick, other in rows:
        if kind == 0:
            first.append(None)
            middle.append(None)
            last.append(None)
        elif kind == 1:
            first.append(nick)
            middle.append(None)
            last.append(s[0])
        else:
            first.append(f[0])
            middle.append(m)
            last.append(other[0] if kind == 2 else s[0])
    return first, middle, last


def _staff_fields(rng: random.Random, plan: _Plan, n: int) -> Columns:
    rand = rng.random
    randrange = rng.randrange
    first_day = (date(2024, 1, 1) - _EPOCH).days
    buildings = rng.choices(_BUILDINGS, k=n)
    types = rng.choices(_PERSON_TYPES, weights=_PERSON_TYPE_WEIGHTS, k=n)
    units: list[str | None] = [
        None if rand() < 0.01 else u for u in rng.choices(plan.org_units, k=n)
    ]
    positions = rng.choices(_POSITIONS, k=n)
    subjects = rng.choices(_SUBJECTS, k=n)
    shown = rng.choices(range(3), weights=(55, 35, 10), k=n)
    return {
        "OFFICE_ADDRESS": [
            None if rand() < 0.12 else f"{b}-{randrange(100, 700)}" for b in buildings
        ],
        "OFFICE_PHONE": _phones(rng, n, 0.25),
        "APPOINTMENT_END_DATE": [
            None if rand() < 0.35 else first_day + randrange(2200) for _ in range(n)
        ],
        "LIBRARY_PERSON_TYPE_CODE": [t[0] for t in types],
        "LIBRARY_PERSON_TYPE": [t[1] for t in types],
        "ORG_UNIT_ID": [*units],
        "ORG_UNIT_TITLE": [
            None if u is None or rand() < 0.03 else plan.org_unit_titles[u] for u in units
        ],
        "POSITION_TITLE": [*positions],
        "DIRECTORY_TITLE": [
            p if s == 0 or p is None else None if s == 1 else f"{p}, {subject}"
            for p, s, subject in zip(positions, shown, subjects, strict=True)
        ],
    }


def _student_fields(rng: random.Random, plan: _Plan, n: int) -> Columns:
    rand = rng.random
    randrange = rng.randrange
    places: list[tuple[str, str, str] | None] = [
        None if rand() < 0.06 else p for p in rng.choices(_PLACES, weights=_PLACE_WEIGHTS, k=n)
    ]
    streets = rng.choices(_STREETS, k=n)
    units = rng.choices(("Apt {}{}", "Room {}", "Unit {}", "#{}{}"), k=n)
    departments = rng.choices(plan.home_departments, k=n)
    cross = rng.choices(_CROSS_REGISTERED, k=n)
    kinds = [rand() for _ in range(n)]
    return {
        "TERM_STREET1": [
            None if p is None else f"{randrange(1, 1000)} {s}"
            for p, s in zip(places, streets, strict=True)
        ],
        "TERM_STREET2": [
            None if p is None or rand() < 0.7 else u.format(randrange(1, 40), "ABCD"[i % 4])
            for i, (p, u) in enumerate(zip(places, units, strict=True))
        ],
        "TERM_CITY": [None if p is None else p[0] for p in places],
        "TERM_STATE": [None if p is None else p[1] for p in places],
        "TERM_ZIP": [None if p is None else p[2] for p in places],
        "TERM_PHONE1": _phones(rng, n, 0.2),
        "TERM_PHONE2": _phones(rng, n, 0.85),
        "OFFICE_PHONE": _phones(rng, n, 0.9),
        "STUDENT_YEAR": rng.choices(_YEARS, weights=_YEAR_WEIGHTS, k=n),
        "HOME_DEPARTMENT": [
            None if k < 0.03 else c if k < 0.05 else d
            for k, c, d in zip(kinds, cross, departments, strict=True)
        ],
    }


def _phones(rng: random.Random, n: int, null_rate: float) -> list[Value]:
    rand = rng.random
    randrange = rng.randrange
    areas = rng.choices(_AREA_CODES, k=n)
    forms = rng.choices(_PHONE_FORMS, weights=_PHONE_WEIGHTS, k=n)
    return [
        None if rand() < null_rate else form.format(area, randrange(200, 1000), randrange(10000))
        for area, form in zip(areas, forms, strict=True)
    ]


# --- troubles written into people's rows, in the order of TROUBLES ------------------------


def _in_place_troubles(plan: _Plan, staff: bool) -> tuple[Trouble, ...]:
    def unknown_department(columns: Columns, j: int, nth: int) -> None:
        if staff:
            columns["ORG_UNIT_ID"][j] = plan.unknown_org_units[nth % len(plan.unknown_org_units)]
            columns["ORG_UNIT_TITLE"][j] = "Office of the Vice President for Open Learning"
        else:
            unknown = plan.unknown_home_departments
            columns["HOME_DEPARTMENT"][j] = unknown[nth % len(unknown)]

    def too_long(columns: Columns, j: int, nth: int) -> None:
        for name in ("OFFICE_ADDRESS", "ORG_UNIT_TITLE") if staff else ("TERM_STREET1",):
            columns[name][j] = _LONG_TEXT

    return (
        _preferred_in_other_case,
        _library_id_none,
        _library_id_null,
        unknown_department,
        _xml_specials,
        _non_ascii,
        too_long,
        _control_char,
    )


def _preferred_in_other_case(columns: Columns, j: int, nth: int) -> None:
    first = _CASED_FIRST[nth % len(_CASED_FIRST)]
    columns["LEGAL_FIRST_NAME"][j] = first
    columns["PREFERRED_FIRST_NAME"][j] = first.upper()
    columns["PREFERRED_MIDDLE_NAME"][j] = None
    columns["PREFERRED_LAST_NAME"][j] = columns["LEGAL_LAST_NAME"][j]


def _library_id_none(columns: Columns, j: int, nth: int) -> None:
    columns["LIBRARY_ID"][j] = "NONE"


def _library_id_null(columns: Columns, j: int, nth: int) -> None:
    columns["LIBRARY_ID"][j] = None


def _xml_specials(columns: Columns, j: int, nth: int) -> None:
    first, last = (('Mary "Molly"', "O'Brien & <Sons>"), ("<Anne> & 'Co'", 'Smith & "Jones" >'))[
        nth % 2
    ]
    columns["LEGAL_FIRST_NAME"][j] = first
    columns["LEGAL_LAST_NAME"][j] = last


def _non_ascii(columns: Columns, j: int, nth: int) -> None:
    columns["LEGAL_FIRST_NAME"][j] = "Zoë"
    columns["LEGAL_MIDDLE_NAME"][j] = "Łukasz José"
    columns["LEGAL_LAST_NAME"][j] = "王𠮷"  # the second is outside the Basic Multilingual Plane


def _control_char(columns: Columns, j: int, nth: int) -> None:
    if nth % 2 == 0:
        columns["LEGAL_FIRST_NAME"][j] = "Ann\x0bMarie"
    else:
        columns["LEGAL_LAST_NAME"][j] = "Smith\x01"
