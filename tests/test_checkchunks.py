"""Validation while writing: every record checked, problems located by record number."""

from __future__ import annotations

import pytest

from exporter.checkchunks import RECORDS_PER_TASK, ChunkChecker
from exporter.errors import ValidationError
from exporter.package import Chunk
from exporter.project import load_project

XSD = load_project().xsd_file


def records(n: int, bad: set[int]) -> list[str]:
    """n user records; those numbered in `bad` (1-based) carry an empty date."""
    return [
        "<user><expiry_date/></user>\n"
        if i in bad
        else f"<user><first_name>line one\nline two {i}</first_name></user>\n"
        for i in range(1, n + 1)
    ]


def test_checker_accepts_valid_records_in_several_tasks() -> None:
    checker = ChunkChecker(XSD, "userRecords")
    chunk = Chunk.of(records(RECORDS_PER_TASK + 500, set()))
    checker.submit("staff", chunk.data, list(chunk.ends))
    checker.finish()


def test_checker_names_the_record_across_tasks_and_chunks() -> None:
    checker = ChunkChecker(XSD, "users")
    first = Chunk.of(records(100, set()))
    second = Chunk.of(records(RECORDS_PER_TASK + 500, {RECORDS_PER_TASK + 300}))
    checker.submit("student", first.data, list(first.ends))
    checker.submit("student", second.data, list(second.ends))
    with pytest.raises(ValidationError) as caught:
        checker.finish()
    assert f"student record {100 + RECORDS_PER_TASK + 300}: Element 'expiry_date'" in str(
        caught.value
    )
    assert str(caught.value).startswith("1 problem(s) in the produced XML, nothing published")


def test_checker_reports_malformed_records() -> None:
    checker = ChunkChecker(XSD, "userRecords")
    chunk = Chunk.of(records(3, set())[:2] + ["<user><first_name>x</user>\n"])
    checker.submit("staff", chunk.data, list(chunk.ends))
    with pytest.raises(ValidationError, match="staff record 3: "):
        checker.finish()
