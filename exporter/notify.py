"""Notify stage: the run report by email, through SMTP, SES or (in development) a file.

The email says at a glance what a run did: its status first, then counts per patron type
(with the change since the last delivered run), rejections per reason, the files and where
they went, seconds per stage and warnings. It holds counts only, never a person's name or
ID; the full log goes along as an attachment. Secrets handed to `compose` are masked in
every part before the message exists, so no transport ever sees them.
"""

from __future__ import annotations

import html
import logging
import os
import smtplib
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from exporter.errors import NotifyError
from exporter.redact import MASK, Redactor
from exporter.report import RunReport
from exporter.text import table as text_table

log = logging.getLogger(__name__)

Status = Literal["delivered", "dry-run", "refused", "failed"]
STATUSES: tuple[Status, ...] = ("delivered", "dry-run", "refused", "failed")

#: What replaces a secret anywhere in a message.

#: Seconds an SMTP connection may stall before the send fails.
SMTP_TIMEOUT = 30


@dataclass(frozen=True)
class MailSettings:
    """Who gets the run report and how it travels (SMTP, SES, or a file in `outbox`)."""

    sender: str | None
    recipients: tuple[str, ...]
    workspace: str
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    starttls: bool = True
    ses_region: str | None = None
    endpoint_url: str | None = None
    outbox: Path | None = None

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.smtp_password:
            shown["smtp_password"] = MASK
        return f"MailSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


@dataclass
class RunOutcome:
    """How a run ended, with whatever report it got as far as making."""

    status: Status
    day: date
    report: RunReport | None = None
    #: The history entry of the last delivered run, for the change per patron type.
    previous: dict[str, Any] | None = None
    #: Where the delivered files are: s3:// URLs or local paths.
    destinations: list[str] = field(default_factory=list)
    stage: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown run status {self.status!r}; expected one of {STATUSES}")


def parse_recipients(value: str | None) -> tuple[str, ...]:
    """Addresses from a comma-separated list, trimmed, empty items dropped."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def human_size(n: int) -> str:
    """A byte count for people: `512 bytes`, `1.5 KB`, `3.2 MB` (powers of 1024)."""
    if n < 1024:
        return f"{n:,} bytes"
    size = float(n)
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1024
        if size < 1024 or unit == "TB":
            break
    return f"{size:,.1f} {unit}"


def subject(mail: MailSettings, day: date, outcome: RunOutcome | None = None) -> str:
    """The predecessor's subject; a failed, refused or dry run gets a suffix saying so."""
    base = f"{mail.workspace.strip().upper()} Patronload file creation {day.isoformat()}".strip()
    if outcome is None or outcome.status == "delivered":
        return base
    if outcome.status == "failed":
        return f"{base} - FAILED at {outcome.stage or 'an unknown stage'}"
    if outcome.status == "refused":
        return f"{base} - REFUSED (nothing delivered)"
    return f"{base} - DRY RUN (nothing delivered)"


def log_name(day: date) -> str:
    """The name of the attached log."""
    return f"patronload-{day.isoformat()}.log"


def compose(
    outcome: RunOutcome, mail: MailSettings, log_text: str, secrets: Iterable[str] = ()
) -> EmailMessage:
    """The report as plain text and HTML, the log attached; every secret masked."""
    clean = Redactor(secrets).redact
    sections = _sections(outcome)
    text = _render_text(sections, clean)
    body = _render_html(sections, clean)

    message = EmailMessage()
    message["Subject"] = clean(subject(mail, outcome.day, outcome))
    if mail.sender:
        message["From"] = mail.sender
    if mail.recipients:
        message["To"] = ", ".join(mail.recipients)
    message["Date"] = formatdate(localtime=True)
    domain = (mail.sender or "").rpartition("@")[2] or "patronload.invalid"
    message["Message-ID"] = make_msgid("patronload", domain=domain)
    message.set_content(text)
    message.add_alternative(body, subtype="html")
    message.add_attachment(clean(log_text), subtype="plain", filename=log_name(outcome.day))
    return message


def send(message: EmailMessage, mail: MailSettings) -> str:
    """Send by SMTP, else SES, else (no mail settings) write to the outbox; say where."""
    if mail.smtp_host:
        return _send_smtp(message, mail, mail.smtp_host)
    if mail.sender or mail.recipients or mail.outbox is None:
        return _send_ses(message, mail)
    return _write_eml(message, mail.outbox)


# -- the body -----------------------------------------------------------------------------


@dataclass
class _Section:
    """A titled table (or, without a header, a bulleted list) or a paragraph."""

    title: str = ""
    header: tuple[str, ...] = ()
    rows: Sequence[tuple[str, ...]] = ()
    #: One letter per column: l(eft) or r(ight).
    align: str = ""


def _paragraph(text: str) -> _Section:
    return _Section(rows=[(text,)])


def _sections(outcome: RunOutcome) -> list[_Section]:
    report = outcome.report
    out = [_paragraph(_status_line(outcome))]
    if report is not None and report.snapshot:
        out.append(_paragraph(f"Snapshot {report.snapshot}, as of {report.as_of}."))
    if report is not None and (report.extracted or report.exported):
        out.append(_patrons(report, outcome.previous))
    if report is not None and report.rejections:
        rejected = [
            (t, reason, f"{n:,}")
            for t in sorted(report.rejections)
            for reason, n in sorted(report.rejections[t].items())
        ]
        out.append(_Section("Rejections", ("patron type", "reason", "count"), rejected, "llr"))
    out += _files(outcome)
    if report is not None and report.seconds:
        timed = [(stage, f"{s:,.1f}") for stage, s in report.seconds.items()]
        timed.append(("total", f"{sum(report.seconds.values()):,.1f}"))
        out.append(_Section("Seconds per stage", ("stage", "seconds"), timed, "lr"))
    warnings = (report.warnings() if report is not None else []) + outcome.notes
    if warnings:
        out.append(_Section("Warnings", rows=[(w,) for w in warnings]))
    out.append(_paragraph(f"The full log is attached as {log_name(outcome.day)}."))
    return out


def _status_line(outcome: RunOutcome) -> str:
    reason = (outcome.error or "no reason given").rstrip(".")
    if outcome.status == "failed":
        return f"Failed at {outcome.stage or 'an unknown stage'}: {reason}."
    if outcome.status == "refused":
        return f"Refused: {reason}. Nothing was delivered."
    report = outcome.report
    since = ""
    if report is not None and report.changes_since:
        since = (
            f" Incremental since {report.changes_since}: the files hold only the patrons new "
            "or changed since then; people removed since are not in them."
        )
    if outcome.status == "dry-run":
        return "Dry run: the files were written but not delivered." + since
    files = len(outcome.destinations)
    patrons = sum(report.exported.values()) if report is not None else 0
    if not files:
        return "Delivered." + since
    if since and report is not None:
        written = sum(report.written.values())
        return f"Delivered: {written:,} of {patrons:,} patrons in {files} file(s)." + since
    return (
        f"Delivered: {patrons:,} patrons in {files} file(s)."
        if patrons
        else f"Delivered: {files} file(s)."
    )


def _patrons(report: RunReport, previous: dict[str, Any] | None) -> _Section:
    before: dict[str, int] | None = None if previous is None else previous.get("exported", {})
    types = sorted(set(report.extracted) | set(report.exported) | set(before or {}))

    def change(now: int, then: int | None) -> str:
        if before is None:
            return "n/a"
        return "new" if then is None else f"{now - then:+,}"

    rows = []
    for t in types:
        exported = report.exported.get(t, 0)
        rejected = sum(report.rejections.get(t, {}).values())
        extracted = report.extracted.get(t, 0)
        then = None if before is None else before.get(t)
        rows.append((t, f"{extracted:,}", f"{exported:,}", f"{rejected:,}", change(exported, then)))
    if len(types) > 1:
        total = sum(report.exported.values())
        rejected = sum(sum(r.values()) for r in report.rejections.values())
        rows.append(
            (
                "total",
                f"{sum(report.extracted.values()):,}",
                f"{total:,}",
                f"{rejected:,}",
                change(total, None if before is None else sum(before.values())),
            )
        )
    since = (
        "no earlier delivered run to compare"
        if previous is None
        else f"change since the run delivered {previous.get('time', '?')}"
    )
    header: tuple[str, ...] = ("patron type", "extracted", "exported", "rejected", "change")
    table: list[tuple[str, ...]] = list(rows)
    if report.changes_since:  # an incremental run: the patrons in this run's files too

        def written(of: list[str]) -> tuple[str, ...]:  # exporter.diff's kinds: new, changed
            n = [sum(report.changes.get(t, {}).get(k, 0) for t in of) for k in ("added", "changed")]
            n.append(sum(report.written.get(t, 0) for t in of))
            return tuple(f"{x:,}" for x in n)

        header += ("new", "changed", "written")
        table = [(*row, *written([t])) for row, t in zip(rows, types, strict=False)]
        if len(rows) > len(types):
            table.append((*rows[-1], *written(types)))
    return _Section(f"Patrons ({since})", header, table, "l" + "r" * (len(header) - 1))


def _files(outcome: RunOutcome) -> list[_Section]:
    files = outcome.report.files if outcome.report is not None else []
    placed = {PurePosixPath(d).name: d for d in outcome.destinations}
    missing = "" if outcome.status == "delivered" else "not delivered"
    rows = []
    for f in files:
        name = PurePosixPath(str(f["zip"])).name
        where = placed.pop(name, missing)
        rows.append((name, f["patron_type"], f"{f['users']:,}", human_size(f["zip_bytes"]), where))
    out = []
    if rows:
        header = ("file", "patron type", "users", "size", "where")
        out.append(_Section("Files", header, rows, "llrrl"))
    if placed:
        out.append(_Section("Also delivered", rows=[(d,) for d in placed.values()]))
    return out


def _render_text(sections: list[_Section], clean: Callable[[str], str]) -> str:
    lines: list[str] = []
    for section in sections:
        rows = [tuple(clean(str(cell)) for cell in row) for row in section.rows]
        if section.title:
            lines += [section.title, "-" * len(section.title)]
        if not section.header:
            bullet = "  - " if section.title else ""
            lines += [bullet + row[0] for row in rows]
        else:
            lines += text_table(section.header, rows, section.align)
        lines.append("")
    return "\n".join(lines)


def _render_html(sections: list[_Section], clean: Callable[[str], str]) -> str:
    def cell(tag: str, value: str, align: str) -> str:
        side = "right" if align == "r" else "left"
        style = f"padding:2px 10px;text-align:{side}"
        return f'<{tag} style="{style}">{html.escape(clean(str(value)))}</{tag}>'

    parts = ['<!DOCTYPE html>\n<html><body style="font-family:sans-serif">']
    for number, section in enumerate(sections):
        if section.title:
            parts.append(f"<h3>{html.escape(clean(section.title))}</h3>")
        if not section.header and not section.title:
            text = html.escape(clean(section.rows[0][0]))
            parts.append(f"<p><strong>{text}</strong></p>" if number == 0 else f"<p>{text}</p>")
        elif not section.header:
            items = "".join(f"<li>{html.escape(clean(row[0]))}</li>" for row in section.rows)
            parts.append(f"<ul>{items}</ul>")
        else:
            head = "".join(
                cell("th", h, a) for h, a in zip(section.header, section.align, strict=True)
            )
            body = "".join(
                "<tr>"
                + "".join(cell("td", c, a) for c, a in zip(row, section.align, strict=True))
                + "</tr>"
                for row in section.rows
            )
            parts.append(f'<table style="border-collapse:collapse"><tr>{head}</tr>{body}</table>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


# -- transports ---------------------------------------------------------------------------


def _require_addresses(mail: MailSettings, transport: str) -> tuple[str, list[str]]:
    missing = [] if mail.sender else ["SES_SEND_FROM_EMAIL (the sender)"]
    if not mail.recipients:
        missing.append("SES_RECIPIENT_EMAIL (the recipients)")
    if missing or mail.sender is None:
        raise NotifyError(
            f"cannot send the run report by {transport}: {' and '.join(missing)} not set"
        )
    return mail.sender, list(mail.recipients)


def _one_line(text: str, password: str | None) -> str:
    text = " ".join(text.split())
    return text.replace(password, MASK) if password else text


def _send_smtp(message: EmailMessage, mail: MailSettings, host: str) -> str:
    sender, recipients = _require_addresses(mail, "SMTP")
    where = f"{host}:{mail.smtp_port}"
    try:
        with smtplib.SMTP(host, mail.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.ehlo()
            if mail.starttls:
                if not smtp.has_extn("starttls"):
                    raise NotifyError(
                        f"SMTP server {where} does not offer STARTTLS; the report is not sent "
                        "in clear text unless STARTTLS is turned off"
                    )
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if mail.smtp_user:
                smtp.login(mail.smtp_user, mail.smtp_password or "")
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(
            f"the run report could not be sent by SMTP via {where}: "
            f"{_one_line(_smtp_reason(exc), mail.smtp_password)}"
        ) from None
    if refused:
        log.warning("SMTP server %s refused recipient(s): %s", where, ", ".join(refused))
    return f"smtp://{where}"


def _smtp_reason(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        return (
            f"{exc.smtp_code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
        )
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _send_ses(message: EmailMessage, mail: MailSettings) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    sender, recipients = _require_addresses(mail, "SES")
    region = (
        mail.ses_region
        or os.environ.get("AWS_DEFAULT_REGION")
        or os.environ.get("AWS_REGION")
        or "us-east-1"
    )
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    try:
        client = boto3.client("ses", region_name=region, endpoint_url=mail.endpoint_url)
        client.send_raw_email(Source=sender, Destinations=recipients, RawMessage={"Data": raw})
    except ClientError as exc:
        error = exc.response.get("Error", {})
        reason = f"{error.get('Code', '?')}: {error.get('Message', '')}"
        raise NotifyError(
            f"the run report could not be sent by SES in {region}: {_one_line(reason, None)}"
        ) from None
    except BotoCoreError as exc:
        raise NotifyError(
            f"the run report could not be sent by SES in {region}: {_one_line(str(exc), None)}"
        ) from None
    return f"ses ({region})"


def _write_eml(message: EmailMessage, outbox: Path) -> str:
    stamp = datetime.now().strftime("%Y-%m-%d_%H.%M.%S")
    path = outbox / f"report-{stamp}.eml"
    number = 1
    while path.exists():
        number += 1
        path = outbox / f"report-{stamp}-{number}.eml"
    partial = path.with_name(f".{path.name}.partial")
    try:
        outbox.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(message.as_bytes())
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise NotifyError(
            f"the run report could not be written to {outbox}: {exc.strerror or exc}"
        ) from None
    return str(path)
