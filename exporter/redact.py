"""Secrets never leave the process: one way to mask them in logs, errors, reports, Sentry."""

from __future__ import annotations

import logging
from collections.abc import Iterable

#: What a secret is replaced with.
MASK = "****"

#: The log line format of stderr and of the log attached to the run report.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Redactor(logging.Filter):
    """Replaces every secret with ****, the longest first so none is half-masked.

    As a logging filter it does the same to each record's message.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
        return True
