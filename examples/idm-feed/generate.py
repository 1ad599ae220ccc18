#!/usr/bin/env python3
"""Write a deterministic demo identity-management feed: OUT_DIR/users.txt.

    python generate.py OUT_DIR --people 5000 [--seed 1]

One person per line, '|'-separated, a header line first, UTF-8, LF line ends: the
format patronload.toml declares for IDM_USERS. The same seed and count always
give the same bytes. Standard library only, so it runs without the project.

The mix, roughly: 55% students, 25% staff, 10% faculty, 7% affiliates, the rest
alumni or retirees; some faculty also staff, some students also staff, some
affiliates also students; partner-campus students on and off the main campus;
missing net IDs, unique IDs, emails and phones; non-ASCII and very long names and
departments; a second line for about 0.5% of people (a duplicate UNIQUE_ID, or
the same net ID under another UNIQUE_ID); and about 0.3% of lines broken the ways
real exports break (too few or too many fields, a stray quote, a bad date, a
flag that is not 0/1, bytes that are not UTF-8, a Windows line end).
"""

from __future__ import annotations

import argparse
import random
from datetime import date, timedelta
from pathlib import Path

COLUMNS = [
    "UNIQUE_ID",
    "NET_ID",
    "LEGAL_FIRST_NAME",
    "LEGAL_LAST_NAME",
    "PREFERRED_FIRST_NAME",
    "PREFERRED_LAST_NAME",
    "EMAIL",
    "PHONE",
    "PRIMARY_AFFILIATION",
    "AFFILIATIONS",
    "PARTNER_CAMPUS",
    "ON_MAIN_CAMPUS",
    "DEPARTMENT",
    "END_DATE",
]

# fmt: off
FIRST = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Wei", "Mei", "Hiroshi", "Yuki", "Priya", "Arjun", "Fatima", "Omar", "Ngozi",
    "Chidi", "Sofia", "Mateo", "Olga", "Ivan", "Aisha", "Kwame",
]
FIRST_NON_ASCII = [
    "José", "Zoë", "Björn", "Søren", "Łukasz", "Ångström", "Chloé", "Renée", "Dvořák",
    "Nguyễn", "Şebnem", "Ægir", "François", "Małgorzata", "Jürgen", "Ana María",
    "Ο Δημήτρης", "Алексей", "美咲", "지훈",
]
LAST = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Moore",
    "Chen", "Wang", "Li", "Zhang", "Kim", "Park", "Patel", "Singh", "Okafor", "Adeyemi",
    "O'Brien", "Nakamura", "Ivanova", "Kowalski", "Haddad", "Mensah",
]
LAST_NON_ASCII = [
    "Müller", "Sørensen", "Gonçalves", "Núñez", "Çelik", "Đorđević", "Wójcik",
    "Ó Súilleabháin", "Håkansson", "Lefèvre", "Straße", "Петров", "山田", "김",
]
DEPARTMENTS = [
    "Anthropology", "Biology", "Chemistry", "Computer Science", "Economics", "English",
    "History", "Library", "Mathematics", "Mechanical Engineering", "Music", "Nursing",
    "Physics", "Psychology", "Facilities", "Human Resources", "Information Technology",
    "Registrar", "Center for Études Françaises", "Office of Sponsored Programs",
    "Languages | Literatures",
]
# fmt: on
LONG_DEPARTMENT = (
    "Office of the Vice Provost for Interdisciplinary Research, Graduate Education, "
    "Postdoctoral Affairs, Faculty Development and Institutional Effectiveness, "
    "including the Center for Teaching, Learning, Assessment and Academic Innovation "
    "and the Institute for Advanced Study of Everything Else That Needed A Home"
)
PARTNER_CAMPUSES = ["PCC", "RHC"]


def _name(rng: random.Random) -> tuple[str, str]:
    first = rng.choice(FIRST_NON_ASCII if rng.random() < 0.1 else FIRST)
    last = rng.choice(LAST_NON_ASCII if rng.random() < 0.1 else LAST)
    if rng.random() < 0.02:
        last = f"{last}-{rng.choice(LAST)}"
    if rng.random() < 0.002:
        last = " ".join([last] + [rng.choice(LAST) for _ in range(60)])  # over 255 characters
    return first, last


def _affiliations(rng: random.Random) -> tuple[str, list[str]]:
    """The primary affiliation and all of them."""
    roll = rng.random()
    if roll < 0.55:
        primary, others = "student", ["staff"] if rng.random() < 0.05 else []
    elif roll < 0.80:
        primary, others = "staff", ["student"] if rng.random() < 0.03 else []
    elif roll < 0.90:
        primary, others = "faculty", ["staff"] if rng.random() < 0.2 else []
    elif roll < 0.97:
        primary, others = "affiliate", ["student"] if rng.random() < 0.1 else []
    else:
        primary, others = rng.choice(["alum", "retiree"]), []
    return primary, [primary, *others]


def _end_date(rng: random.Random, primary: str, today: date) -> str:
    share = {"student": 0.7, "faculty": 0.3, "staff": 0.4}.get(primary, 0.5)
    if rng.random() >= share:
        return ""
    return (today + timedelta(days=rng.randint(-60, 4 * 365))).isoformat()


def _person(rng: random.Random, number: int, today: date) -> list[str]:
    first, last = _name(rng)
    net_id = (first[0] + last.split()[0]).lower().replace("'", "")
    net_id = "".join(ch for ch in net_id if ch.isascii() and ch.isalnum()) or "user"
    net_id = f"{net_id}{number}"
    primary, all_affiliations = _affiliations(rng)
    partner, on_campus = "", "1"
    if primary == "student" and rng.random() < 0.04:
        partner, on_campus = rng.choice(PARTNER_CAMPUSES), rng.choice(["0", "1"])
    preferred_first = rng.choice(FIRST) if rng.random() < 0.15 else ""
    department = rng.choice(DEPARTMENTS)
    if rng.random() < 0.002:
        department = LONG_DEPARTMENT
    return [
        "" if rng.random() < 0.005 else f"{number:08d}",
        "" if rng.random() < 0.01 else net_id.upper() if rng.random() < 0.05 else net_id,
        first,
        last,
        preferred_first,
        "",
        "" if rng.random() < 0.05 else f"{net_id}@example.edu",
        "" if rng.random() < 0.1 else f"617555{rng.randint(0, 9999):04d}",
        primary.upper() if rng.random() < 0.1 else primary,
        ";".join(all_affiliations),
        partner,
        on_campus,
        department,
        _end_date(rng, primary, today),
    ]


def _field(value: str) -> str:
    """Quote a value that holds the delimiter or a quote, as the export does."""
    if "|" in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _line(fields: list[str]) -> bytes:
    return ("|".join(_field(f) for f in fields) + "\n").encode("utf-8")


def _broken(rng: random.Random, fields: list[str]) -> bytes:
    """A person's line, broken one of the ways real exports break."""
    kind = rng.choice(["few", "many", "quote", "date", "flag", "latin1", "crlf"])
    if kind == "few":
        return _line(fields[: rng.randint(1, len(fields) - 1)])
    if kind == "many":
        return _line([*fields[:12], "Arts | Sciences", *fields[13:]]).replace(b'"', b"")
    if kind == "quote":
        return _line(fields).replace(b"|", b'|"', 1)  # an opening quote never closed
    if kind == "date":
        return _line([*fields[:13], rng.choice(["2026-02-30", "31/12/2026", "soon"])])
    if kind == "flag":
        return _line([*fields[:11], "Y", *fields[12:]])
    if kind == "latin1":
        text = "|".join([*fields[:2], "José", *fields[3:]]) + "\n"
        return text.encode("latin-1", "replace")
    return _line(fields).replace(b"\n", b"\r\n")  # read fine: a line end, not a problem


def generate(out_dir: Path, people: int, seed: int) -> Path:
    """Write OUT_DIR/users.txt and return its path."""
    rng = random.Random(seed)
    today = date(2026, 3, 1)  # fixed, so the bytes never depend on the day
    numbers = rng.sample(range(1, max(10 * people, 100)), people)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "users.txt"
    with path.open("wb") as fh:
        fh.write(("|".join(COLUMNS) + "\n").encode("utf-8"))
        previous: list[str] | None = None
        for number in numbers:
            fields = _person(rng, number, today)
            roll = rng.random()
            if roll < 0.003:
                fh.write(_broken(rng, fields))
            else:
                fh.write(_line(fields))
            if previous is not None and roll > 0.9975:  # the same UNIQUE_ID again
                fh.write(_line([*previous[:13], _end_date(rng, "staff", today)]))
            elif previous is not None and roll > 0.995:  # the same net ID, another UNIQUE_ID
                fh.write(_line([f"{number + 1:08d}", *previous[1:]]))
            previous = fields
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write users.txt into")
    parser.add_argument("--people", type=int, default=5000, help="people in the feed")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same bytes")
    args = parser.parse_args()
    if args.people < 1:
        parser.error("--people must be at least 1")
    path = generate(args.out_dir, args.people, args.seed)
    print(path)


if __name__ == "__main__":
    main()
