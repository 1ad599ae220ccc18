"""Delivery of the zips to the S3 folder Alma loads from.

Every zip is built and validated locally (the outbox) before this stage runs, so a broken
feed never touches the bucket. Then, in this order:

1. remove the stale zips from the folder, so Alma never sees two zips of one patron type;
2. upload the new zips (multipart for large files; botocore retries with backoff);
3. verify each upload: its size by HEAD, its bytes by the SHA-256 of a streamed GET.

What Alma may find in the folder meanwhile: the old set; then nothing or part of the new
set; then the full new set. A failure stops the delivery and its message says what the
folder holds at that moment, so nobody has to guess whether the old zips are gone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as S3ConnectionError

from exporter.errors import DeliveryError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Bytes read at a time when hashing a local file or a downloaded object.
CHUNK = MiB
#: Most keys one DeleteObjects request may name; keys one listing page holds.
DELETE_BATCH = 1000
LIST_PAGE = 1000
#: Errors a call to S3 raises once botocore has given up retrying.
S3_ERRORS = (ClientError, BotoCoreError, S3UploadFailedError)


@dataclass(frozen=True)
class S3Target:
    """The bucket and folder (prefix) Alma loads zips from."""

    bucket: str
    prefix: str
    endpoint_url: str | None = None
    region: str | None = None

    @property
    def folder(self) -> str:
        """The prefix as a folder: `alma/` for "/alma/", empty for the bucket's top."""
        prefix = self.prefix.strip("/")
        return f"{prefix}/" if prefix else ""

    def key(self, name: str) -> str:
        """The key of a file called `name` in the folder."""
        return f"{self.folder}{name}"

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class UploadedObject:
    """One zip as stored and verified in the bucket."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Delivery:
    """What a delivery did: the stale keys removed and the zips uploaded."""

    removed: list[str]
    uploaded: list[UploadedObject]
    seconds: float
    target: S3Target

    def urls(self) -> list[str]:
        """The s3:// URLs of the uploaded zips."""
        return [self.target.url(obj.key) for obj in self.uploaded]


def make_client(
    target: S3Target,
    *,
    max_attempts: int = 6,
    connect_timeout: float = 5,
    read_timeout: float = 60,
) -> S3Client:
    """An S3 client whose calls botocore retries (5xx, throttling, timeouts) with backoff.

    Args:
        target: Its endpoint_url wins; without one boto3 reads AWS_ENDPOINT_URL itself.
        max_attempts: Attempts per call in all, the first one included.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for data on a connection.
    """
    endpoint = target.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # A local S3 (moto, MinIO) at http://127.0.0.1:port has no per-bucket host names.
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    return boto3.client(
        "s3", endpoint_url=target.endpoint_url, region_name=target.region, config=config
    )


def check_bucket(target: S3Target, client: S3Client | None = None) -> None:
    """Fail early when the folder cannot be listed (no bucket, no access, no network).

    Raises:
        DeliveryError: "cannot reach s3://bucket/prefix/: <code>: <message>".
    """
    client = client or make_client(target)
    try:
        client.list_objects_v2(Bucket=target.bucket, Prefix=target.folder, MaxKeys=1)
    except S3_ERRORS as exc:
        where = target.url(target.folder)
        raise DeliveryError(_one_line(f"cannot reach {where}: {_reason(exc)}")) from exc


def stale_zips(client: S3Client, target: S3Target) -> list[str]:
    """Keys of the .zip objects directly in the folder (not in its subfolders)."""
    return [
        obj["Key"] for obj in _folder_objects(client, target) if obj["Key"].lower().endswith(".zip")
    ]


def describe_bucket(client: S3Client, target: S3Target) -> str:
    """What the folder holds now (objects directly in it, as Alma sees them), for messages."""
    where = target.url(target.folder)
    try:
        objects = list(_folder_objects(client, target))
    except S3_ERRORS as exc:
        return f"the bucket could not be listed under {where} ({_reason(exc)})"
    held = ", ".join(f"{_name(obj['Key'], target)} ({obj['Size']} bytes)" for obj in objects)
    return f"the bucket now holds under {where}: {held or 'nothing'}"


def deliver(
    zips: list[Path],
    target: S3Target,
    *,
    client: S3Client | None = None,
    multipart_threshold: int = 64 * MiB,
    multipart_chunksize: int = 16 * MiB,
) -> Delivery:
    """Replace the zips in the folder with `zips`, then check every byte arrived.

    Raises:
        DeliveryError: A step failed after botocore's retries; the message names the step,
            the file or key, the error, and what the folder holds now.
    """
    started = time.monotonic()
    client = client or make_client(target)
    local = _describe_local(zips, target)
    run = _Run(client, target)
    run.remove_stale()
    transfer = TransferConfig(
        multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
    )
    for item in local:
        run.upload(item, transfer)
    for item in local:
        run.verify(item)
    seconds = time.monotonic() - started
    log.info("delivered %d zip(s) to %s in %.1f s", len(local), target.url(target.folder), seconds)
    return Delivery(run.removed, run.uploaded, seconds, target)


@dataclass(frozen=True)
class _Local:
    """A zip to deliver, measured before anything in the bucket changes."""

    path: Path
    key: str
    size: int
    sha256: str


def _describe_local(zips: list[Path], target: S3Target) -> list[_Local]:
    names = [path.name for path in zips]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DeliveryError(f"two zips to deliver share a name: {', '.join(twice)}")
    local = []
    for path in zips:
        try:
            local.append(_Local(path, target.key(path.name), path.stat().st_size, _sha256(path)))
        except OSError as exc:
            raise DeliveryError(
                f"cannot read {path} before delivery: {exc.strerror or exc}; nothing was changed"
            ) from exc
    return local


class _Run:
    """The steps of one delivery and what they have done so far, for failure messages."""

    def __init__(self, client: S3Client, target: S3Target) -> None:
        self.client = client
        self.target = target
        self.listed = False
        self.stale: list[str] = []
        self.removed: list[str] = []
        self.uploaded: list[UploadedObject] = []

    def remove_stale(self) -> None:
        where = self.target.url(self.target.folder)
        try:
            self.stale = stale_zips(self.client, self.target)
        except S3_ERRORS as exc:
            raise self._failed(f"listing the stale zips in {where}", exc) from exc
        self.listed = True
        log.info(
            "removing %d stale zip(s) from %s: %s", len(self.stale), where, self._names(self.stale)
        )
        for start in range(0, len(self.stale), DELETE_BATCH):
            batch = self.stale[start : start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.target.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except S3_ERRORS as exc:
                raise self._failed(f"removing stale zips from {where}", exc) from exc
            errors = response.get("Errors", [])
            failed = {error.get("Key", "") for error in errors}
            self.removed += [key for key in batch if key not in failed]
            if errors:
                detail = ", ".join(
                    f"{self._name(e.get('Key', '?'))} ({e.get('Code', '?')}: {e.get('Message')})"
                    for e in errors
                )
                raise self._failed(f"removing stale zips from {where}", None, detail)

    def upload(self, item: _Local, transfer: TransferConfig) -> None:
        url = self.target.url(item.key)
        log.info("uploading %s (%d bytes) to %s", item.path.name, item.size, url)
        try:
            self.client.upload_file(
                str(item.path),
                self.target.bucket,
                item.key,
                ExtraArgs={"ContentType": "application/zip"},
                Config=transfer,
            )
        except (*S3_ERRORS, OSError) as exc:
            raise self._failed(f"uploading {item.path.name} to {url}", exc) from exc
        self.uploaded.append(UploadedObject(item.key, item.size, item.sha256))

    def verify(self, item: _Local) -> None:
        url = self.target.url(item.key)
        what = f"verifying {url}"
        try:
            head = self.client.head_object(Bucket=self.target.bucket, Key=item.key)
            if head["ContentLength"] != item.size:
                raise self._failed(
                    what, None, f"it has {head['ContentLength']} bytes, the local file {item.size}"
                )
            stored = self._stored_sha256(item.key)
        except FlexibleChecksumError as exc:
            detail = f"the downloaded bytes do not match the checksum S3 stored ({exc})"
            raise self._failed(what, None, detail) from exc
        except S3_ERRORS as exc:
            raise self._failed(what, exc) from exc
        if stored != item.sha256:
            detail = (
                f"the stored object differs from {item.path.name}: "
                f"SHA-256 {stored} in the bucket, {item.sha256} locally"
            )
            raise self._failed(what, None, detail)
        log.info("verified %s: %d bytes, sha256 %s", url, item.size, item.sha256)

    def _stored_sha256(self, key: str) -> str:
        body = self.client.get_object(Bucket=self.target.bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        try:
            for chunk in body.iter_chunks(CHUNK):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    def _failed(
        self, what: str, exc: BaseException | None, detail: str | None = None
    ) -> DeliveryError:
        """One line: what failed and why, what changed so far, what the folder holds."""
        attempts = ""
        if exc is not None:
            detail = _reason(exc)
            attempts = _attempts(exc, self.client)
        parts = [f"{what} failed{attempts}: {detail}"]
        if not self.listed:
            parts.append("nothing was changed")
        else:
            if self.removed:
                parts.append(f"the old zips were removed: {self._names(self.removed)}")
            else:
                parts.append("no old zip was removed" if self.stale else "there were no old zips")
            uploaded = [obj.key for obj in self.uploaded]
            parts.append(f"uploaded: {self._names(uploaded)}" if uploaded else "nothing uploaded")
        parts.append(describe_bucket(self.client, self.target))
        return DeliveryError(_one_line("; ".join(parts)))

    def _name(self, key: str) -> str:
        return _name(key, self.target)

    def _names(self, keys: list[str]) -> str:
        return ", ".join(self._name(key) for key in keys) or "none"


def _folder_objects(client: S3Client, target: S3Target) -> Iterator[ObjectTypeDef]:
    """The objects directly in the folder, page by page (a "/" delimiter skips subfolders)."""
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=target.bucket,
        Prefix=target.folder,
        Delimiter="/",
        PaginationConfig={"PageSize": LIST_PAGE},
    )
    for page in pages:
        for obj in page.get("Contents", []):
            if obj["Key"] != target.folder:  # a "folder" marker object is not a file
                yield obj


def _name(key: str, target: S3Target) -> str:
    return key.removeprefix(target.folder)


def _one_line(text: str) -> str:
    """`text` with line breaks (S3 messages may have some) turned into spaces."""
    return " ".join(text.split())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _client_error(exc: BaseException) -> ClientError | None:
    """The ClientError behind `exc` (boto3 wraps upload failures in S3UploadFailedError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    """`<code>: <message>` of an S3 error."""
    error = _client_error(exc)
    if error is not None:
        details: Any = error.response.get("Error", {})
        return f"{details.get('Code', '?')}: {details.get('Message') or 'no message'}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _attempts(exc: BaseException, client: S3Client) -> str:
    """` after N attempts` when botocore says how many it made, or retries such errors."""
    error = _client_error(exc)
    if error is not None:
        retries = error.response.get("ResponseMetadata", {}).get("RetryAttempts")
        if retries is not None:
            return f" after {retries + 1} attempt{'s' if retries else ''}"
    if isinstance(exc, (S3ConnectionError, HTTPClientError)):
        policy: dict[str, Any] = getattr(client.meta.config, "retries", None) or {}
        total = policy.get("total_max_attempts")
        if total:
            return f" after up to {total} attempts"
    return ""
