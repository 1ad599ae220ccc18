"""The run report by email, sent to a real SMTP server, to SES (moto) and to a file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from exporter.errors import NotifyError
from exporter.notify import (
    MailSettings,
    RunOutcome,
    compose,
    human_size,
    parse_recipients,
    send,
    subject,
)
from exporter.report import RunReport
from tests.servers import MotoServer, SmtpServer, _Collect, free_port

DAY = date(2024, 3, 5)
SENDER = "patronload@library.example.org"
RECIPIENTS = "alma-admins@library.example.org, systems@library.example.org"
SECRET = "s3cr3t-Pa55word"
LOG = "2024-03-05 02:00:01 INFO extract: 1,234 staff rows\n2024-03-05 02:00:09 INFO done\n"


def report() -> RunReport:
    return RunReport(
        snapshot="snapshots/2024-03-05",
        as_of="2024-03-05",
        extracted={"staff": 1234, "student": 5000},
        exported={"staff": 1230, "student": 4990},
        rejections={"staff": {"no email": 4}, "student": {"no email": 7, "duplicate": 3}},
        files=[
            {
                "zip": "/srv/outbox/staff_2024-03-05.zip",
                "patron_type": "staff",
                "xml_files": ["staff_1.xml"],
                "users": 1230,
                "xml_bytes": 3_000_000,
                "zip_bytes": 1_572_864,
            },
            {
                "zip": "/srv/outbox/student_2024-03-05.zip",
                "patron_type": "student",
                "xml_files": ["student_1.xml"],
                "users": 4990,
                "xml_bytes": 9_000_000,
                "zip_bytes": 4_718_592,
            },
        ],
        removed_chars=2,
        seconds={"build": 3.25, "write": 1.5, "validate": 0.75},
    )


def delivered() -> RunOutcome:
    return RunOutcome(
        status="delivered",
        day=DAY,
        report=report(),
        previous={
            "time": "2024-03-04T02:00:12+00:00",
            "exported": {"staff": 1218, "student": 4993},
        },
        destinations=[
            "s3://alma-sis/patrons/staff_2024-03-05.zip",
            "s3://alma-sis/patrons/student_2024-03-05.zip",
        ],
    )


def failed(error: str = "model staff_final: division by zero") -> RunOutcome:
    return RunOutcome(status="failed", day=DAY, stage="build", error=error)


def mail_for(server: SmtpServer, **changes: Any) -> MailSettings:
    settings: dict[str, Any] = {
        "sender": SENDER,
        "recipients": parse_recipients(RECIPIENTS),
        "workspace": "dev",
        "smtp_host": server.host,
        "smtp_port": server.port,
        "starttls": False,
    }
    return MailSettings(**(settings | changes))


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies."""
    text = message.get_body(("plain",))
    body = message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(body, EmailMessage)
    return text.get_content(), body.get_content()


def attachments(message: EmailMessage) -> dict[str, str]:
    found = {}
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        found[part.get_filename() or ""] = part.get_content()
    return found


def test_parse_recipients_trims_and_drops_empty_items() -> None:
    assert parse_recipients(" a@x.org, b@y.org ,, ") == ("a@x.org", "b@y.org")
    assert parse_recipients("") == ()
    assert parse_recipients(None) == ()


def test_mail_settings_repr_hides_the_password() -> None:
    mail = MailSettings(SENDER, (), "dev", smtp_user="relay", smtp_password=SECRET)
    assert SECRET not in repr(mail)
    assert "smtp_password='****'" in repr(mail)


def test_human_size_uses_readable_units() -> None:
    assert human_size(512) == "512 bytes"
    assert human_size(1536) == "1.5 KB"
    assert human_size(1_572_864) == "1.5 MB"
    assert human_size(4 * 1024**3) == "4.0 GB"


def test_subject_is_the_predecessors_and_marks_failures() -> None:
    mail = MailSettings(SENDER, (), "dev")
    assert subject(mail, DAY) == "DEV Patronload file creation 2024-03-05"
    assert subject(mail, DAY, delivered()) == "DEV Patronload file creation 2024-03-05"
    assert (
        subject(mail, DAY, failed()) == "DEV Patronload file creation 2024-03-05 - FAILED at build"
    )
    refused = RunOutcome(status="refused", day=DAY, stage="guard", error="staff shrank by 40%")
    assert subject(mail, DAY, refused) == (
        "DEV Patronload file creation 2024-03-05 - REFUSED (nothing delivered)"
    )


def test_smtp_delivers_report_with_counts_changes_and_log(smtp_server: SmtpServer) -> None:
    mail = mail_for(smtp_server)
    where = send(compose(delivered(), mail, LOG), mail)

    assert where == f"smtp://{smtp_server.host}:{smtp_server.port}"
    (got,) = smtp_server.received
    assert got.sender == SENDER
    assert got.recipients == ["alma-admins@library.example.org", "systems@library.example.org"]
    message = got.message
    assert message["Subject"] == "DEV Patronload file creation 2024-03-05"
    assert message["From"] == SENDER
    assert message.get_content_type() == "multipart/mixed"
    text, body = parts(message)
    for shown in (text, body):
        assert shown.lstrip().startswith(("Delivered", "<!DOCTYPE"))
        assert "staff" in shown and "1,230" in shown and "4,990" in shown
        assert "+12" in shown and "-3" in shown  # exported against the previous run
        assert "no email" in shown and "duplicate" in shown
        assert "1.5 MB" in shown and "s3://alma-sis/patrons/staff_2024-03-05.zip" in shown
        assert "removed" in shown  # report.warnings()
        assert "build" in shown and "3.2" in shown
    assert text.splitlines()[0] == "Delivered: 6,220 patrons in 2 file(s)."
    assert "<strong>Delivered: 6,220 patrons in 2 file(s).</strong>" in body
    (log,) = attachments(message).items()
    assert log == ("patronload-2024-03-05.log", LOG.replace("\n", "\r\n"))  # SMTP line ends


def test_smtp_report_masks_secrets_everywhere(smtp_server: SmtpServer) -> None:
    mail = mail_for(smtp_server)
    outcome = failed(f"could not log in with password {SECRET}")
    outcome.notes.append(f"retried with {SECRET}")
    log_text = LOG + f"DEBUG connect password={SECRET}\n"

    send(compose(outcome, mail, log_text, secrets=["", SECRET]), mail)

    (got,) = smtp_server.received
    raw = got.message.as_bytes()
    assert SECRET.encode() not in raw
    text, body = parts(got.message)
    log = attachments(got.message)["patronload-2024-03-05.log"]
    for shown in (text, body, log):
        assert SECRET not in shown and "****" in shown


def test_smtp_failed_run_names_stage_and_reason(smtp_server: SmtpServer) -> None:
    mail = mail_for(smtp_server)
    send(compose(failed(), mail, LOG), mail)

    (got,) = smtp_server.received
    assert got.message["Subject"] == "DEV Patronload file creation 2024-03-05 - FAILED at build"
    text, body = parts(got.message)
    assert text.splitlines()[0] == "Failed at build: model staff_final: division by zero."
    assert "Failed at build: model staff_final: division by zero." in body


def test_smtp_refuses_clear_text_when_starttls_not_offered(smtp_server: SmtpServer) -> None:
    mail = mail_for(smtp_server, starttls=True)
    with pytest.raises(NotifyError) as caught:
        send(compose(delivered(), mail, LOG), mail)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{smtp_server.host}:{smtp_server.port} does not offer STARTTLS" in message
    assert smtp_server.received == []


def test_smtp_unreachable_names_host_and_port() -> None:
    port = free_port()
    mail = MailSettings(SENDER, ("a@x.org",), "dev", smtp_host="127.0.0.1", smtp_port=port)
    with pytest.raises(NotifyError) as caught:
        send(compose(delivered(), mail, LOG), mail)
    assert str(caught.value) == (
        f"the run report could not be sent by SMTP via 127.0.0.1:{port}: Connection refused"
    )


#: aiosmtpd warns that AUTH without TLS is unsafe; this loopback server is meant to be.
plain_auth = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def auth_smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server that wants AUTH, as user `relay` with password SECRET, over plain TCP."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"relay",
            SECRET.encode(),
        )
        return AuthResult(success=ok, handled=False)

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(
        _Collect(server),
        hostname=server.host,
        port=server.port,
        authenticator=check,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@plain_auth
def test_smtp_logs_in_with_user_and_password(auth_smtp_server: SmtpServer) -> None:
    mail = mail_for(auth_smtp_server, smtp_user="relay", smtp_password=SECRET)
    send(compose(delivered(), mail, LOG), mail)
    assert len(auth_smtp_server.received) == 1


@plain_auth
def test_smtp_wrong_password_is_not_in_the_error(auth_smtp_server: SmtpServer) -> None:
    wrong = "not-the-Pa55word"
    mail = mail_for(auth_smtp_server, smtp_user="relay", smtp_password=wrong)
    with pytest.raises(NotifyError) as caught:
        send(compose(delivered(), mail, LOG), mail)
    message = str(caught.value)
    assert message.startswith(
        f"the run report could not be sent by SMTP via 127.0.0.1:{auth_smtp_server.port}: 535"
    )
    assert wrong not in message
    assert auth_smtp_server.received == []


def test_smtp_without_sender_names_the_settings(smtp_server: SmtpServer) -> None:
    mail = mail_for(smtp_server, sender=None, recipients=())
    with pytest.raises(NotifyError, match="SES_SEND_FROM_EMAIL .* and SES_RECIPIENT_EMAIL"):
        send(compose(delivered(), mail, LOG), mail)


def ses_mail(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MailSettings:
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    recipients = parse_recipients(RECIPIENTS)
    return MailSettings(SENDER, recipients, "prod", ses_region="us-east-1", endpoint_url=moto.url)


def test_ses_sends_raw_report(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    mail = ses_mail(moto, monkeypatch)
    moto.client("ses").verify_email_identity(EmailAddress=SENDER)

    assert send(compose(delivered(), mail, LOG), mail) == "ses (us-east-1)"

    (sent,) = moto.sent_emails()
    assert sent["source"] == SENDER
    assert set(sent["destinations"]) == set(mail.recipients)
    parsed = message_from_bytes(sent["raw_data"].encode(), policy=policy.default)
    assert parsed["Subject"] == "PROD Patronload file creation 2024-03-05"


def test_ses_unverified_sender_fails(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    mail = ses_mail(moto, monkeypatch)
    with pytest.raises(NotifyError) as caught:
        send(compose(delivered(), mail, LOG), mail)
    message = str(caught.value)
    assert message.startswith("the run report could not be sent by SES in us-east-1: ")
    assert "\n" not in message
    assert moto.sent_emails() == []


def test_without_mail_settings_the_report_goes_to_the_outbox(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mail = MailSettings(None, (), "dev", outbox=outbox)

    where = Path(send(compose(delivered(), mail, LOG), mail))

    assert where.parent == outbox
    assert where.name.startswith("report-2") and where.suffix == ".eml"
    assert [p.name for p in outbox.iterdir()] == [where.name]  # no temporary file left
    parsed = message_from_bytes(where.read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "DEV Patronload file creation 2024-03-05"


def test_without_any_mail_settings_or_outbox_names_the_settings() -> None:
    mail = MailSettings(None, (), "dev")
    with pytest.raises(NotifyError) as caught:
        send(compose(delivered(), mail, LOG), mail)
    assert str(caught.value) == (
        "cannot send the run report by SES: SES_SEND_FROM_EMAIL (the sender) and "
        "SES_RECIPIENT_EMAIL (the recipients) not set"
    )


def test_html_escapes_every_value() -> None:
    outcome = delivered()
    assert outcome.report is not None
    outcome.report.rejections["staff"] = {"name <3 chars & <b>bold</b>": 4}
    outcome.notes.append("<script>alert(1)</script>")
    mail = MailSettings(SENDER, ("a@x.org",), "dev")

    text, body = parts(compose(outcome, mail, LOG))

    assert "name &lt;3 chars &amp; &lt;b&gt;bold&lt;/b&gt;" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>" not in body and "<b>" not in body
    assert "name <3 chars & <b>bold</b>" in text


def test_first_run_and_new_type_show_no_change_or_new() -> None:
    outcome = delivered()
    mail = MailSettings(SENDER, ("a@x.org",), "dev")
    outcome.previous = None
    text, _ = parts(compose(outcome, mail, LOG))
    assert "no earlier delivered run to compare" in text and "n/a" in text

    outcome.previous = {"time": "2024-03-04T02:00:12+00:00", "exported": {"staff": 1300}}
    text, _ = parts(compose(outcome, mail, LOG))
    staff, student = (
        next(line for line in text.splitlines() if line.startswith(t))
        for t in ("staff ", "student")
    )
    assert staff.split()[-1] == "-70" and student.split()[-1] == "new"
