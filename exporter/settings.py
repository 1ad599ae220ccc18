"""Settings: CLI flag > environment > `.env` file > default, and where each value came from.

Names are the predecessor's (DATA_WAREHOUSE_*, S3_*, SES_*, WORKSPACE, LOG_LEVEL,
ORACLE_LIB_DIR, SENTRY_DSN) plus SMTP_* and our own PATRONLOAD_* ones. WORKSPACE=dev
may fall back to the demo warehouse, the local outbox and an email written to a file;
stage and prod never fall back: every missing setting is named in one error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from exporter.errors import UsageError

WORKSPACES = ("dev", "stage", "prod")
WAREHOUSE_SETTINGS = (
    "DATA_WAREHOUSE_USER",
    "DATA_WAREHOUSE_PASSWORD",
    "DATA_WAREHOUSE_HOST",
    "DATA_WAREHOUSE_PORT",
    "DATA_WAREHOUSE_SID",
)
S3_SETTINGS = ("S3_BUCKET_NAME", "S3_PREFIX")
MAIL_SETTINGS = ("SES_SEND_FROM_EMAIL", "SES_RECIPIENT_EMAIL")


@dataclass(frozen=True)
class Spec:
    """One setting: its variable name, what it is for, its default, whether it is secret."""

    name: str
    help: str
    default: str | None = None
    secret: bool = False


SPECS = [
    Spec("WORKSPACE", "dev, stage or prod; only dev falls back to demo data", "dev"),
    Spec("LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR for the log on stderr", "WARNING"),
    Spec("DATA_WAREHOUSE_USER", "Oracle user"),
    Spec("DATA_WAREHOUSE_PASSWORD", "Oracle password", secret=True),
    Spec("DATA_WAREHOUSE_HOST", "Oracle host"),
    Spec("DATA_WAREHOUSE_PORT", "Oracle listener port"),
    Spec("DATA_WAREHOUSE_SID", "Oracle SID"),
    Spec("ORACLE_LIB_DIR", "Oracle Instant Client folder; set = thick mode"),
    Spec("S3_BUCKET_NAME", "bucket Alma reads the zips from"),
    Spec("S3_PREFIX", "folder in the bucket, e.g. alma/patrons"),
    Spec("AWS_ENDPOINT_URL", "S3/SES endpoint of an S3-compatible store"),
    Spec("AWS_DEFAULT_REGION", "AWS region for S3 and SES", "us-east-1"),
    Spec("AWS_ACCESS_KEY_ID", "AWS key id (else the role or ~/.aws)", secret=True),
    Spec("AWS_SECRET_ACCESS_KEY", "AWS secret key", secret=True),
    Spec("SES_SEND_FROM_EMAIL", "sender of the run report"),
    Spec("SES_RECIPIENT_EMAIL", "recipients of the run report, comma-separated"),
    Spec("SMTP_HOST", "send the report by SMTP instead of SES"),
    Spec("SMTP_PORT", "SMTP port", "587"),
    Spec("SMTP_USER", "SMTP login"),
    Spec("SMTP_PASSWORD", "SMTP password", secret=True),
    Spec("STARTTLS", "use STARTTLS with SMTP (true/false)", "true"),
    Spec("SENTRY_DSN", "report exceptions to Sentry", secret=True),
    Spec("PATRONLOAD_S3_ATTEMPTS", "attempts per S3 request before a delivery fails", "6"),
    Spec("PATRONLOAD_MAX_DROP", "largest share a patron type may shrink by, e.g. 0.10", "0.10"),
    Spec("PATRONLOAD_WAREHOUSE", "a local warehouse (DuckDB file or CSV folder) to read"),
    Spec("PATRONLOAD_OUTBOX", "folder the zips are built in", "outbox"),
    Spec("PATRONLOAD_SNAPSHOTS", "folder of snapshots", "snapshots"),
    Spec("PATRONLOAD_BUILD_DIR", "folder of model databases", "build"),
    Spec("PATRONLOAD_HISTORY", "the run history file", "history/runs.jsonl"),
    Spec("PATRONLOAD_MEMORY_LIMIT", "DuckDB memory cap", "300MB"),
]
SPEC_BY_NAME = {s.name: s for s in SPECS}


@dataclass(frozen=True)
class Value:
    """A setting's effective value and where it came from."""

    value: str | None
    source: str


def _truthy(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{name}: {text!r} is not true or false")


class Settings:
    """Every setting resolved once at start-up; the stages ask it for typed groups."""

    def __init__(self, values: dict[str, Value], env_file: Path | None) -> None:
        self.values = values
        self.env_file = env_file
        workspace = (self.get("WORKSPACE") or "dev").strip().lower()
        if workspace not in WORKSPACES:
            raise UsageError(
                f"WORKSPACE: {workspace!r} is not one of {', '.join(WORKSPACES)} "
                f"(from {values['WORKSPACE'].source})"
            )
        self.workspace = workspace

    def get(self, name: str) -> str | None:
        value = self.values[name].value
        return value if value not in (None, "") else None

    @property
    def is_dev(self) -> bool:
        return self.workspace == "dev"

    def secrets(self) -> list[str]:
        """Every secret value set, for redaction of logs, reports and errors."""
        found = [self.get(s.name) for s in SPECS if s.secret]
        return [s for s in found if s and len(s) >= 3]

    def masked(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            return "(unset)"
        return "****" if SPEC_BY_NAME[name].secret else value

    def lines(self) -> list[str]:
        """`NAME = value  (source)` for every setting, secrets masked."""
        width = max(len(s.name) for s in SPECS)
        out = [f"{'WORKSPACE':<{width}}  {self.workspace}  ({self.values['WORKSPACE'].source})"]
        for spec in SPECS[1:]:
            source = self.values[spec.name].source
            shown = self.masked(spec.name) + ("" if source == "unset" else f"  ({source})")
            out.append(f"{spec.name:<{width}}  {shown}")
        return out

    def _missing(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.get(n) is None]

    def partial(self, names: tuple[str, ...], what: str) -> None:
        """A group set only in part is an error in every workspace: say what is missing."""
        missing = self._missing(names)
        if missing and len(missing) < len(names):
            raise UsageError(f"{what} is configured in part; missing: {', '.join(missing)}")

    def require(self, *, warehouse: bool, delivery: bool, mail: bool) -> None:
        """In stage or prod, name every setting a run needs and lacks, all at once."""
        for names, what in (
            (WAREHOUSE_SETTINGS, "the Oracle warehouse"),
            (S3_SETTINGS, "the S3 delivery"),
        ):
            self.partial(names, what)
        if self.is_dev:
            return
        needed: list[str] = []
        if warehouse:
            needed += WAREHOUSE_SETTINGS
        if delivery:
            needed += S3_SETTINGS
        if mail:
            needed += MAIL_SETTINGS
        missing = self._missing(needed)
        if missing:
            source = f" or in {self.env_file}" if self.env_file else ""
            raise UsageError(
                f"WORKSPACE={self.workspace} needs these settings, not set in the environment"
                f"{source}: {', '.join(missing)}"
            )

    def integer(self, name: str) -> int:
        text = self.get(name) or ""
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{name}: {text!r} is not a whole number") from None

    def share(self, name: str) -> float:
        text = self.get(name) or ""
        try:
            value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
        except ValueError:
            raise UsageError(f"{name}: {text!r} is not a share like 0.10 or 10%") from None
        if not 0 <= value <= 1:
            raise UsageError(f"{name}: {text!r} is not between 0 and 1 (or 0% and 100%)")
        return value

    def flag(self, name: str) -> bool:
        return _truthy(name, self.get(name) or "false")

    def has(self, names: tuple[str, ...]) -> bool:
        return not self._missing(names)


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting: flag > environment > `.env` > default.

    Values from the `.env` file that the environment lacks are also put into the
    process environment, so boto3 and the click options read them too.
    """
    env = os.environ if environ is None else environ
    dotenv: dict[str, str | None] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise UsageError(f"{env_file}: the settings file does not exist")
        dotenv = dict(dotenv_values(env_file))
    values: dict[str, Value] = {}
    for spec in SPECS:
        given = (flags or {}).get(spec.name)
        if given is not None:
            values[spec.name] = Value(given, "flag")
        elif spec.name in env:
            values[spec.name] = Value(env[spec.name], "environment")
        elif dotenv.get(spec.name) is not None:
            values[spec.name] = Value(dotenv[spec.name], str(env_file))
        elif spec.default is not None:
            values[spec.name] = Value(spec.default, "default")
        else:
            values[spec.name] = Value(None, "unset")
    if environ is None:
        for key, value in dotenv.items():
            if value is not None and key not in os.environ:
                os.environ[key] = value
    return Settings(values, env_file)
