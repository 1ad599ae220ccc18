"""Zips within Alma's limits: split XML, count limits, atomic publish, identical bytes."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from exporter.errors import ExportError
from exporter.package import Chunk, Limits, PackageWriter


def records(n: int, batch: int = 7) -> Iterator[Chunk]:
    lines = [f"<user><primary_id>P{i:05d}</primary_id></user>\n" for i in range(n)]
    for i in range(0, n, batch):
        yield Chunk.of(lines[i : i + batch])


def writer(tmp_path: Path, **limits: int) -> PackageWriter:
    return PackageWriter(
        tmp_path, "2023-03-01_06.00.00", date(2023, 3, 1), "userRecords", Limits(**limits)
    )


def test_package_single_file_when_under_the_limit(tmp_path: Path) -> None:
    pkg = writer(tmp_path)
    (made,) = pkg.write_type("staff", records(100))
    pkg.publish()
    assert made.path.name == "staff_2023-03-01_06.00.00.zip"
    with zipfile.ZipFile(made.path) as zf:
        assert zf.namelist() == ["staff_2023-03-01_06.00.00.xml"]
        info = zf.infolist()[0]
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.date_time == (2023, 3, 1, 0, 0, 0)
        root = etree.fromstring(zf.read(info))
    assert root.tag == "userRecords" and len(root) == 100
    assert made.users == 100
    assert made.path.stat().st_mode & 0o777 == 0o600


def test_package_splits_xml_at_size_limit_into_complete_documents(tmp_path: Path) -> None:
    pkg = writer(tmp_path, max_xml_bytes=2000)
    (made,) = pkg.write_type("student", records(200))
    pkg.publish()
    assert len(made.members) > 1
    assert made.members[:2] == [
        "student_2023-03-01_06.00.00.xml",
        "student_2023-03-01_06.00.00_2.xml",
    ]
    ids = []
    with zipfile.ZipFile(made.path) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            assert len(data) <= 2000
            ids += [u.findtext("primary_id") for u in etree.fromstring(data)]
    assert ids == [f"P{i:05d}" for i in range(200)]  # nothing lost, order kept


def test_package_starts_a_new_zip_after_50_xml_files(tmp_path: Path) -> None:
    pkg = writer(tmp_path, max_xml_bytes=1024, max_xml_per_zip=50)
    made = pkg.write_type("staff", records(2000, batch=100))
    assert [len(z.members) for z in made][:1] == [50]
    assert made[1].path.name == "staff_2023-03-01_06.00.00_2.zip"
    assert sum(z.users for z in made) == 2000


def test_package_refuses_more_than_the_zip_limit_and_leaves_nothing(tmp_path: Path) -> None:
    pkg = writer(tmp_path, max_xml_bytes=1024, max_xml_per_zip=1, max_zips=3)
    with pytest.raises(ExportError, match="more than 3 zips would be needed"):
        pkg.write_type("staff", records(500))
    pkg.discard()
    assert list(tmp_path.iterdir()) == []


def test_package_refuses_a_record_larger_than_the_limit(tmp_path: Path) -> None:
    pkg = writer(tmp_path, max_xml_bytes=1024)
    big = [Chunk.of(["<user><x>" + "y" * 2000 + "</x></user>\n"])]
    with pytest.raises(
        ExportError, match="one staff record is 2021 bytes, more than the XML size limit"
    ):
        pkg.write_type("staff", iter(big))


def test_package_writes_temporary_names_until_published(tmp_path: Path) -> None:
    pkg = writer(tmp_path)
    (made,) = pkg.write_type("staff", records(3))
    assert [p.name for p in tmp_path.iterdir()] == [f".{made.path.name}.tmp"]
    pkg.publish()
    assert [p.name for p in tmp_path.iterdir()] == [made.path.name]


def test_package_same_records_same_bytes(tmp_path: Path) -> None:
    digests = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        pkg = writer(folder)
        (made,) = pkg.write_type("staff", records(300))
        pkg.publish()
        digests.append(hashlib.sha256(made.path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_package_deflates_at_the_configured_level_readable_by_plain_zlib(tmp_path: Path) -> None:
    sizes = {}
    for level in (1, 9):
        folder = tmp_path / str(level)
        folder.mkdir()
        pkg = writer(folder, compresslevel=level)
        (made,) = pkg.write_type("staff", records(5000))
        pkg.publish()
        with zipfile.ZipFile(made.path) as zf:
            assert zf.testzip() is None  # stdlib zlib inflates it and the CRC holds
            (info,) = zf.infolist()
            text = zf.read(info).decode()
            assert text.count("<user>") == 5000
            sizes[level] = info.compress_size
    assert sizes[9] < sizes[1]  # the level is not ignored
