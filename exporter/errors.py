"""The one error root and its kinds. The CLI turns these into one-line messages."""

from __future__ import annotations


class ExporterError(Exception):
    """Root of every expected failure; the message is shown to the user as is."""

    exit_code = 1


class UsageError(ExporterError):
    """A setting or argument is wrong before any work starts."""

    exit_code = 2


class SqlError(ExporterError):
    """A SQL file in queries/ does not parse, or names an unknown table or column."""


class SourceError(ExporterError):
    """The warehouse (DuckDB file or CSV folder) is missing or malformed."""


class SnapshotError(ExporterError):
    """A snapshot cannot be found, read or written."""


class BuildError(ExporterError):
    """A model failed to build, or the row accounting does not balance."""


class ExportError(ExporterError):
    """XML or zip files could not be written within Alma's limits."""


class ValidationError(ExporterError):
    """A produced file is not well-formed or does not match the schema."""


class DeliveryError(ExporterError):
    """The zips could not be delivered (S3 upload, removal or verification failed)."""


class NotifyError(ExporterError):
    """The run report could not be sent; the run's own result stands."""


class GuardError(ExporterError):
    """A feed looks wrong (a patron type empty or shrunk too much); nothing was delivered."""

    exit_code = 3


class StageError(ExporterError):
    """Wraps a failure with the pipeline stage it happened in."""

    def __init__(self, stage: str, cause: ExporterError) -> None:
        super().__init__(f"{stage} failed: {cause}")
        self.stage = stage
        self.cause = cause
        self.exit_code = cause.exit_code
