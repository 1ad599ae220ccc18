"""The daily job as production runs it: the real CLI, S3 and SES (moto) and SMTP on 127.0.0.1."""

from __future__ import annotations

import csv
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Result, edit, patronload
from tests.faultproxy import FaultProxy
from tests.servers import MotoServer, SmtpServer

BUCKET = "alma-sis-bucket"
PREFIX = "alma/patrons"
SENDER = "patronload@library.example.edu"
RECIPIENTS = "ops@library.example.edu, systems@library.example.edu"
SECRETS = {
    # Set but never used (the explicit --warehouse wins); they must not leak anywhere.
    "DATA_WAREHOUSE_USER": "libloader",
    "DATA_WAREHOUSE_PASSWORD": "Tiger-Secret-91",
    "DATA_WAREHOUSE_HOST": "db.library.example.edu",
    "DATA_WAREHOUSE_PORT": "1521",
    "DATA_WAREHOUSE_SID": "DWPROD",
}


@pytest.fixture
def bucket(moto: MotoServer) -> Any:
    """The bucket Alma loads from, holding yesterday's zips and things that are not ours."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for key in (
        f"{PREFIX}/staff_2026-11-24_06.00.00.zip",
        f"{PREFIX}/student_2026-11-24_06.00.00.zip",
        f"{PREFIX}/README.txt",
        f"{PREFIX}/archive/staff_2026-01-01_06.00.00.zip",
        "alma/patrons-old/staff_2020-01-01_06.00.00.zip",
        "elsewhere/staff.zip",
    ):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"old " + key.encode())
    return s3


def new_zips(s3: Any) -> list[str]:
    """The zips directly in Alma's folder."""
    return [
        k
        for k in keys(s3)
        if k.startswith(f"{PREFIX}/") and k.count("/") == 2 and k.endswith(".zip")
    ]


def keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


NOT_OURS = sorted(
    [
        f"{PREFIX}/README.txt",
        f"{PREFIX}/archive/staff_2026-01-01_06.00.00.zip",
        "alma/patrons-old/staff_2020-01-01_06.00.00.zip",
        "elsewhere/staff.zip",
    ]
)


def settings(moto: MotoServer, smtp: SmtpServer | None, **extra: str) -> dict[str, str]:
    env = {
        **moto.env(),
        "WORKSPACE": "prod",
        "S3_BUCKET_NAME": BUCKET,
        "S3_PREFIX": PREFIX,
        "SES_SEND_FROM_EMAIL": SENDER,
        "SES_RECIPIENT_EMAIL": RECIPIENTS,
        "PATRONLOAD_S3_ATTEMPTS": "3",
        **SECRETS,
    }
    if smtp is not None:
        env.update(smtp.env(), STARTTLS="false")
    env.update(extra)
    return env


def warehouse(tmp_path: Path, name: str = "wh") -> Path:
    folder = tmp_path / name
    shutil.copytree(FIXTURES / "rules", folder, ignore=shutil.ignore_patterns("expected"))
    return folder


def keep_rows(path: Path, keep: int) -> None:
    """Cut a warehouse CSV to its first `keep` people."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows[: keep + 1])


def run(tmp_path: Path, env: dict[str, str], *args: str, wh: str = "wh") -> Result:
    return patronload(
        "-v", "run", "--warehouse", wh, "--as-of", "2026-11-25", *args, cwd=tmp_path, env=env
    )


def body(message: EmailMessage) -> str:
    plain = message.get_body(("plain",))
    assert plain is not None
    return str(plain.get_content())


def attachment(message: EmailMessage) -> tuple[str, str]:
    (part,) = list(message.iter_attachments())
    return str(part.get_filename()), str(part.get_content())


def test_run_delivers_to_s3_and_mails_the_report(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer
) -> None:
    warehouse(tmp_path)
    result = run(tmp_path, settings(moto, smtp_server), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    new = sorted(f"{PREFIX}/{Path(f['zip']).name}" for f in report["files"])
    assert [Path(k).name.split("_")[0] for k in new] == ["staff", "student"]
    # yesterday's two zips are gone, nothing else in or out of the prefix was touched
    assert keys(bucket) == sorted(new + NOT_OURS)
    for key, file in zip(new, sorted(report["files"], key=lambda f: f["zip"]), strict=True):
        assert bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read() == (
            Path(file["zip"]).read_bytes()
        )
    assert report["destinations"] == [f"s3://{BUCKET}/{k}" for k in new]

    (mail,) = smtp_server.received
    assert mail.sender == SENDER
    assert mail.recipients == [r.strip() for r in RECIPIENTS.split(",")]
    assert mail.message["Subject"] == "PROD Patronload file creation 2026-11-25"
    text = body(mail.message)
    assert "staff" in text and "student" in text
    for n in (report["exported"]["staff"], report["exported"]["student"]):
        assert str(n) in text
    assert "student_is_staff" in text  # rejections per reason
    assert f"s3://{BUCKET}/{new[0]}" in text
    assert mail.message.get_body(("html",)) is not None
    name, log_text = attachment(mail.message)
    assert name == "patronload-2026-11-25.log"
    assert "removed stale zips" in log_text and "student_2026-11-24_06.00.00.zip" in log_text

    (entry,) = [json.loads(x) for x in (tmp_path / "history/runs.jsonl").read_text().splitlines()]
    assert entry["delivered"] is True and entry["keys"] == report["destinations"]
    assert entry["target"] == f"s3://{BUCKET}/{PREFIX}/"


def test_a_failed_build_leaves_the_bucket_untouched_and_says_so(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer, project_copy: Path
) -> None:
    warehouse(tmp_path)
    edit(project_copy / "queries" / "models" / "users.sql", "SELECT", "SELECT no_such_column,")
    before = keys(bucket)
    env = settings(moto, smtp_server, PATRONLOAD_PROJECT=str(project_copy))
    result = run(tmp_path, env)
    assert result.code == 1
    assert keys(bucket) == before
    (mail,) = smtp_server.received
    assert mail.message["Subject"].startswith("PROD Patronload file creation 2026-11-25")
    assert "FAILED" in mail.message["Subject"]
    assert "no_such_column" in body(mail.message)


def test_the_guard_refuses_a_halved_feed_and_an_empty_one_unless_forced(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer
) -> None:
    env = settings(moto, smtp_server)
    warehouse(tmp_path)
    assert run(tmp_path, env).code == 0
    delivered = keys(bucket)

    half = warehouse(tmp_path, "half")
    keep_rows(half / "LIBRARY_EMPLOYEE.csv", 5)  # 7 staff exported before, 3 now
    refused = run(tmp_path, env, wh="half")
    assert refused.code == 3
    last = refused.err.splitlines()[-1]
    assert last.startswith("Error: refused to deliver: staff: 7 -> ")
    assert "more than the 10% drop allowed" in last and "rerun with --force" in last
    assert keys(bucket) == delivered  # the bucket is as it was
    assert not [p for p in (tmp_path / "outbox").glob("*.zip") if p.name not in str(delivered)]
    mail = smtp_server.received[-1].message
    assert "REFUSED" in mail["Subject"] and "staff: 7 -> " in body(mail)

    empty = warehouse(tmp_path, "empty")
    keep_rows(empty / "LIBRARY_STUDENT.csv", 0)
    result = run(tmp_path, env, wh="empty")
    assert result.code == 3
    assert "student: no patrons to export" in result.err.splitlines()[-1]
    assert keys(bucket) == delivered

    forced = run(tmp_path, env, "--force", wh="half")
    assert forced.code == 0, forced.err
    assert keys(bucket) != delivered
    assert "delivered with --force despite: staff: 7 -> " in forced.out
    # the forced run is now what the next run is compared with
    assert run(tmp_path, env, wh="half").code == 0


def test_a_wider_max_drop_lets_the_halved_feed_through(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer
) -> None:
    env = settings(moto, smtp_server)
    warehouse(tmp_path)
    assert run(tmp_path, env).code == 0
    keep_rows(warehouse(tmp_path, "half") / "LIBRARY_EMPLOYEE.csv", 5)
    assert run(tmp_path, env, "--max-drop", "0.7", wh="half").code == 0
    assert run(tmp_path, {**env, "PATRONLOAD_MAX_DROP": "70%"}, wh="half").code == 0


def test_dry_run_never_touches_the_bucket(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer
) -> None:
    warehouse(tmp_path)
    before = keys(bucket)
    result = run(tmp_path, settings(moto, smtp_server), "--dry-run")
    assert result.code == 0, result.err
    assert keys(bucket) == before
    assert len(list((tmp_path / "outbox").glob("*.zip"))) == 2
    assert "DRY RUN" in smtp_server.received[-1].message["Subject"]
    (entry,) = [json.loads(x) for x in (tmp_path / "history/runs.jsonl").read_text().splitlines()]
    assert entry["delivered"] is False


def test_upload_retried_after_server_errors(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer, fault_proxy: FaultProxy
) -> None:
    warehouse(tmp_path)
    fault_proxy.fail("PUT", count=2, status=503)
    env = settings(moto, smtp_server, AWS_ENDPOINT_URL=fault_proxy.url)
    result = run(tmp_path, env)
    assert result.code == 0, result.err
    puts = fault_proxy.seen("PUT")
    assert [p.status for p in puts[:2]] == [503, 503] and puts[2].status == 200
    assert len(new_zips(bucket)) == 2


def test_an_upload_that_keeps_failing_says_what_the_bucket_holds(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer, fault_proxy: FaultProxy
) -> None:
    warehouse(tmp_path)
    fault_proxy.fail_always("PUT", status=500)
    env = settings(moto, smtp_server, AWS_ENDPOINT_URL=fault_proxy.url)
    result = run(tmp_path, env)
    assert result.code == 1
    last = result.err.splitlines()[-1]
    assert last.startswith("Error: uploading staff_") and "failed after 3 attempts" in last
    assert "the old zips were removed" in last
    assert f"the bucket now holds under s3://{BUCKET}/{PREFIX}/: README.txt" in last
    assert keys(bucket) == NOT_OURS
    mail = smtp_server.received[-1].message
    assert "FAILED at deliver" in mail["Subject"]
    assert "the bucket now holds" in body(mail)
    assert not (tmp_path / "history/runs.jsonl").exists()  # not delivered, not recorded


def test_report_by_ses(tmp_path: Path, moto: MotoServer, bucket: Any) -> None:
    moto.client("ses").verify_email_identity(EmailAddress=SENDER)
    warehouse(tmp_path)
    result = run(tmp_path, settings(moto, None))
    assert result.code == 0, result.err
    (sent,) = moto.sent_emails()
    raw = sent["raw_data"]
    assert "Subject: PROD Patronload file creation 2026-11-25" in raw
    assert set(sent["destinations"]) == {r.strip() for r in RECIPIENTS.split(",")}


def test_a_report_that_cannot_be_sent_changes_nothing(
    tmp_path: Path, moto: MotoServer, bucket: Any
) -> None:
    warehouse(tmp_path)  # the sender is not verified in SES, so SES refuses the report
    result = run(tmp_path, settings(moto, None))
    assert result.code == 0, result.err
    assert "the run report was not sent" in result.err
    assert len(new_zips(bucket)) == 2


def test_no_secret_in_any_log_line_report_or_history(
    tmp_path: Path, moto: MotoServer, bucket: Any, smtp_server: SmtpServer, fault_proxy: FaultProxy
) -> None:
    warehouse(tmp_path)
    env = settings(moto, smtp_server, LOG_LEVEL="DEBUG", AWS_ENDPOINT_URL=fault_proxy.url)
    secrets = [env["DATA_WAREHOUSE_PASSWORD"], env["AWS_SECRET_ACCESS_KEY"]]
    ok = patronload("-v", "run", "--warehouse", "wh", cwd=tmp_path, env=env)
    fault_proxy.fail_always("PUT", status=500)
    failed = patronload("run", "--warehouse", "wh", "--force", cwd=tmp_path, env=env)
    config = patronload("config", cwd=tmp_path, env=env)
    assert (ok.code, failed.code, config.code) == (0, 1, 0)
    seen = [ok.out, ok.err, failed.out, failed.err, config.out]
    seen += [m.message.as_string() for m in smtp_server.received]
    seen += [p.read_text() for p in (tmp_path / "history").iterdir()]
    assert len(smtp_server.received) == 2
    for text in seen:
        for secret in secrets:
            assert secret not in text


class _Collector(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            data = gzip.decompress(data)
        self.bodies.append(data)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[tuple[str, list[bytes]]]:
    """A stand-in Sentry ingest endpoint on 127.0.0.1 keeping every envelope it is sent."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://publickey@127.0.0.1:{server.server_address[1]}/42", _Collector.bodies
    finally:
        server.shutdown()


def test_sentry_hears_of_a_failed_run(
    tmp_path: Path, sentry_server: tuple[str, list[bytes]]
) -> None:
    dsn, bodies = sentry_server
    result = patronload(
        "run", "--warehouse", "nowhere.duckdb", cwd=tmp_path, env={"SENTRY_DSN": dsn}
    )
    assert result.code == 1
    assert result.err.splitlines()[-1] == "Error: warehouse not found: nowhere.duckdb"
    assert any(b"warehouse not found: nowhere.duckdb" in b for b in bodies)
    assert "publickey" not in result.out + result.err
