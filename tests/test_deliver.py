"""Delivery to a real S3 server (moto on 127.0.0.1), directly or through the fault proxy."""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from exporter.deliver import (
    Delivery,
    S3Target,
    UploadedObject,
    check_bucket,
    deliver,
    describe_bucket,
    make_client,
    stale_zips,
)
from exporter.errors import DeliveryError
from tests.faultproxy import FaultProxy
from tests.servers import MotoServer, free_port

BUCKET = "alma-sis-bucket"
WHERE = f"s3://{BUCKET}/alma/"
INJECTED = "InternalError: Injected by the fault proxy (InternalError)."


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A client straight to moto, with the bucket made; the environment points at moto."""
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    client = moto.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def alma(url: str, prefix: str = "alma") -> S3Target:
    return S3Target(BUCKET, prefix, endpoint_url=url)


def write_zip(path: Path, size: int = 1000) -> Path:
    """A real zip holding `size` random (incompressible) bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("users.xml", os.urandom(size))
    return path


def put(s3: Any, *keys: str) -> None:
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())


def keys(s3: Any) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def download(s3: Any, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_target_key_and_url_strip_slashes_of_the_prefix() -> None:
    assert S3Target(BUCKET, "/alma/").key("a.zip") == "alma/a.zip"
    assert S3Target(BUCKET, "sis/alma").key("a.zip") == "sis/alma/a.zip"
    assert S3Target(BUCKET, "").key("a.zip") == "a.zip"
    assert S3Target(BUCKET, "/").key("a.zip") == "a.zip"
    assert S3Target(BUCKET, "alma").url("alma/a.zip") == f"s3://{BUCKET}/alma/a.zip"


def test_make_client_honours_aws_endpoint_url_from_the_environment(
    s3: Any, moto: MotoServer
) -> None:
    client = make_client(S3Target(BUCKET, "alma"))
    assert client.meta.endpoint_url == moto.url
    assert getattr(client.meta.config, "s3", None) == {"addressing_style": "path"}
    assert client.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_deliver_replaces_stale_zips_and_leaves_everything_else(
    s3: Any, moto: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    untouched = {
        "alma/notes.txt",
        "alma/archive/2023_students.zip",
        "alma-old/students.zip",
        "other/students.zip",
        "top.zip",
    }
    put(s3, "alma/students_old.zip", "alma/staff_old.zip", *untouched)
    zips = [write_zip(tmp_path / "students_1.zip", 3000), write_zip(tmp_path / "staff_1.zip")]

    with caplog.at_level(logging.INFO, logger="exporter.deliver"):
        result = deliver(zips, alma(moto.url))

    assert sorted(result.removed) == ["alma/staff_old.zip", "alma/students_old.zip"]
    assert result.uploaded == [
        UploadedObject("alma/students_1.zip", zips[0].stat().st_size, sha256(zips[0])),
        UploadedObject("alma/staff_1.zip", zips[1].stat().st_size, sha256(zips[1])),
    ]
    assert result.urls() == [f"{WHERE}students_1.zip", f"{WHERE}staff_1.zip"]
    assert keys(s3) == untouched | {"alma/students_1.zip", "alma/staff_1.zip"}
    for path in zips:
        assert download(s3, f"alma/{path.name}") == path.read_bytes()
        head = s3.head_object(Bucket=BUCKET, Key=f"alma/{path.name}")
        assert head["ContentType"] == "application/zip"
    assert download(s3, "alma/notes.txt") == b"alma/notes.txt"
    logged = caplog.text
    assert "removing 2 stale zip(s)" in logged
    assert f"uploading students_1.zip ({zips[0].stat().st_size} bytes)" in logged
    assert f"verified {WHERE}staff_1.zip" in logged


def test_stale_zips_lists_only_zips_directly_in_the_folder(s3: Any, moto: MotoServer) -> None:
    put(s3, "alma/a.zip", "alma/B.ZIP", "alma/c.txt", "alma/sub/d.zip", "alma-old/e.zip", "f.zip")
    client = make_client(alma(moto.url))
    assert sorted(stale_zips(client, alma(moto.url))) == ["alma/B.ZIP", "alma/a.zip"]
    assert sorted(stale_zips(client, alma(moto.url, ""))) == ["f.zip"]


def test_deliver_removes_stale_zips_over_several_pages_and_batches(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exporter.deliver.LIST_PAGE", 3)  # S3's own limits are 1000 each
    monkeypatch.setattr("exporter.deliver.DELETE_BATCH", 2)
    stale = [f"alma/old_{n}.zip" for n in range(7)]
    put(s3, *stale, "alma/notes.txt")

    result = deliver([write_zip(tmp_path / "new.zip")], alma(fault_proxy.url))

    assert sorted(result.removed) == stale
    assert keys(s3) == {"alma/new.zip", "alma/notes.txt"}
    assert len(fault_proxy.seen("GET", query="list-type=2")) == 3
    assert len(fault_proxy.seen("POST", query="delete")) == 4


def test_deliver_uses_multipart_above_the_threshold(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    big = write_zip(tmp_path / "big.zip", 6 * 1024 * 1024)
    small = write_zip(tmp_path / "small.zip")

    deliver(
        [big, small],
        alma(fault_proxy.url),
        multipart_threshold=1024 * 1024,
        multipart_chunksize=5 * 1024 * 1024,
    )

    parts = fault_proxy.seen("PUT", path="/alma/big.zip", query="partNumber=")
    assert len(parts) == 2  # s3transfer raises the 1 MiB chunk size to S3's 5 MiB minimum
    assert all("uploadId=" in part.query for part in parts)
    assert [p.query for p in fault_proxy.seen("PUT", path="/alma/small.zip")] == [""]
    assert s3.head_object(Bucket=BUCKET, Key="alma/big.zip")["ETag"].endswith('-2"')
    assert download(s3, "alma/big.zip") == big.read_bytes()


def test_deliver_retries_a_put_after_server_errors(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.fail("PUT", count=1, status=503, path="/alma/")
    fault_proxy.fail("PUT", count=1, status=500, path="/alma/")
    zip_path = write_zip(tmp_path / "students.zip")

    result = deliver([zip_path], alma(fault_proxy.url))

    puts = fault_proxy.seen("PUT", path="/alma/students.zip")
    assert [(p.status, p.injected) for p in puts] == [(503, True), (500, True), (200, False)]
    assert result.urls() == [f"{WHERE}students.zip"]
    assert download(s3, "alma/students.zip") == zip_path.read_bytes()


def test_deliver_retries_a_multipart_part_after_a_server_error(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.fail("PUT", count=1, status=500, query="partNumber=2")
    big = write_zip(tmp_path / "big.zip", 6 * 1024 * 1024)

    deliver(
        [big],
        alma(fault_proxy.url),
        multipart_threshold=1024 * 1024,
        multipart_chunksize=5 * 1024 * 1024,
    )

    statuses = [p.status for p in fault_proxy.seen("PUT", query="partNumber=2")]
    assert statuses == [500, 200]
    assert download(s3, "alma/big.zip") == big.read_bytes()


def test_deliver_says_old_zips_are_gone_when_every_upload_fails(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    put(s3, "alma/students_old.zip", "alma/notes.txt")
    fault_proxy.fail_always("PUT", status=500, path="/alma/")
    target = alma(fault_proxy.url)
    zips = [write_zip(tmp_path / "students.zip"), write_zip(tmp_path / "staff.zip")]

    with pytest.raises(DeliveryError) as caught:
        deliver(zips, target, client=make_client(target, max_attempts=2))

    assert str(caught.value) == (
        f"uploading students.zip to {WHERE}students.zip failed after 2 attempts: {INJECTED}; "
        "the old zips were removed: students_old.zip; nothing uploaded; "
        f"the bucket now holds under {WHERE}: notes.txt (14 bytes)"
    )
    assert len(fault_proxy.seen("PUT", path="/alma/students.zip")) == 2
    assert keys(s3) == {"alma/notes.txt"}


def test_deliver_says_which_new_zips_arrived_when_a_later_upload_fails(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    put(s3, "alma/staff_old.zip", "alma/students_old.zip")
    fault_proxy.fail_always("PUT", status=503, path="/alma/staff.zip")
    target = alma(fault_proxy.url)
    students = write_zip(tmp_path / "students.zip")
    size = students.stat().st_size

    with pytest.raises(DeliveryError) as caught:
        deliver(
            [students, write_zip(tmp_path / "staff.zip")],
            target,
            client=make_client(target, max_attempts=1),
        )

    assert str(caught.value) == (
        f"uploading staff.zip to {WHERE}staff.zip failed after 1 attempt: "
        "SlowDown: Injected by the fault proxy (SlowDown).; "
        "the old zips were removed: staff_old.zip, students_old.zip; uploaded: students.zip; "
        f"the bucket now holds under {WHERE}: students.zip ({size} bytes)"
    )


def test_deliver_says_when_the_folder_cannot_be_listed(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    put(s3, "alma/students_old.zip")
    fault_proxy.fail_always("GET", status=500, query="list-type=2")
    target = alma(fault_proxy.url)

    with pytest.raises(DeliveryError) as caught:
        deliver(
            [write_zip(tmp_path / "students.zip")],
            target,
            client=make_client(target, max_attempts=2),
        )

    assert str(caught.value) == (
        f"listing the stale zips in {WHERE} failed after 2 attempts: {INJECTED}; "
        f"nothing was changed; the bucket could not be listed under {WHERE} ({INJECTED})"
    )
    assert keys(s3) == {"alma/students_old.zip"}
    assert not fault_proxy.seen("PUT")


def test_deliver_verification_catches_a_stored_object_that_differs(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.corrupt("GET", path="/alma/students.zip")
    zip_path = write_zip(tmp_path / "students.zip")
    size, local = zip_path.stat().st_size, sha256(zip_path)
    stored = bytearray(zip_path.read_bytes())
    stored[0] ^= 0xFF

    with pytest.raises(DeliveryError) as caught:
        deliver([zip_path], alma(fault_proxy.url))

    assert str(caught.value) == (
        f"verifying {WHERE}students.zip failed: the stored object differs from students.zip: "
        f"SHA-256 {hashlib.sha256(stored).hexdigest()} in the bucket, {local} locally; "
        "there were no old zips; uploaded: students.zip; "
        f"the bucket now holds under {WHERE}: students.zip ({size} bytes)"
    )


def test_deliver_verification_reports_a_checksum_botocore_rejects(
    s3: Any, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.corrupt("GET", path="/alma/students.zip", keep_checksums=True)

    with pytest.raises(DeliveryError) as caught:
        deliver([write_zip(tmp_path / "students.zip")], alma(fault_proxy.url))

    message = str(caught.value)
    assert message.startswith(
        f"verifying {WHERE}students.zip failed: "
        "the downloaded bytes do not match the checksum S3 stored ("
    )
    assert "\n" not in message


def test_deliver_refuses_a_missing_local_file_before_touching_the_bucket(
    s3: Any, moto: MotoServer, tmp_path: Path
) -> None:
    put(s3, "alma/students_old.zip")
    missing = tmp_path / "students.zip"

    with pytest.raises(DeliveryError) as caught:
        deliver([missing], alma(moto.url))

    assert str(caught.value) == (
        f"cannot read {missing} before delivery: No such file or directory; nothing was changed"
    )
    assert keys(s3) == {"alma/students_old.zip"}


def test_deliver_refuses_two_zips_with_one_name(s3: Any, moto: MotoServer, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    zips = [write_zip(tmp_path / "a" / "x.zip"), write_zip(tmp_path / "b" / "x.zip")]

    with pytest.raises(DeliveryError, match=r"^two zips to deliver share a name: x\.zip$"):
        deliver(zips, alma(moto.url))


def test_describe_bucket_lists_the_folder_with_sizes(s3: Any, moto: MotoServer) -> None:
    client = make_client(alma(moto.url))
    assert describe_bucket(client, alma(moto.url)) == f"the bucket now holds under {WHERE}: nothing"
    put(s3, "alma/a.zip", "alma/sub/b.zip", "alma-old/c.zip")
    assert describe_bucket(client, alma(moto.url)) == (
        f"the bucket now holds under {WHERE}: a.zip (10 bytes)"
    )


def test_check_bucket_passes_on_a_reachable_folder(s3: Any, moto: MotoServer) -> None:
    check_bucket(alma(moto.url))


def test_check_bucket_names_a_missing_bucket(moto: MotoServer, s3: Any) -> None:
    target = S3Target("no-such-bucket", "/alma/", endpoint_url=moto.url)

    with pytest.raises(DeliveryError) as caught:
        check_bucket(target)

    assert str(caught.value) == (
        "cannot reach s3://no-such-bucket/alma/: NoSuchBucket: The specified bucket does not exist"
    )


def test_check_bucket_names_an_unreachable_endpoint(s3: Any) -> None:
    target = S3Target(BUCKET, "alma", endpoint_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(DeliveryError) as caught:
        check_bucket(target, make_client(target, max_attempts=1))

    assert str(caught.value).startswith(
        f"cannot reach {WHERE}: EndpointConnectionError: Could not connect to the endpoint URL"
    )


def test_delivery_urls_name_the_uploaded_objects() -> None:
    delivery = Delivery([], [UploadedObject("alma/a.zip", 1, "00")], 0.5, S3Target(BUCKET, "alma"))
    assert delivery.urls() == [f"{WHERE}a.zip"]
